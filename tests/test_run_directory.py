"""One owner per run directory, nothing written before the checks pass, one clean metrics log whatever happens."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxdl.errors import RunRefused
from jaxdl.rundir import LOCK_FILE, RunLock
from jaxdl.trainer import train_and_evaluate
from tests.conftest import REPO, compose_config, quick_overrides, run_cli

TRAIN = ("-m", "jaxdl.apps.train", "trainer.progress=false", "trainer.eval_batch_size=128")


def snapshot(directory: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file below `directory`."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, compile_cache_env):
    run_dir = tmp_path_factory.mktemp("finished")
    result = run_cli(*TRAIN, "trainer.epochs=2", f"hydra.run.dir={run_dir}", env=compile_cache_env)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (("trainer.resume=false",), "holds an earlier run and trainer.resume=false; pass trainer.overwrite=true"),
        (("model=lenet5_classic",), "does not match the model"),
        (("trainer.keep_checkpoints=0",), "trainer.keep_checkpoints must be a positive whole number"),  # status too
    ],
)
def test_a_refused_run_leaves_every_file_byte_identical(finished, overrides, message, compile_cache_env):
    before = snapshot(finished)
    result = run_cli(*TRAIN, "trainer.epochs=2", *overrides, f"hydra.run.dir={finished}", env=compile_cache_env)
    assert message in one_error_line(result)
    assert snapshot(finished) == before


def test_overwrite_removes_the_earlier_run_first(finished, tmp_path):
    import shutil

    run_dir = Path(shutil.copytree(finished, tmp_path / "run"))
    (run_dir / "checkpoints" / "999").mkdir()  # a later step of the old run must not survive
    summary = train_and_evaluate(
        compose_config(*quick_overrides("trainer.epochs=1", "trainer.resume=false", "trainer.overwrite=true")), run_dir
    )
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["40"]
    assert summary["best_step"] == 40 and [r["epoch"] for r in records(run_dir)] == [1, 1]


def test_rerun_and_extension_keep_one_record_per_epoch_and_one_test_record(finished, tmp_path, compile_cache_env):
    import shutil

    run_dir = Path(shutil.copytree(finished, tmp_path / "run"))
    for epochs in (2, 3):  # the same command again, then a longer run in the same directory
        result = run_cli(*TRAIN, f"trainer.epochs={epochs}", f"hydra.run.dir={run_dir}", env=compile_cache_env)
        assert result.returncode == 0, result.stderr[-2000:]
    kinds = [("test" if "test/accuracy" in r else r["epoch"]) for r in records(run_dir)]
    assert kinds == [1, 2, 3, "test"]


def test_a_torn_last_line_is_dropped_with_a_warning(finished, tmp_path, caplog):
    import shutil

    run_dir = Path(shutil.copytree(finished, tmp_path / "run"))
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 120, "epoch": 3, "train/lo')  # a kill in the middle of a write
    train_and_evaluate(compose_config(*quick_overrides("trainer.epochs=2")), run_dir)
    assert "not a complete record" in caplog.text
    assert [("test" if "test/accuracy" in r else r["epoch"]) for r in records(run_dir)] == [1, 2, "test"]


def start_training(run_dir: Path, epochs: int, env: dict, **popen: object) -> subprocess.Popen:
    """`jaxdl-train` on `run_dir` in the background, as a user's first terminal would run it."""
    command = [sys.executable, *TRAIN, f"trainer.epochs={epochs}", f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, **popen)


def test_a_second_process_on_the_same_directory_is_refused(tmp_path, compile_cache_env):
    run_dir = tmp_path / "run"
    first = start_training(run_dir, 50, compile_cache_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run_dir / "metrics.jsonl").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, "the first run ended before the second started"
        result = run_cli(*TRAIN, "trainer.epochs=50", f"hydra.run.dir={run_dir}", env=compile_cache_env)
        assert f"is in use by pid {first.pid}" in one_error_line(result)
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 130 and not (run_dir / LOCK_FILE).exists()  # Ctrl-C: one line, lock released


def test_a_stale_lock_is_taken_over_and_a_live_one_refused(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    lock = RunLock(tmp_path)
    lock.acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    with subprocess.Popen(["sleep", "30"]) as alive:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": alive.pid, "host": os.uname().nodename}))
        with pytest.raises(RunRefused, match=f"in use by pid {alive.pid}"):
            RunLock(tmp_path).acquire()
        alive.kill()


def test_ctrl_c_prints_one_line_and_leaves_a_resumable_run(tmp_path, compile_cache_env):
    run_dir = tmp_path / "run"
    proc = start_training(run_dir, 40, compile_cache_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    saved = lambda: [p for p in (run_dir / "checkpoints").glob("*") if p.name.isdigit()]  # not Orbax's tmp dirs
    while not saved() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert [line for line in err.splitlines() if line.strip()][-1].startswith("interrupted; checkpoints written so far are kept")
    result = run_cli(*TRAIN, "trainer.epochs=2", f"hydra.run.dir={run_dir}", env=compile_cache_env)
    assert result.returncode == 0 and "resumed from" in result.stdout + result.stderr


def test_a_full_disk_outside_a_checkpoint_is_one_line_and_a_failed_status(tmp_path, monkeypatch):
    """ENOSPC injected at the metrics log's write (the checkpoint's own full disk: test_run_checkpoints.py)."""
    import errno

    from jaxdl.apps.job import run_job
    from jaxdl.errors import CheckpointError
    from jaxdl.run_log import MetricsLog

    def full(self, step, **metrics):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(MetricsLog, "write", full)
    with pytest.raises(CheckpointError, match=r"^no space left on device in .*; checkpoints written so far are kept") as err:
        run_job(compose_config(*quick_overrides("trainer.epochs=1")), tmp_path, in_sweep=False)
    assert "\n" not in str(err.value)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "failed" and status["error"].startswith("CheckpointError: no space left on device")
