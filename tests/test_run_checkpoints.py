"""Checkpoints a researcher can trust: the real best step everywhere 'best' is said, every byte a restore reads
verified (arrays, meta, input position, model card, a complete manifest), fallback to the previous verified step."""

from __future__ import annotations

import contextlib
import json
import os
import re
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
from tests.conftest import compose_config, quick_overrides, run_cli
from tests.test_run_directory import one_error_line, snapshot

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


def flip_bit(path: Path, offset: int | None = None, bit: int = 0x10) -> None:
    """Flip one bit of `path` at byte `offset` (default: the middle)."""
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2 if offset is None else offset] ^= bit
    path.write_bytes(bytes(blob))


def flip_after(path: Path, text: str) -> None:
    """Flip the lowest bit of the byte just after `text` in `path` (a digit becomes its neighbour: `4` -> `5`),
    as a bit flip in a JSON value would: the file stays valid JSON with another number."""
    flip_bit(path, path.read_bytes().index(text.encode()) + len(text), bit=0x01)


def rewrite_manifest(step: Path, change) -> None:
    manifest = step / "checksums" / "metadata"
    manifest.write_text(json.dumps(change(json.loads(manifest.read_text()))))


def rename_first_array(manifest: dict) -> dict:
    first = next(k for k in manifest if not k.startswith("@"))
    return {("renamed." + k if k == first else k): v for k, v in manifest.items()}


