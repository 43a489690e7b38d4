"""A stall watchdog: a run that stops making progress ends in one line, resumable, instead of hanging all night.

The run directory's owner (jaxdl/rundir.py) starts it once the directory is the run's (`start`), and
`jaxdl-explain` once its output folder is open (`watch`); training steps, evaluation batches and explain
batches call `beat()`. When no beat comes for `trainer.stall_timeout_s` (default: 100x the median time
between beats, at least 5 minutes; until the second beat, as the first step compiles, at least 15 minutes;
`long_phase()` grants that allowance again: before a checkpoint save, which may take minutes, and before
each explain method, which compiles its own functions and runs as one computation: there the allowance is
at least an hour), the
watchdog thread - the main thread may be stuck inside XLA, where no Python code and no signal handler runs -

1. appends every Python thread's stack to the log file (`run.log`; faulthandler),
2. a training run: marks `status.json` failed with reason "stalled" (the attempt's wall time kept),
   releases the run directory's lock, so a re-run resumes from the last checkpoint at once, and under
   SLURM requeues the job (`scontrol requeue`, as submitit does on preemption); an explain call: removes
   whatever could pass for a finished report,
3. prints one `error:` line naming the cause and the remedy and exits with `EXIT_STALLED`.

Test hook: `JAXDL_TEST_STALL_AT_BEAT=N` makes the N-th beat of the process sleep forever (an injected stall).
"""

from __future__ import annotations

import faulthandler
import functools
import os
import shutil
import statistics
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from jaxdl import interrupt
from jaxdl.errors import ConfigError
from jaxdl.run_status import read_status, write_status

EXIT_STALLED = 75  # EX_TEMPFAIL: try again (the run resumes)
MIN_AUTO_S = 300.0  # the automatic timeout is never shorter (a checkpoint save, a slow epoch end)
FACTOR = 100  # ... and otherwise this many median beat intervals
FIRST_BEAT_MIN_S = 900.0  # the first step compiles: until the second beat the limit is at least this
POLL_S = 1.0
TEST_STALL_ENV = "JAXDL_TEST_STALL_AT_BEAT"

T = TypeVar("T")
_active: "Watchdog | None" = None


