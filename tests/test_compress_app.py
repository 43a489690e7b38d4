"""jaxdl-compress end to end on a tiny digits run, recipes that compose, and jaxdl-train from a compressed checkpoint."""

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from tests.compress_util import digits_config
from jaxdl.config import CONF_DIR, group_options
from jaxdl.runs import load_run
from jaxdl.trainer import train_and_evaluate
from xai.compress import app
from xai.compress.pipeline import check_recipe
from xai.compress.quantize import rules_from_config


def compress_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("compress_app", overrides=list(overrides))


@pytest.mark.parametrize("recipe", group_options("compress"))
def test_every_recipe_composes_and_is_valid(recipe):
    cfg = compress_config(f"compress={recipe}", "run_dir=/nowhere")
    check_recipe(cfg.compress)  # raises on an unknown stage or option
    assert cfg.compress.name == recipe
    assert any(cfg.compress.get(stage) for stage in ("channels", "prune", "quantize")), "a recipe that compresses nothing"
    if cfg.compress.quantize:
        assert len(rules_from_config(cfg.compress.quantize.rules)) == len(cfg.compress.quantize.rules)


def test_cli_without_run_dir_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["jaxdl-compress", "compress=int8"])
    with pytest.raises(SystemExit) as exit_info:
        app.main()
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: run_dir is required: jaxdl-compress run_dir=PATH_OF_A_TRAINED_RUN compress=int8"
    )


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train_and_evaluate(digits_config(), run_dir)
    out = run_dir / "compress" / "channels_int8"
    cfg = compress_config(
        f"run_dir={run_dir}",
        "compress=channels50",
        "compress.name=channels_int8",
        "compress.finetune.epochs=1",
        "compress.quantize={rules:[{weights:int8,activations:int8,static:true}]}",
        "calibration_examples=64",
        "latency.batch_sizes=[1,32]",
        "latency.repeats=2",
    )
    report = app.compress_and_report(cfg, out)
    return run_dir, out, report


def test_compress_writes_checkpoint_and_honest_report(compressed):
    run_dir, out, report = compressed
    assert json.loads((out / "report.json").read_text()) == report
    original, small = report["models"]
    assert small["parameters"] < 0.4 * original["parameters"]  # channels really removed
    assert small["bytes_gzip"] < 0.15 * original["bytes_gzip"]  # and int8 on top
    assert set(small["latency_ms"]) == {"1", "32"} and report["ratios"]["speedup_batch32"] > 0
    assert "| ratio |" in (out / "report.md").read_text()
    loaded = load_run(out)  # the output directory loads like a run
    assert dict(loaded.cfg.model.channels) == {"conv1": 8, "conv2": 24, "hidden.0": 248}
    images = loaded.dataset.test.images[:100]
    accuracy = np.mean(np.asarray(loaded.model(loaded.preprocess(images))).argmax(-1) == loaded.dataset.test.labels[:100])
    assert accuracy == pytest.approx(small["accuracy"], abs=0.15)


def test_train_starts_from_a_compressed_checkpoint(compressed, tmp_path):
    _, out, _ = compressed
    summary = train_and_evaluate(digits_config(f"trainer.init_from={out / 'checkpoint'}", "trainer.head=null"), tmp_path)
    assert summary["parameters"] < 200_000
    resumed = load_run(tmp_path)  # its config.yaml carries the pruned shape
    assert resumed.model.conv2.out_features == 24


def test_an_unfinished_run_or_an_incomplete_checkpoint_is_refused(compressed, tmp_path):
    import shutil

    from jaxdl.errors import CheckpointError, ConfigError
    from jaxdl.run_status import write_status

    run_dir, out, _ = compressed
    unfinished = shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("compress"))
    write_status(unfinished, "running", attempt=1)  # as a killed run leaves it
    with pytest.raises(ConfigError, match="is a running run, not a completed one"):
        app.compress_and_report(compress_config(f"run_dir={unfinished}", "compress=int8"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    checkpoint = shutil.copytree(out / "checkpoint", tmp_path / "checkpoint")
    (checkpoint / "recipe.yaml").unlink()
    with pytest.raises(CheckpointError, match="lacks recipe.yaml"):
        load_run(checkpoint)