DAMAGE = {
    "flip a bit": lambda step: flip_bit(data_files(step)[-1]),
    "truncate": lambda step: data_files(step)[-1].write_bytes(data_files(step)[-1].read_bytes()[:100]),
    "delete": lambda step: data_files(step)[-1].unlink(),
    "garble": lambda step: data_files(step)[-1].write_bytes(os.urandom(data_files(step)[-1].stat().st_size)),
    "garble the state metadata": lambda step: (step / "state" / "_METADATA").write_text("{not json"),
    "delete the array metadata": lambda step: (step / "state" / "_METADATA").unlink(),
    "delete the array index": lambda step: (step / "state" / "manifest.ocdbt").unlink(),
    "garble the checksums": lambda step: next((step / "checksums").glob("*metadata*")).write_text("]["),
    "flip the stored epoch": lambda step: flip_after(step / "meta" / "metadata", '"epoch": '),
    "flip the stored step": lambda step: flip_after(step / "meta" / "metadata", '"step": '),
    "flip a stored metric": lambda step: flip_after(step / "meta" / "metadata", '"val/accuracy": 0.'),
    "delete the meta item": lambda step: shutil.rmtree(step / "meta"),
    "drop the meta checksum": lambda step: rewrite_manifest(step, lambda m: {k: v for k, v in m.items() if k != "@meta"}),
    "empty manifest, flipped weight": lambda step: (rewrite_manifest(step, lambda m: {}), flip_bit(data_files(step)[-1])),
    "renamed manifest key, flipped weight": lambda step: (
        rewrite_manifest(step, rename_first_array),
        flip_bit(data_files(step)[-1]),
    ),
    "flip a bit of the model card": lambda step: flip_after(step.parent.parent / "model.json", '"mean": [\n      0.'),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_step_is_refused_in_one_line(peaked, tmp_path, damage):
    run_dir = Path(shutil.copytree(peaked[0], tmp_path / "run"))
    last = max(int(p.name) for p in (run_dir / "checkpoints").iterdir())
    DAMAGE[damage](run_dir / "checkpoints" / str(last))
    with pytest.raises(CheckpointError) as err:
        load_model(run_dir, "last")
    assert "\n" not in str(err.value) and str(last) in str(err.value)


@contextlib.contextmanager
def small_disk(folder: Path, size: str, free: int | None = None):
    """A real tmpfs of `size` mounted at `folder`, filled by a file until `free` bytes are left (if given)."""
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must be able to mount a tmpfs for the disk-full tests")
        pytest.skip("mounting a small tmpfs needs root")
    try:
        if free is not None:
            (folder / "filler").write_bytes(bytes(shutil.disk_usage(folder).free - free))
            assert shutil.disk_usage(folder).free == free
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def assert_full_disk_failure(result: subprocess.CompletedProcess, run_dir: Path, kept: str) -> None:
    """One error line and nothing else on the terminal but log lines, status failed with the reason, no
    temporary checkpoint or status file left."""
    line = one_error_line(result)
    assert re.match(rf"error: no space left on device writing checkpoint \d+ in .*; {kept}; free space and run", line), line
    assert result.stderr.strip() == line and all(" - " in x for x in result.stdout.splitlines()), result.stdout[-2000:]
    assert "[absl]" not in result.stdout and "Traceback" not in result.stdout
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["error"] == "CheckpointError: " + line.removeprefix("error: ")
    assert not list(run_dir.rglob("*.orbax-checkpoint-tmp*")) and not list(run_dir.rglob("*.tmp"))


def test_disk_full_is_one_line_and_the_previous_checkpoint_still_loads(tmp_path, compile_cache_env):
    """A real full disk (an 8 MB tmpfs): one error line on the terminal, Orbax's tracebacks in run.log only,
    status failed, no temporary checkpoint left."""
    with small_disk(tmp_path / "small", "8m") as mount:
        run_dir = mount / "run"
        result = run_cli(
            "-m", "jaxdl.apps.train", *quick_overrides("trainer.epochs=3", "trainer.keep_checkpoints=3"),
            f"hydra.run.dir={run_dir}", env=compile_cache_env,
        )  # fmt: skip
        assert_full_disk_failure(result, run_dir, "step 40 is still the last good one")
        assert "No space left" in (run_dir / "run.log").read_text()  # Orbax's account of it, kept in the log
        assert load_model(run_dir, "last").step == 40  # the one checkpoint that fitted


def test_forty_kilobytes_free_leaves_a_failed_status_and_no_partial_checkpoint(tmp_path, compile_cache_env):
    """The sweep's case: 40 KB free when the run starts. It used to leave status "running", a tmp checkpoint
    and Orbax's tracebacks (its threads outlived a fixed one-second wait; run.log itself hit the full disk and
    logging printed 'Logging error' tracebacks). The partial checkpoint is removed first, which frees the room
    the failed status needs."""
    with small_disk(tmp_path / "small", "1m", free=40 * 1024) as mount:
        run_dir = mount / "run"
        overrides = ("trainer.epochs=1", "trainer.progress=false", "trainer.cpu_devices=1", "trainer.checkpoint_every_steps=1")
        result = run_cli("-m", "jaxdl.apps.train", *overrides, f"hydra.run.dir={run_dir}", env=compile_cache_env)
        assert_full_disk_failure(result, run_dir, "no earlier checkpoint exists")
        assert not (run_dir / "checkpoints").exists() or not any((run_dir / "checkpoints").iterdir())


BEST_DAMAGE = {
    "flip the best's stored validation accuracy": lambda step: flip_after(step / "meta" / "metadata", '"val/accuracy": 0.'),
    "delete the best's meta item": lambda step: shutil.rmtree(step / "meta"),
}


@pytest.mark.parametrize("damage", list(BEST_DAMAGE))
def test_load_model_never_serves_another_best_than_results_json(peaked, tmp_path, damage):
    run_dir = Path(shutil.copytree(peaked[0], tmp_path / "run"))
    best = peaked[2]["best_step"]
    BEST_DAMAGE[damage](run_dir / "checkpoints" / str(best))
    with pytest.raises(CheckpointError) as err:
        load_model(run_dir)
    assert "\n" not in str(err.value) and f"results.json reports step {best} as the best checkpoint" in str(err.value)


# The same command as the `peaked` run, through the real CLI on one device like the in-process run.
PEAKED_CLI = ("-m", "jaxdl.apps.train", *quick_overrides(*PEAK_EARLY), "trainer.cpu_devices=1")
VARYING = ("time/epoch_s", "train/samples_per_s", "time/input_wait")  # wall-clock figures differ between any two runs


def numbers(run_dir: Path) -> tuple[list[dict], dict]:
    """The epoch and test records (without wall-clock figures) and results.json of a run."""
    lines = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return [{k: v for k, v in r.items() if k not in VARYING} for r in lines], json.loads((run_dir / "results.json").read_text())


def test_a_damaged_meta_falls_back_to_the_previous_verified_step_with_identical_results(peaked, tmp_path, compile_cache_env):
    """The sweep's flip of `"epoch"` in the last step's meta: no silent re-run of an epoch, no other best."""
    run_dir = Path(shutil.copytree(peaked[0], tmp_path / "run"))
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir())
    flip_after(run_dir / "checkpoints" / str(steps[-1]) / "meta" / "metadata", '"epoch": ')
    result = run_cli(*PEAKED_CLI, f"hydra.run.dir={run_dir}", env=compile_cache_env)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert f"checkpoints/{steps[-1]} is damaged: its meta (step, epoch, metrics) differs" in output
    assert f"resumed from {run_dir / 'checkpoints'} at epoch 1 (step {steps[0]})" in output
    (records, results), (expected_records, expected_results) = numbers(run_dir), numbers(peaked[0])
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 4]  # each epoch once, then the test record
    assert records == expected_records
    assert {k: results[k] for k in expected_results} == expected_results
    assert results["damaged_checkpoints"] == [steps[-1]]


