"""status.json across the attempts of a run: requeues, kills and sweep re-runs (no cluster needed)."""

from __future__ import annotations

import os
import time

import pytest

from jaxdl.run_status import begin_attempt, read_status, write_status


@pytest.fixture(autouse=True)
def outside_slurm(monkeypatch):
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(key, raising=False)


def _in_slurm(monkeypatch, array: str, task: str, restarts: int) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", array)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
    monkeypatch.setenv("SLURM_RESTART_COUNT", str(restarts))


def test_an_attempt_stopped_by_a_signal_adds_its_time(tmp_path):
    first = begin_attempt(tmp_path)
    first.running()
    first.started -= 40  # it ran 40 s before the requeue signal
    first.stopped("SystemExit: -1")
    assert read_status(tmp_path)["wall_s"] == pytest.approx(40, abs=1)
    second = begin_attempt(tmp_path)
    assert (second.number, second.earlier_wall_s) == (2, pytest.approx(40, abs=1))
    second.started -= 25
    second.ended("completed")
    assert read_status(tmp_path) | {"updated": None} == {
        "status": "completed",
        "updated": None,
        "attempt": 2,
        "wall_s": pytest.approx(65, abs=1),
    }


def test_an_attempt_killed_outright_counts_up_to_the_last_file_it_wrote(tmp_path):
    started = time.time() - 100
    write_status(tmp_path, "running", attempt=1, wall_s=10.0, started=started)
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    os.utime(tmp_path / "metrics.jsonl", (started + 30, started + 30))
    os.utime(tmp_path / "status.json", (started, started))
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("")  # rewritten as the next attempt starts: not counted
    attempt = begin_attempt(tmp_path)
    assert (attempt.number, attempt.earlier_wall_s) == (2, pytest.approx(10 + 30, abs=0.01))


def test_slurm_requeues_count_even_attempts_that_wrote_nothing(tmp_path, monkeypatch):
    _in_slurm(monkeypatch, "41", "3", restarts=0)
    begin_attempt(tmp_path).running()
    assert read_status(tmp_path) | {"updated": None, "started": None} == {
        "status": "running",
        "updated": None,
        "started": None,
        "attempt": 1,
        "slurm_job": "41_3",
        "slurm_restarts": 0,
        "wall_s": 0.0,
    }
    _in_slurm(monkeypatch, "41", "3", restarts=2)  # restart 1 died before writing anything
    assert begin_attempt(tmp_path).number == 3
    _in_slurm(monkeypatch, "57", "3", restarts=0)  # the same sweep re-run: a new job in the same directory
    assert begin_attempt(tmp_path).number == 2
