"""The stall watchdog (jaxdl/watchdog.py): a run that stops making progress ends in one line, resumable.

The stall is injected (`JAXDL_TEST_STALL_AT_BEAT`: the N-th step sleeps), so the test never depends on
XLA's real deadlock and never waits for CI's time limit.
"""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from jaxdl import watchdog
from jaxdl.errors import ConfigError
from tests.conftest import quick_overrides, run_cli


@pytest.fixture(scope="module")
def stalled_then_resumed(tmp_path_factory, compile_cache_env):
    """A 1-epoch digits run whose step 25 never returns (checkpoints at steps 10 and 20), then the same command."""
    run = tmp_path_factory.mktemp("stall") / "run"
    args = ["-m", "jaxdl.apps.train", *quick_overrides("trainer.epochs=1", "trainer.checkpoint_every_steps=10")]
    args += ["trainer.cpu_devices=1", f"hydra.run.dir={run}"]
    stalled = run_cli(*args, "trainer.stall_timeout_s=5", env={**compile_cache_env, watchdog.TEST_STALL_ENV: "25"})
    status, lock, log = json.loads((run / "status.json").read_text()), (run / ".lock").exists(), (run / "run.log").read_text()
    return run, stalled, status, lock, log, run_cli(*args, env=compile_cache_env)


def test_a_stalled_run_ends_in_one_line_and_the_rerun_resumes(stalled_then_resumed):
    run, stalled, status, lock, log, resumed = stalled_then_resumed
    assert stalled.returncode == watchdog.EXIT_STALLED, stalled.stderr[-3000:]
    lines = [line for line in stalled.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stalled.stderr[-3000:]
    assert lines[0].startswith("error: the run stalled: no progress for ") and "after 25 step(s)" in lines[0]
    assert "trainer.cpu_devices=1" in lines[0] and "run the same command again to resume" in lines[0]
    assert status["status"] == "failed" and status["reason"] == "stalled" and status["attempt"] == 1
    assert not lock
    assert "STALLED: no progress" in log and "in train_epoch" in log  # the main thread's stack: where it stood

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "inside epoch 1 (step 20)" in resumed.stdout
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "completed" and status["attempt"] == 2
    assert "test/accuracy" in json.loads((run / "results.json").read_text())


def test_a_stalled_explain_call_ends_in_one_line_and_leaves_no_report(stalled_then_resumed, tmp_path, compile_cache_env):
    """jaxdl-explain owns no run directory: the stacks go to the log in its output folder, and nothing there can
    pass for a finished report. Beats: 1 the split's predictions; then saliency's batch, 3 saliency done (sleeps)."""
    out = tmp_path / "explain"
    args = ["-m", "xai.explain.app", f"run_dir={stalled_then_resumed[0]}", f"hydra.run.dir={out}", "explain.methods=[saliency]"]
    args += ["explain.images.count=2", "explain.metrics.faithfulness=false", "explain.metrics.sanity=false"]
    env = {**compile_cache_env, watchdog.TEST_STALL_ENV: "3"}
    stalled = run_cli(*args, "trainer.stall_timeout_s=5", "trainer.cpu_devices=1", env=env)
    assert stalled.returncode == watchdog.EXIT_STALLED, stalled.stderr[-3000:]
    lines = [line for line in stalled.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stalled.stderr[-3000:]
    assert re.match(r"error: the explain call stalled: no progress for \d+ s after 3 batch\(es\) of this attempt "
                    r"\(trainer.stall_timeout_s=5\); thread stacks are in .*/run.log; no report was written", lines[0])  # fmt: skip
    assert "trainer.cpu_devices=1" in lines[0] and "run the same command again" in lines[0]
    log = (out / "run.log").read_text()
    assert "STALLED: no progress" in log and "in _explain" in log  # the main thread's stack: where it stood
    assert not (out / "report.html").exists() and not (out / "metrics.json").exists()
    assert (out / "maps" / "saliency.npy").is_file()  # what finished before the stall is kept, as the line says


def test_the_automatic_timeout_is_generous(tmp_path):
    dog = watchdog.Watchdog(None, tmp_path / "run.log", str)
    assert dog.limit() == max(watchdog.FIRST_BEAT_MIN_S, 4 * watchdog.MIN_AUTO_S)  # until the 2nd beat: the 1st compiles
    dog.beats = 10
    dog.intervals.extend([0.01] * 9)
    assert dog.limit() == watchdog.MIN_AUTO_S  # fast steps: never under 5 minutes
    dog.intervals.extend([10.0] * 20)
    assert dog.limit() == 10.0 * watchdog.FACTOR  # slow steps: a multiple of the median
    explicit = watchdog.Watchdog(30.0, tmp_path / "run.log", str)
    explicit.beat(), explicit.beat()
    assert explicit.limit() == 30.0
    explicit.long_phase()  # an explain method compiles afresh: the first-step allowance again, until its 2nd beat
    assert explicit.limit() == watchdog.FIRST_BEAT_MIN_S
    explicit.beat()
    assert explicit.limit() == watchdog.FIRST_BEAT_MIN_S
    explicit.beat()
    assert explicit.limit() == 30.0 and explicit.total == 4


@pytest.mark.parametrize("value", [0, -1, "fast", True])
def test_bad_stall_timeouts_are_refused(value):
    with pytest.raises(ConfigError, match="trainer.stall_timeout_s must be a positive number of seconds or null"):
        watchdog.check_timeout(value)


def test_a_stall_under_slurm_requeues_the_job(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    assert not watchdog._requeue_slurm_job()  # outside SLURM: nothing to requeue
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert not watchdog._requeue_slurm_job()  # only process 0 requeues, as submitit does
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert watchdog._requeue_slurm_job()
    assert calls.read_text().split() == ["requeue", "77_3"]