def test_every_step_damaged_is_refused_and_nothing_moves(peaked, tmp_path, compile_cache_env):
    run_dir = Path(shutil.copytree(peaked[0], tmp_path / "run"))
    for step in (run_dir / "checkpoints").iterdir():
        flip_after(step / "meta" / "metadata", '"epoch": ')
    before = snapshot(run_dir)
    result = run_cli(*PEAKED_CLI, f"hydra.run.dir={run_dir}", env=compile_cache_env)
    assert "is damaged (steps 40, 160); nothing was changed: pass trainer.resume=false trainer.overwrite=true" in (
        one_error_line(result)
    )
    assert "(step 160: is damaged: its meta (step, epoch, metrics) differs from what was written)" in result.stderr
    assert snapshot(run_dir) == before


def test_a_damaged_best_step_is_reported_and_the_run_completes_on_the_best_verified(peaked, tmp_path, compile_cache_env):
    """Not 'trains to the end, then fails, and every re-run fails the same way'."""
    run_dir = Path(shutil.copytree(peaked[0], tmp_path / "run"))
    best, last = peaked[2]["best_step"], max(int(p.name) for p in (peaked[0] / "checkpoints").iterdir())
    flip_bit(data_files(run_dir / "checkpoints" / str(best))[-1])
    result = run_cli(*PEAKED_CLI, f"hydra.run.dir={run_dir}", env=compile_cache_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"the best checkpoint (step {best}) is damaged" in result.stdout + result.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["best_step"] == last and results["damaged_checkpoints"] == [best]
    served = load_run(peaked[0], last)  # the test figures are those of the best verified step
    logits = np.asarray(served.model(served.preprocess(served.dataset.test.images)))
    assert results["test/accuracy"] == pytest.approx(float((logits.argmax(-1) == served.dataset.test.labels).mean()), abs=1e-6)
    assert load_model(run_dir).step == last
    again = train_and_evaluate(compose_config(*quick_overrides(*PEAK_EARLY)), run_dir)  # and again: the same
    assert again["best_step"] == last and again["test/accuracy"] == results["test/accuracy"]


def test_a_mid_epoch_step_without_its_data_item_is_damaged(tmp_path):
    """Deleting a mid-epoch step's `data/` made it resume as an epoch end (an extra epoch trained)."""
    ckpts = RunCheckpoints(tmp_path, keep_last=2)
    state = {"w": np.zeros(3, np.float32)}
    ckpts.save(15, state, meta={"epoch": 1}, metrics={}, data={"epoch": 2, "batch_size": 8, "processes": [{"step": 5}]})
    assert ckpts.meta(15)["epoch"] == 1  # its meta verifies alone (retention reads only that)
    shutil.rmtree(tmp_path / "15" / "data")
    with pytest.raises(CheckpointError, match=r"15 is damaged: its input position differs from what was written"):
        ckpts.restore(15, state)
    ckpts.close()


@pytest.mark.parametrize("damage", ["flip the epoch", "delete the data item"])
def test_a_damaged_mid_epoch_step_falls_back_to_the_epoch_end_before_it(tmp_path, damage):
    """The sweep: a flipped `"epoch"` in a mid-epoch step's meta skipped an epoch and ended "completed"; a deleted
    `data/` resumed it as an epoch end. Either way the resume now takes the verified step before it, said."""
    ckpts = RunCheckpoints(tmp_path / "checkpoints", keep_last=3, best_metric="val/accuracy", best_mode="max")
    state = {"w": np.zeros(3, np.float32)}
    ckpts.save(10, {"w": state["w"] + 1}, meta={"epoch": 1}, metrics={"val/accuracy": 0.5})
    ckpts.save(15, {"w": state["w"] + 2}, meta={"epoch": 1}, metrics={}, data={"epoch": 2, "processes": [{"step": 5}]})
    if damage == "flip the epoch":
        flip_after(tmp_path / "checkpoints" / "15" / "meta" / "metadata", '"epoch": ')
    else:
        shutil.rmtree(tmp_path / "checkpoints" / "15" / "data")
    restored, meta, step, damaged = ckpts.restore_latest_good(state)
    assert step == 10 and meta["epoch"] == 1 and "data" not in meta and list(damaged) == [15]
    assert np.array_equal(restored["w"], np.ones(3, np.float32)) and ckpts.all_steps() == [10]
    assert (tmp_path / "damaged_checkpoints" / "15").is_dir()  # moved aside, reported
    ckpts.close()


def test_retention_deletes_only_after_the_new_step_verifies_and_never_an_unverified_step(tmp_path, monkeypatch):
    ckpts = RunCheckpoints(tmp_path, keep_last=1, best_metric="val/accuracy", best_mode="max")
    state = {"w": np.zeros(3, np.float32)}
    ckpts.save(1, state, meta={"epoch": 1}, metrics={"val/accuracy": 0.9})
    ckpts.save(2, state, meta={"epoch": 2}, metrics={"val/accuracy": 0.5})
    flip_after(tmp_path / "1" / "meta" / "metadata", '"val/accuracy": 0.')  # the best's record no longer verifies
    ckpts.save(3, state, meta={"epoch": 3}, metrics={"val/accuracy": 0.6})
    assert ckpts.all_steps() == [1, 3] and ckpts.best_step() == 3  # 1 kept for the resume to report; 2 deleted

    def unreadable(step, like):
        raise CheckpointError(f"checkpoint {tmp_path / str(step)} is damaged: 1 array(s) differ")

    monkeypatch.setattr(ckpts, "restore", unreadable)
    with pytest.raises(CheckpointError, match="right after it was written; no older checkpoint was deleted"):
        ckpts.save(4, state, meta={"epoch": 4}, metrics={"val/accuracy": 0.7})
    assert ckpts.all_steps() == [1, 3, 4]
    ckpts.close()


def test_import_refuses_a_run_directory_even_with_overwrite(peaked, capsys):
    from jaxdl.apps.import_model import main as import_main

    before = snapshot(peaked[0])
    for extra in ([], ["overwrite=true"]):
        with pytest.raises(SystemExit) as exit_info:
            import_main(["source=torchvision:squeezenet1_1", "weights=none", f"out={peaked[0]}", *extra])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1
        assert (
            err == f"error: out={peaked[0]} is a training run directory; an import never writes into one: pass another directory"
        )
    assert snapshot(peaked[0]) == before


def test_a_step_of_the_format_before_meta_checksums_is_refused_as_unverifiable(tmp_path):
    ckpts = RunCheckpoints(tmp_path, keep_last=1)
    state = {"params": np.zeros(3, np.float32)}
    ckpts.save(5, state, meta={"epoch": 1}, metrics={"val/accuracy": 0.5})
    rewrite_manifest(tmp_path / "5", lambda m: {k: v for k, v in m.items() if k != "@meta"})
    meta = tmp_path / "5" / "meta" / "metadata"
    meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "step"}))
    with pytest.raises(CheckpointError, match=r"5 was written by a jaxdl without meta checksums and cannot be verified"):
        ckpts.restore(5, state)
    assert ckpts.best_step() is None  # and never the best
    ckpts.close()


