"""End-to-end training on real digits: accuracy, artefacts, determinism, resume, and bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from jaxdl.checkpoint import RunCheckpoints
from jaxdl.errors import CheckpointError, ConfigError, TrainingDiverged
from jaxdl.runs import load_run
from jaxdl.trainer import train_and_evaluate
from tests.conftest import REPO, compose_config, quick_overrides, run_cli

DETERMINISTIC_KEYS = ("epoch", "step", "train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy")


def _records(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k in DETERMINISTIC_KEYS} for line in lines]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("digits_run")
    summary = train_and_evaluate(compose_config(*quick_overrides("trainer.epochs=6")), run_dir)
    return run_dir, summary


def test_lenet5_learns_digits_and_writes_the_run_directory(trained_run):
    run_dir, summary = trained_run
    assert summary["test/accuracy"] >= 0.95
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "curves.png",
        "results.json",
        "eval/confusion_matrix.csv",
        "eval/confusion_matrix.png",
        "eval/misclassified.png",
        "eval/per_class_accuracy.csv",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    matrix = [line.split(",")[1:] for line in (run_dir / "eval/confusion_matrix.csv").read_text().splitlines()[1:]]
    assert sum(int(v) for row in matrix for v in row) == 359  # every test image counted once
    records = _records(run_dir)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6, 6] and "test/accuracy" in records[-1]
    assert records[-2]["train/loss"] < records[0]["train/loss"]


def test_checkpoints_keep_the_last_and_the_best(trained_run):
    run_dir, summary = trained_run
    ckpts = RunCheckpoints(run_dir / "checkpoints", keep_last=2)
    steps = ckpts.manager.all_steps()
    assert ckpts.latest_step() == 6 * 40 and len(steps) <= 3 and summary["best_step"] in steps
    ckpts.close()


def test_load_run_restores_the_best_checkpoint(trained_run):
    run_dir, summary = trained_run
    run = load_run(run_dir)
    logits = run.model(run.preprocess(run.dataset.test.images))
    accuracy = float((logits.argmax(-1) == run.dataset.test.labels).mean())
    assert run.step == summary["best_step"] and accuracy == pytest.approx(summary["test/accuracy"], abs=1e-6)


def test_same_seed_gives_the_same_metrics(tmp_path):
    cfg = compose_config(*quick_overrides())
    train_and_evaluate(cfg, tmp_path / "a")
    train_and_evaluate(cfg, tmp_path / "b")
    assert _records(tmp_path / "a") == _records(tmp_path / "b")


def test_sigkill_and_resume_ends_with_the_uninterrupted_metrics(tmp_path):
    args = [
        "-m",
        "jaxdl.apps.train",
        "trainer.epochs=4",
        "trainer.batch_size=16",
        "model.width=0.25",
        "trainer.progress=false",
        "trainer.keep_checkpoints=5",
    ]
    reference = run_cli(*args, f"hydra.run.dir={tmp_path / 'whole'}")
    assert reference.returncode == 0, reference.stderr[-2000:]

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, *args, f"hydra.run.dir={killed_dir}"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first_epoch = killed_dir / "checkpoints" / str(1295 // 16)
    deadline = time.time() + 240
    while not first_epoch.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert len(_records(killed_dir)) < 5

    resumed = run_cli(*args, f"hydra.run.dir={killed_dir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert _records(killed_dir) == _records(tmp_path / "whole")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    train_and_evaluate(compose_config(*quick_overrides("trainer.epochs=1", "optimizer=sgd")), tmp_path)
    good = RunCheckpoints(tmp_path / "checkpoints").latest_step()
    exploding = compose_config(*quick_overrides("trainer.epochs=3", "optimizer=sgd", "optimizer.learning_rate=1e9"))
    with pytest.raises(TrainingDiverged, match=rf"loss is (nan|inf).*last good checkpoint \(step {good}\)"):
        train_and_evaluate(exploding, tmp_path)
    assert RunCheckpoints(tmp_path / "checkpoints").latest_step() == good


def test_checkpoint_of_another_model_is_refused(tmp_path):
    train_and_evaluate(compose_config(*quick_overrides("trainer.epochs=1")), tmp_path)
    with pytest.raises(CheckpointError, match="does not match the model"):
        train_and_evaluate(compose_config(*quick_overrides("model=lenet5_classic")), tmp_path)


def test_batch_size_larger_than_the_data_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="larger than the 1295 training examples"):
        train_and_evaluate(compose_config(*quick_overrides("trainer.batch_size=4096")), tmp_path)


@pytest.mark.parametrize(
    "override,expected",
    [
        ("model=resnet9000", "error: unknown model 'resnet9000'; valid names: "),
        ("data=imagenet22k", "error: unknown data 'imagenet22k'; valid names: "),
        ("optimizer=adamax", "error: unknown optimizer 'adamax'; valid names: "),
        (
            "optimizer.name=adamax",
            "error: unknown optimizer 'adamax'; valid names: adam, adamw, momentum, nesterov, rmsprop, sgd",
        ),
        ("data.dirs=[/nonexistent/mnist]", "error: data set 'idx' not found: no IDX files in /nonexistent/mnist"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(override, expected, tmp_path):
    args = ["-m", "jaxdl.apps.train", override, f"hydra.run.dir={tmp_path}"]
    if override.startswith("data.dirs"):
        args.insert(2, "data=idx")
    result = run_cli(*args)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and error_lines[0].startswith(expected), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
