"""`status.json` of a run: running, completed or failed (with its error), attempts and wall time.

A run may take several attempts in the same directory: a preempted or timed-out SLURM
job requeued, or a sweep re-run. `attempt` counts them and `wall_s` adds up their wall
time. An attempt stopped by a signal records its time as it ends; one killed outright
(SIGKILL, out of memory) leaves `running` behind, and the next attempt counts its time up
to the last file it wrote. Under SLURM, `SLURM_RESTART_COUNT` also counts the attempts
of a requeued job that died before writing anything.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
STATES = ("running", "completed", "failed")


def read_status(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_status(run_dir: str | Path, status: str, **fields: Any) -> dict[str, Any]:
    """Replace the status file atomically (readers never see half a file)."""
    assert status in STATES, status
    record = {"status": status, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), **fields}
    path = Path(run_dir) / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, text = path.with_suffix(".tmp"), json.dumps(record, indent=2) + "\n"
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError:  # a full disk: no room for a second file, but the old one's blocks fit the new record
        tmp.unlink(missing_ok=True)
        try:
            path.write_text(text)
        except OSError as err:
            logging.getLogger("jaxdl").error("could not write %s (%s)", path, err)
    return record


def _last_write(run_dir: Path) -> float:
    """When the run directory last changed: the end of an attempt that was killed outright.

    `.hydra/` is left out: Hydra rewrites it as the next attempt starts."""
    latest = 0.0
    for current, dirs, files in os.walk(run_dir):
        dirs[:] = [d for d in dirs if d != ".hydra"]
        for name in files:
            try:
                latest = max(latest, os.stat(os.path.join(current, name)).st_mtime)
            except FileNotFoundError:
                continue
    return latest


def _slurm_attempt() -> tuple[str | None, int]:
    """This SLURM job's id as squeue, sacct and scancel name it (`12_3` for a task of an array, as a
    sweep submits) and how often SLURM restarted it (requeues); (None, 0) outside SLURM."""
    job, array, task = (os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"))
    if array and task:
        job = f"{array}_{task}"
    return job, int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


@dataclasses.dataclass
class Attempt:
    """One attempt at a run: its number, the wall time of the attempts before it, and when it started."""

    run_dir: Path
    number: int
    earlier_wall_s: float
    slurm_job: str | None = None
    slurm_restarts: int = 0
    started: float = dataclasses.field(default_factory=time.time)

    @property
    def wall_s(self) -> float:
        """Wall time of all attempts so far, this one up to now."""
        return self.earlier_wall_s + time.time() - self.started

    def _fields(self, **extra: Any) -> dict[str, Any]:
        slurm = {"slurm_job": self.slurm_job, "slurm_restarts": self.slurm_restarts} if self.slurm_job else {}
        return {"attempt": self.number, **slurm, **extra}

    def running(self) -> None:
        """Record the attempt as running (`started` lets a later attempt count its time if it is killed)."""
        write_status(self.run_dir, "running", **self._fields(wall_s=self.earlier_wall_s, started=self.started))

    def stopped(self, reason: str) -> None:
        """Record an attempt ended by a signal (requeue, Ctrl-C): still `running`, its time counted."""
        write_status(self.run_dir, "running", **self._fields(wall_s=self.wall_s, stopped=reason))

    def ended(self, status: str, **fields: Any) -> None:
        write_status(self.run_dir, status, **self._fields(wall_s=self.wall_s, **fields))


def begin_attempt(run_dir: str | Path) -> Attempt:
    """The attempt starting now in `run_dir`, numbered and timed after the earlier ones."""
    run_dir = Path(run_dir)
    previous = read_status(run_dir)
    number, wall = int(previous.get("attempt", 0)), float(previous.get("wall_s", 0.0))
    if previous.get("status") == "running" and "started" in previous:  # killed outright
        wall += max(0.0, _last_write(run_dir) - float(previous["started"]))
    job, restarts = _slurm_attempt()
    if job is not None and previous.get("slurm_job") == job:
        number += max(1, restarts - int(previous.get("slurm_restarts", 0)))
    else:
        number += 1 + restarts
    return Attempt(run_dir, number, wall, job, restarts)