def check_timeout(value: Any) -> float | None:
    """`trainer.stall_timeout_s`: a positive number of seconds, or null for the automatic one."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"trainer.stall_timeout_s must be a positive number of seconds or null (automatic), got {value!r}")
    return float(value)


class Watchdog:
    """Watches the beats of one run or call; see the module docstring for what a stall does.

    `on_stall(cause)` does what the owner needs at a stall and returns the sentence saying what to do next."""

    def __init__(
        self,
        timeout_s: float | None,
        log_file: Path,
        on_stall: Callable[[str], str],
        what: str = "run",
        unit: str = "step",
        units: str = "step(s)",
        first_min_s: float = FIRST_BEAT_MIN_S,
    ) -> None:
        self.timeout_s, self.log_file, self.on_stall, self.what, self.unit = timeout_s, log_file, on_stall, what, unit
        self.units, self.first_min_s = units, first_min_s
        self.beats, self.total, self.last = 0, 0, time.monotonic()
        self.intervals: deque[float] = deque(maxlen=256)
        self.stall_at = int(os.environ.get(TEST_STALL_ENV, "0") or 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="jaxdl-watchdog", daemon=True)

    def limit(self) -> float:
        """Seconds without a beat that count as a stall now."""
        if self.timeout_s is not None:
            steady = self.timeout_s
        else:
            median = statistics.median(self.intervals) if self.intervals else 0.0
            steady = max(MIN_AUTO_S, FACTOR * median)
        return steady if self.beats >= 2 else max(self.first_min_s, 4 * steady)  # the first step compiles

    def beat(self) -> None:
        interrupt.raise_if_requested()
        now = time.monotonic()
        if self.beats:
            self.intervals.append(now - self.last)
        self.beats, self.total, self.last = self.beats + 1, self.total + 1, now
        if self.total == self.stall_at:
            time.sleep(10**6)  # the injected stall (tests only)

    def long_phase(self) -> None:
        """Something long and legitimate comes (a checkpoint save, a phase that compiles afresh): the first-step
        allowance again, until the second beat after it."""
        self.beats, self.last = 0, time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            idle = time.monotonic() - self.last
            if idle > self.limit():
                self._stalled(idle)

    def _stalled(self, idle: float) -> None:
        where = f"after {self.total} {self.units} of this attempt" if self.total else f"before its first {self.unit}"
        cause = f"no progress for {idle:.0f} s {where} (trainer.stall_timeout_s={self.limit():.0f})"
        try:
            with open(self.log_file, "a") as f:
                f.write(f"\n{time.strftime('%Y-%m-%d %H:%M:%S')} STALLED: {cause}; every thread's stack:\n")
                f.flush()
                faulthandler.dump_traceback(f, all_threads=True)
        except OSError:
            pass
        then = self.on_stall(cause)
        line = (
            f"error: the {self.what} stalled: {cause}; thread stacks are in {self.log_file}; {then}. On a CPU with "
            "several XLA devices this is XLA's all-reduce deadlock: add trainer.cpu_devices=1\n"
        )
        os.write(2, line.encode())
        os._exit(EXIT_STALLED)

    def start(self) -> "Watchdog":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def _fail_run(run_dir: Path, release: Callable[[], None], main: bool, cause: str) -> str:
    """A training run's stall: status failed / stalled, the lock released, the SLURM job requeued."""
    requeued = False
    if main:
        previous = read_status(run_dir)
        kept = {k: previous[k] for k in ("attempt", "slurm_job", "slurm_restarts") if k in previous}
        started = previous.get("started")
        wall = float(previous.get("wall_s", 0.0)) + (time.time() - float(started) if started else 0.0)
        write_status(run_dir, "failed", **kept, wall_s=wall, reason="stalled", error=f"stalled: {cause}")
        release()
        requeued = _requeue_slurm_job()
    return "the job was requeued and resumes" if requeued else f"run the same command again to resume from {run_dir}"


def _requeue_slurm_job() -> bool:
    """Requeue this SLURM job as submitit does on preemption (process 0 only); whether it was requeued."""
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if not job or os.environ.get("SLURM_PROCID", "0") != "0" or not shutil.which("scontrol"):
        return False
    try:
        subprocess.run(["scontrol", "requeue", job], check=True, timeout=60, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def watch(timeout_s: Any, log_file: Path, on_stall: Callable[[str], str], **kwargs: Any) -> Watchdog:
    """Start watching (replacing any earlier watchdog of this process); the arguments are `Watchdog`'s."""
    global _active
    stop()
    _active = Watchdog(check_timeout(timeout_s), Path(log_file), on_stall, **kwargs).start()
    return _active


def start(run_dir: Path, timeout_s: Any, release: Callable[[], None], main: bool, log_file: Path) -> Watchdog:
    """Start watching the training run in `run_dir`; Ctrl-C now stops the run where it stands."""
    dog = watch(timeout_s, log_file, functools.partial(_fail_run, Path(run_dir), release, main))
    interrupt.running(True)
    return dog


def stop() -> None:
    global _active
    interrupt.running(False)
    if _active is not None:
        _active.stop()
        _active = None


def beat() -> None:
    """Progress: a training step dispatched, an evaluation or explain batch done (no-op without a watchdog)."""
    if _active is not None:
        _active.beat()


def long_phase() -> None:
    """A checkpoint save or an explain method comes: see `Watchdog.long_phase`."""
    if _active is not None:
        _active.long_phase()


def beating(items: Iterable[T]) -> Iterator[T]:
    """`items`, with a beat before each (a training loop's batches)."""
    for item in items:
        beat()
        yield item