def _preempted(*_args, **_kwargs):
    """What Orbax raises when a signal handler's `sys.exit` fires inside TensorStore's read or write (the chain
    seen when submitit's preemption handler hit a save's read-back, 1 save in 30 under a random SIGUSR2)."""
    try:
        raise SystemExit(-1)
    except SystemExit as stop:
        raise Exception("Encountered error while reading array index: (slice(0, 12, 1),)") from stop


@pytest.mark.parametrize("where", ["restore", "save"])
def test_an_exit_inside_a_checkpoint_read_or_write_leaves_as_asked_not_as_a_damaged_checkpoint(tmp_path, monkeypatch, where):
    """A preempted Slurm job whose signal landed in a save's read-back was recorded as failed ('damaged ...
    right after it was written') and the sweep counted a failure; the exit must go on as an exit."""
    from jaxdl.trainer import build_experiment

    state = build_experiment(compose_config(*quick_overrides("model.width=0.25", "trainer.cpu_devices=1"))).state
    ckpts = RunCheckpoints(tmp_path / "checkpoints")
    ckpts.save(1, state, {}, {"val/accuracy": 0.5})
    monkeypatch.setattr(ckpts.manager, where, _preempted)
    with pytest.raises(SystemExit):
        ckpts.save(2, state, {}, {"val/accuracy": 0.5})
    monkeypatch.undo()
    kept = {"save": [1], "restore": [1, 2]}[where]  # a cut write is removed; a written step stays, verified when read
    assert ckpts.all_steps() == kept and all(ckpts.restore(step, state) for step in kept)
