"""Checkpoints a researcher can trust: the real best step everywhere 'best' is said, verified arrays, fallback."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jaxdl import load_model
from jaxdl.apps.job import objective_value
from jaxdl.checkpoint import RunCheckpoints
from jaxdl.errors import CheckpointError
from jaxdl.runs import load_run
from jaxdl.trainer import train_and_evaluate
from tests.conftest import compose_config, quick_overrides

# The run's *worst* validation accuracy is its first epoch's (a model trained from scratch improves), so
# ranking by best_mode=min puts the 'best' checkpoint deterministically before the end of the run.
PEAK_EARLY = ("trainer.epochs=4", "trainer.keep_checkpoints=1", "trainer.best_mode=min")


def epoch_records(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "val/accuracy" in r]


@pytest.fixture(scope="module")
def peaked(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("peaked")
    cfg = compose_config(*quick_overrides(*PEAK_EARLY))
    summary = train_and_evaluate(cfg, run_dir)
    return run_dir, cfg, summary


def test_best_checkpoint_is_the_metric_peak_everywhere(peaked):
    run_dir, cfg, summary = peaked
    records = epoch_records(run_dir)
    peak = min(records, key=lambda r: r["val/accuracy"])
    last = records[-1]["step"]
    assert peak["step"] != last, "precondition: the peak must come before the end"
    assert summary["best_step"] == peak["step"]
    assert json.loads((run_dir / "results.json").read_text())["best_step"] == peak["step"]
    assert objective_value(cfg, summary) == pytest.approx(peak["val/accuracy"])
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir()) == sorted({peak["step"], last})
    best = load_run(run_dir)
    assert best.step == peak["step"] and load_run(run_dir, "last").step == last
    logits = np.asarray(best.model(best.preprocess(best.dataset.test.images)))
    accuracy = float((logits.argmax(-1) == best.dataset.test.labels).mean())
    assert accuracy == pytest.approx(summary["test/accuracy"], abs=1e-6)  # the test figure is the best step's


def test_retention_keeps_the_last_n_and_the_best_only(tmp_path):
    ckpts = RunCheckpoints(tmp_path, keep_last=2, best_metric="val/accuracy", best_mode="max")
    state = {"w": np.zeros(3, np.float32)}
    for step, accuracy in zip(range(1, 6), [0.5, 0.9, 0.7, 0.6, 0.65]):
        ckpts.save(step, {"w": state["w"] + step}, meta={"epoch": step}, metrics={"val/accuracy": accuracy})
    assert ckpts.all_steps() == [2, 4, 5] and ckpts.best_step() == 2
    restored, meta = ckpts.restore(2, state)
    assert meta["epoch"] == 2 and np.array_equal(restored["w"], np.full(3, 2, np.float32))
    ckpts.close()


def test_a_mid_epoch_data_item_is_stored_verified_and_never_best(tmp_path):
    ckpts = RunCheckpoints(tmp_path, keep_last=1, best_metric="val/accuracy", best_mode="max")
    state = {"w": np.zeros(3, np.float32)}
    position = {"epoch": 2, "batch_size": 8, "processes": [{"step": 5, "grain": {"next_index": 42}}]}
    ckpts.save(10, state, meta={"epoch": 1}, metrics={"val/accuracy": 0.5})
    ckpts.save(15, state, meta={"epoch": 1}, metrics={}, data=position)
    assert ckpts.all_steps() == [10, 15] and ckpts.best_step() == 10  # the last one and the best epoch end
    assert ckpts.restore(15, state)[1]["data"] == position and "data" not in ckpts.restore(10, state)[1]
    stored = tmp_path / "15" / "data" / "metadata"
    stored.write_text(stored.read_text().replace("42", "43"))
    with pytest.raises(CheckpointError, match=r"15 is damaged: its input position differs from what was written"):
        ckpts.restore(15, state)
    ckpts.close()


def data_files(step_dir: Path) -> list[Path]:
    return sorted((p for p in (step_dir / "state").rglob("*") if p.is_file() and "/d/" in str(p)), key=lambda p: p.stat().st_size)


def flip_bit(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x10
    path.write_bytes(bytes(blob))


DAMAGE = {
    "flip a bit": lambda step: flip_bit(data_files(step)[-1]),
    "truncate": lambda step: data_files(step)[-1].write_bytes(data_files(step)[-1].read_bytes()[:100]),
    "delete": lambda step: data_files(step)[-1].unlink(),
    "garble": lambda step: data_files(step)[-1].write_bytes(os.urandom(data_files(step)[-1].stat().st_size)),
    "garble the state metadata": lambda step: (step / "state" / "_METADATA").write_text("{not json"),
    "delete the array metadata": lambda step: (step / "state" / "_METADATA").unlink(),
    "delete the array index": lambda step: (step / "state" / "manifest.ocdbt").unlink(),
    "garble the checksums": lambda step: next((step / "checksums").glob("*metadata*")).write_text("]["),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_step_is_refused_in_one_line(peaked, tmp_path, damage):
    run_dir = Path(shutil.copytree(peaked[0], tmp_path / "run"))
    last = max(int(p.name) for p in (run_dir / "checkpoints").iterdir())
    DAMAGE[damage](run_dir / "checkpoints" / str(last))
    with pytest.raises(CheckpointError) as err:
        load_model(run_dir, "last")
    assert "\n" not in str(err.value) and str(last) in str(err.value)


def test_resume_skips_a_damaged_latest_step_with_a_warning(peaked, tmp_path, caplog):
    run_dir = Path(shutil.copytree(peaked[0], tmp_path / "run"))
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir())
    flip_bit(data_files(run_dir / "checkpoints" / str(steps[-1]))[-1])
    with caplog.at_level(logging.WARNING, logger="jaxdl"):
        summary = train_and_evaluate(compose_config(*quick_overrides(*PEAK_EARLY[1:], "trainer.epochs=5")), run_dir)
    assert any("is damaged" in r.message and "trying the previous checkpoint" in r.message for r in caplog.records)
    epochs = [r["epoch"] for r in epoch_records(run_dir)]
    assert epochs == [1, 2, 3, 4, 5]  # epochs after the good step were trained again, each recorded once
    assert summary["epochs"] == 5


def test_disk_full_is_one_line_and_the_previous_checkpoint_still_loads(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True).returncode:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must be able to mount a tmpfs for the disk-full test")
        pytest.skip("mounting a small tmpfs needs root")
    try:
        cfg = compose_config(*quick_overrides("trainer.epochs=3", "trainer.keep_checkpoints=3"))
        with pytest.raises(CheckpointError, match=r"^no space left on device writing checkpoint \d+ in .*step \d+ is still"):
            train_and_evaluate(cfg, mount / "run")
        assert not list((mount / "run").rglob("*.orbax-checkpoint-tmp*")) and not list((mount / "run").rglob("*.tmp"))
        assert load_model(mount / "run", "last").step == 40  # the one checkpoint that fitted
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
