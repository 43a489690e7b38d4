"""A trained model is a self-contained artifact: it loads without its data set or optimiser, and hands on as a file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import jaxdl
from jaxdl.errors import CheckpointError
from jaxdl.trainer import train_and_evaluate
from tests.conftest import compose_config, quick_overrides, run_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    train_and_evaluate(compose_config(*quick_overrides("trainer.epochs=1")), path)
    return path


def test_load_model_needs_neither_data_nor_optimiser(run_dir, monkeypatch):
    import jaxdl.data

    def no_data(*_args, **_kwargs):
        raise AssertionError("load_model read the data set")

    monkeypatch.setattr(jaxdl.data, "load_dataset", no_data)
    model = jaxdl.load_model(run_dir)
    card = json.loads((run_dir / "model.json").read_text())
    assert model.class_names == tuple(card["class_names"]) and model.preprocess.mean == tuple(card["preprocess"]["mean"])
    assert model.step == json.loads((run_dir / "results.json").read_text())["best_step"]
    images = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 1), dtype=np.uint8)
    assert np.asarray(model(images)).shape == (3, 10)


def test_a_run_from_before_model_cards_gets_one_once(run_dir, tmp_path):
    old = Path(shutil.copytree(run_dir, tmp_path / "old"))
    (old / "model.json").unlink()
    images = np.random.default_rng(1).integers(0, 255, (4, 8, 8, 1), dtype=np.uint8)
    migrated = jaxdl.load_model(old)
    assert (old / "model.json").exists()
    np.testing.assert_allclose(np.asarray(migrated(images)), np.asarray(jaxdl.load_model(run_dir)(images)), rtol=1e-6)


def test_an_exported_model_round_trips_and_is_verified(run_dir, tmp_path):
    model = jaxdl.load_model(run_dir)
    out = jaxdl.save_model(tmp_path / "exported", model.model, model.card)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "weights"]
    images = np.random.default_rng(2).integers(0, 255, (4, 8, 8, 1), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(jaxdl.load_model(out)(images)), np.asarray(model(images)))
    (out / "weights" / "checksums.json").write_text(
        json.dumps({k: "0" * 64 for k in json.loads((out / "weights" / "checksums.json").read_text())})
    )
    with pytest.raises(CheckpointError, match="differ from what was written"):
        jaxdl.load_model(out)


def test_a_path_that_is_no_model_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        jaxdl.load_model(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="is not a jaxdl model"):
        jaxdl.load_model(tmp_path)


LOGITS_ON_DEVICES = """
import sys, numpy as np, jax, jaxdl
images = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 1), dtype=np.uint8)
print(jax.device_count(), np.asarray(jaxdl.load_model(sys.argv[1])(images)).tolist())
"""


def test_a_run_saved_on_two_devices_loads_on_any_number(tmp_path):
    """Training shards over every CPU core; the model must still load on a machine with another core count."""
    run = tmp_path / "run"
    trained = run_cli(
        "-m", "jaxdl.apps.train", *quick_overrides("trainer.epochs=1", "trainer.cpu_devices=2"), f"hydra.run.dir={run}"
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    outputs = []
    for devices in (1, 3):
        env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        loaded = run_cli("-c", LOGITS_ON_DEVICES, str(run), env=env)
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        count, logits = loaded.stdout.split(" ", 1)
        assert int(count) == devices
        outputs.append(np.asarray(json.loads(logits)))
    np.testing.assert_array_equal(outputs[0], outputs[1])
