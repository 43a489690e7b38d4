"""Bad input is refused in one line before any work, and a diverging run stops instead of 'completing'."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from jaxdl.data import Dataset, Split
from jaxdl.data.idx_writer import write_pair
from jaxdl.errors import ConfigError, DataError, TrainingDiverged
from jaxdl.trainer import build_experiment, train_and_evaluate
from tests.conftest import compose_config, quick_overrides, run_cli


@pytest.mark.parametrize(
    "override,message",
    [
        ("trainer.batch_size=0", "trainer.batch_size must be a positive whole number, got 0"),
        ("trainer.batch_size=-1", "trainer.batch_size must be a positive whole number, got -1"),
        ("trainer.eval_batch_size=0", "trainer.eval_batch_size must be a positive whole number, got 0"),
        ("trainer.epochs=0", "trainer.epochs must be a positive whole number, got 0"),
        ("trainer.epochs=-1", "trainer.epochs must be a positive whole number, got -1"),
        ("trainer.best_metric=val/nosuch", "trainer.best_metric 'val/nosuch' is not recorded by this app; choose one of"),
        ("trainer.best_mode=foo", "trainer.best_mode must be max or min, got 'foo'"),
    ],
)
def test_bad_trainer_settings_are_refused_before_any_work(override, message, tmp_path):
    cfg = compose_config(*quick_overrides(override))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_and_evaluate(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_huge_learning_rate_is_reported_as_divergence(tmp_path):
    cfg = compose_config(*quick_overrides("trainer.epochs=2", "optimizer.learning_rate=1e6"))
    with pytest.raises(TrainingDiverged, match="training diverged: the loss is"):
        train_and_evaluate(cfg, tmp_path)
    assert not (tmp_path / "results.json").exists()


def write_idx_set(directory, train_labels, test_labels):
    rng = np.random.default_rng(0)
    for prefix, labels in (("train", train_labels), ("t10k", test_labels)):
        labels = np.asarray(labels, np.uint8)
        write_pair(directory, prefix, Split(rng.integers(0, 255, (len(labels), 8, 8, 1), dtype=np.uint8), labels))


def test_idx_labels_outside_the_classes_are_refused(tmp_path):
    write_idx_set(tmp_path, [0, 1, 2, 255] * 10, [0, 1, 2, 255] * 3)
    with pytest.raises(DataError, match="are not 0..K-1"):
        build_experiment(compose_config("data=idx", f"data.dirs=[{tmp_path}]"))
    with pytest.raises(DataError, match="label 255, outside 0..2"):
        build_experiment(compose_config("data=idx", f"data.dirs=[{tmp_path}]", "+data.class_names=[a,b,c]"))


def test_empty_idx_files_are_refused(tmp_path):
    for name, magic_dims in (
        ("train-images-idx3-ubyte.gz", (3, [0, 8, 8])),
        ("train-labels-idx1-ubyte.gz", (1, [0])),
        ("t10k-images-idx3-ubyte.gz", (3, [0, 8, 8])),
        ("t10k-labels-idx1-ubyte.gz", (1, [0])),
    ):
        ndim, dims = magic_dims
        header = bytes([0, 0, 8, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
        (tmp_path / name).write_bytes(gzip.compress(header))
    with pytest.raises(DataError, match="hold no examples"):
        build_experiment(compose_config("data=idx", f"data.dirs=[{tmp_path}]"))


def test_nan_in_float_inputs_is_refused():
    signals = np.zeros((4, 1, 8, 1), np.float32)
    signals[2, 0, 3, 0] = np.nan
    split = Split(signals, np.array([0, 1, 0, 1], np.int32))
    with pytest.raises(DataError, match="NaN or infinite"):
        Dataset("s", split, split, split, ("a", "b"))


@pytest.mark.parametrize(
    "override,expected",
    [
        ("trainer.batch_size=0", "error: trainer.batch_size must be a positive whole number, got 0"),
        ("trainer.best_mode=foo", "error: trainer.best_mode must be max or min, got 'foo'"),
        ("data=tfds", "error: TFDS data set"),
    ],
)
def test_bad_inputs_on_the_command_line_are_one_line(override, expected, tmp_path):
    args = ["-m", "jaxdl.apps.train", override, f"hydra.run.dir={tmp_path / 'run'}"]
    if override == "data=tfds":
        args.append("data.tfds_name=mnist")
    result = run_cli(*args, env={"TFDS_DATA_DIR": str(tmp_path / "tfds")})
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(expected), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert all("[jaxdl]" in line for line in result.stdout.splitlines() if line.strip())  # no library chatter
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_json_of_the_results_is_never_half_written(tmp_path):
    summary = train_and_evaluate(compose_config(*quick_overrides("trainer.epochs=1")), tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(summary))
    assert not list(tmp_path.glob("*.tmp"))


def test_cpu_devices_divide_the_batch_and_bad_settings_are_refused(monkeypatch):
    from jaxdl import cpu_devices

    monkeypatch.setattr(cpu_devices, "usable_cores", lambda: 8)
    assert cpu_devices.cpu_device_count("auto", (32, 500)) == 4  # 8 and the odd counts do not divide both
    assert cpu_devices.cpu_device_count("auto", (31,)) == 1
    assert cpu_devices.cpu_device_count(3, (32,)) == 3  # an explicit count is the user's choice
    with pytest.raises(ConfigError, match="trainer.cpu_devices must be auto or a positive number, got 0"):
        cpu_devices.cpu_device_count(0, (32,))
