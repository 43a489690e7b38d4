"""The run directory every training app writes (classifier, GAN, autoencoder), owned by one process.

Opening a run directory, in this order, writes nothing until every check has passed:

1. the lock (`.lock`: pid, host, SLURM job): a second process on the same directory is refused
   in one line; a lock left by a dead local process, or by an earlier attempt of the same
   SLURM job (a requeue), is taken over;
2. a used directory (checkpoints, metrics or results of an earlier run) with `trainer.resume=false`
   is refused unless `trainer.overwrite=true`, which removes the old run's files first;
3. the resume: the newest checkpoint that loads, matches the model and verifies is restored
   (damaged newer ones are reported and skipped);
4. only then `config.yaml`, `model.json`, `.hydra/`, `status.json`, the metrics log and the
   log file (`run.log`, jaxdl/logs.py) are written.

Metrics: one record per epoch, records past the restored step and earlier test records dropped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from jaxdl import distributed, logs, tracking, watchdog
from jaxdl.artifacts import ModelCard, run_config
from jaxdl.checkpoint import BEST_MODES, RunCheckpoints
from jaxdl.config import record_hydra
from jaxdl.errors import CheckpointError, ConfigError, RunRefused, TrainingDiverged
from jaxdl.run_log import MetricsLog

log = logging.getLogger("jaxdl")

LOCK_FILE = ".lock"
# What an earlier run leaves behind; `trainer.overwrite=true` removes exactly these.
RUN_OUTPUTS = (
    "checkpoints",
    "metrics.jsonl",
    "results.json",
    "tb",
    "eval",
    "curves.png",
    "model.json",
    "status.json",
    "samples",
    "reconstructions",
    "reconstructions.png",
    "data_errors.txt",
    "trackers.json",
    "wandb",
    "summary.html",
)
# A training loss this many times the chance-level loss ln(K) is treated as divergence, like NaN.
DIVERGENCE_FACTOR = 1000.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An advisory lock file: who owns the run directory."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "slurm_job": os.environ.get("SLURM_JOB_ID"),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self.held = False

    def _stale(self, other: dict) -> bool:
        if other.get("slurm_job") and other.get("slurm_job") == self.owner["slurm_job"]:
            return True  # an earlier attempt of this very job (requeued or preempted)
        return other.get("host") == self.owner["host"] and not _pid_alive(int(other.get("pid", -1)))

    def acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    other = json.loads(self.path.read_text() or "{}")
                except (OSError, ValueError):
                    other = {}
                if other and not self._stale(other):
                    raise RunRefused(
                        f"run directory {self.path.parent} is in use by pid {other.get('pid')} on {other.get('host')} "
                        f"(since {other.get('since')}); wait for it, or use another hydra.run.dir"
                    ) from None
                log.warning(
                    "taking over the stale lock of pid %s on %s in %s", other.get("pid"), other.get("host"), self.path.parent
                )
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self.owner, f)
            self.held = True
            return
        raise RunRefused(f"could not lock {self.path}; another process keeps taking it")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def used(run_dir: Path) -> bool:
    """Whether an earlier run left results or checkpoints in `run_dir`."""
    return any((run_dir / name).exists() for name in ("checkpoints", "metrics.jsonl", "results.json"))


def remove_outputs(run_dir: Path) -> None:
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_best(best_metric: str, best_mode: str, metrics: Iterable[str]) -> None:
    """`trainer.best_metric` must be a metric this app records, `best_mode` max or min."""
    metrics = sorted(metrics)
    if best_mode not in BEST_MODES:
        raise ConfigError(f"trainer.best_mode must be max or min, got '{best_mode}'")
    if best_metric not in metrics:
        raise ConfigError(f"trainer.best_metric '{best_metric}' is not recorded by this app; choose one of {', '.join(metrics)}")


class RunDirectory:
    """Opens (or resumes) a run directory for one training app; `end_epoch` logs and checkpoints an epoch.

    After construction: `state` (restored or the initial one), `epoch` (the last finished one, 0 if new),
    `mid_epoch` (resumed from a checkpoint inside epoch `epoch + 1`: its stored `data` item and running
    totals; else None), `metrics` (the log), `ckpts` (the checkpoints)."""

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: str | Path,
        state: Any,
        best_metric: str,
        best_mode: str,
        card: ModelCard | None = None,
        on_open: Callable[[], Any] | None = None,
    ):
        t = cfg.trainer
        stall_timeout_s = watchdog.check_timeout(t.get("stall_timeout_s"))
        self.cfg = cfg
        self.dir = Path(run_dir).absolute()
        self.main = distributed.is_main_process()
        tracking.requested(t)  # an unknown or not installed tracker: refused before anything is written
        self.lock = RunLock(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.main:
            self.lock.acquire()
        try:
            if used(self.dir) and not t.resume:
                if not t.get("overwrite"):
                    raise RunRefused(
                        f"{self.dir} holds an earlier run and trainer.resume=false; pass trainer.overwrite=true "
                        "to delete it and start over, or choose another hydra.run.dir"
                    )
                if self.main:
                    log.warning("trainer.overwrite=true: removing the earlier run in %s", self.dir)
                    remove_outputs(self.dir)
            self.ckpts = RunCheckpoints(
                self.dir / "checkpoints", keep_last=t.keep_checkpoints, best_metric=best_metric, best_mode=best_mode
            )
            self.state, self.epoch, self.mid_epoch = state, 0, None
            restored = self.ckpts.restore_latest_good(state) if self.ckpts.all_steps() else None
            if self.ckpts.all_steps() and restored is None:
                raise RunRefused(
                    f"every checkpoint in {self.ckpts.directory} is damaged; "
                    "pass trainer.resume=false trainer.overwrite=true to start over"
                )
            step = 0
            if restored is not None:
                self.state, meta, step = restored
                self.epoch = int(meta["epoch"])
                if "data" in meta:  # saved inside the epoch after self.epoch: go on from where its input stood
                    self.mid_epoch = {"data": meta["data"], **meta.get("in_epoch", {})}
                where = f"inside epoch {self.epoch + 1}" if self.mid_epoch else f"at epoch {self.epoch}"
                log.info("resumed from %s %s (step %d)", self.ckpts.directory, where, step)
        except RunRefused:
            self.lock.release()
            raise
        except CheckpointError as err:  # the checkpoints do not fit this config: a refused resume
            self.lock.release()
            raise RunRefused(str(err)) from err
        except BaseException:
            self.lock.release()
            raise
        # Every check passed: from here on the directory is this run's.
        log_file = logs.write_to(self.dir, jax.process_index())
        watchdog.start(self.dir, stall_timeout_s, self.lock.release, self.main, log_file)
        if self.main:
            record_hydra(self.dir)
            (self.dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            if card is not None:
                card.write(self.dir)
        if on_open is not None:
            on_open()
        self.trackers = tracking.Trackers(cfg, self.dir, step) if self.main else None
        self.metrics = MetricsLog(self.dir, resume_step=step, write_files=self.main, trackers=self.trackers)
        self.started = time.perf_counter()

    def check_loss(self, loss: float, step: int, epoch: int, num_classes: int | None = None) -> None:
        """Stop on a non-finite loss, or one so far above chance level that training has diverged."""
        limit = DIVERGENCE_FACTOR * math.log(num_classes) if num_classes and num_classes > 1 else math.inf
        if math.isfinite(loss) and loss <= limit:
            return
        kept = self.ckpts.latest_step()
        where = (
            f"the last good checkpoint (step {kept}) is kept in {self.ckpts.directory}"
            if kept is not None
            else "no checkpoint was written"
        )
        what = f"is {loss}" if not math.isfinite(loss) else f"is {loss:.3g}, over {DIVERGENCE_FACTOR:g}x the chance level"
        raise TrainingDiverged(
            f"training diverged: the loss {what} at step {step} (epoch {epoch}); {where}; "
            "lower optimizer.learning_rate or set optimizer.grad_clip_norm"
        )

    def end_epoch(self, step: int, epoch: int, state: Any, record: dict[str, float]) -> None:
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise TrainingDiverged(
                f"{', '.join(bad)} not finite at epoch {epoch}; the last good checkpoint is in "
                f"{self.ckpts.directory}; lower optimizer.learning_rate"
            )
        self.metrics.write(step, epoch=epoch, **record)
        self.ckpts.save(step, state, meta={"epoch": epoch}, metrics={"epoch": epoch, **record})
        self.state, self.epoch = state, epoch

    def save_mid_epoch(self, step: int, state: Any, data: dict, in_epoch: dict) -> None:
        """A checkpoint inside an epoch (`trainer.checkpoint_every_steps`): the state, where the input stands
        (`data`, e.g. the Grain iterator state) and the epoch's running totals; no metrics, so never the best."""
        self.ckpts.save(step, state, meta={"epoch": self.epoch, "in_epoch": in_epoch}, metrics={}, data=data)

    def progress(self, batches: Iterable, total: int, epoch: int, unit: str = "batch", scale: int = 1) -> tqdm:
        """The epoch's progress bar over `batches` (off with trainer.progress=false and on processes other than 0)."""
        t = self.cfg.trainer
        return tqdm(
            watchdog.beating(batches),
            total=total * scale,
            desc=f"epoch {epoch}/{t.epochs}",
            unit=unit,
            unit_scale=scale > 1,
            leave=False,
            disable=None if t.progress and self.main else True,
        )

    def write_results(self, summary: dict) -> None:
        if self.main:
            tmp = self.dir / "results.tmp"
            tmp.write_text(json.dumps(summary, indent=2))
            tmp.replace(self.dir / "results.json")

    def close(self, status: str = "FINISHED") -> None:
        """`status`: how the run ended, for the trackers (FINISHED, FAILED)."""
        if self.trackers is not None:
            self.trackers.close(status)
        watchdog.stop()
        self.ckpts.close()
        self.lock.release()


def restore_finished(
    run_dir: str | Path, like: Any, best_metric: str, best_mode: str, which: str | int = "best"
) -> tuple[Any, int]:
    """(state, step) of a finished run's best, last or given checkpoint, for tools that read runs."""
    cfg = run_config(Path(run_dir))
    ckpts = RunCheckpoints(
        Path(run_dir).absolute() / "checkpoints",
        keep_last=cfg.trainer.keep_checkpoints,
        best_metric=best_metric,
        best_mode=best_mode,
    )
    try:
        step = ckpts.select_step(which)
        state, _ = ckpts.restore(step, like)
    finally:
        ckpts.close()
    return state, step


def mean_metrics(pending: list[dict]) -> dict[str, float]:
    """Host means of per-step device metrics (one device sync for the whole epoch)."""
    host = jax.device_get(pending)
    return {key: float(np.mean([m[key] for m in host])) for key in host[0]} if host else {}
