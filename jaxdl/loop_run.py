"""The run-directory side of a training loop other than the classifier's (GAN, autoencoder).

Same layout and resume rules as `jaxdl-train`: `config.yaml`, `metrics.jsonl` + `tb/`,
Orbax `checkpoints/` (last N plus the best), restart from the last checkpoint.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from jaxdl.checkpoint import RunCheckpoints
from jaxdl.errors import TrainingDiverged
from jaxdl.run_log import MetricsLog

log = logging.getLogger("jaxdl")


class LoopRun:
    """Opens (or resumes) a run directory; `end_epoch` logs and checkpoints one epoch."""

    def __init__(self, cfg: DictConfig, run_dir: str | Path, state: Any, best_metric: str, best_mode: str):
        logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every file it writes
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        t = cfg.trainer
        self.ckpts = RunCheckpoints(self.dir / "checkpoints", keep_last=t.keep_checkpoints, best_metric=best_metric, best_mode=best_mode)
        self.state, self.epoch = state, 0
        latest = self.ckpts.latest_step() if t.resume else None
        if latest is not None:
            self.state, meta = self.ckpts.restore(latest, state)
            self.epoch = int(meta["epoch"])
            log.info("resumed from %s at epoch %d (step %d)", self.ckpts.directory, self.epoch, latest)
        self.metrics = MetricsLog(self.dir, resume_step=latest or 0)

    def end_epoch(self, step: int, epoch: int, state: Any, record: dict[str, float]) -> None:
        bad = [k for k, v in record.items() if not math.isfinite(v)]
        if bad:
            raise TrainingDiverged(f"{', '.join(bad)} not finite at epoch {epoch}; the last good checkpoint is in "
                                   f"{self.ckpts.directory}; lower optimizer.learning_rate")
        self.metrics.write(step, epoch=epoch, **record)
        self.ckpts.save(step, state, meta={"epoch": epoch}, metrics={"epoch": epoch, **record})

    def close(self) -> None:
        self.metrics.close()
        self.ckpts.close()


def mean_metrics(pending: list[dict]) -> dict[str, float]:
    """Host means of per-step device metrics (one device sync for the whole epoch)."""
    host = jax.device_get(pending)
    return {key: float(np.mean([m[key] for m in host])) for key in host[0]} if host else {}


def restore_checkpoint(run_dir: Path, cfg: DictConfig, like: Any, best_metric: str, best_mode: str,
                       which: str | int = "best") -> tuple[Any, int]:
    """(state, step) of a finished run's best, last or given checkpoint."""
    ckpts = RunCheckpoints(Path(run_dir) / "checkpoints", keep_last=cfg.trainer.keep_checkpoints,
                           best_metric=best_metric, best_mode=best_mode)
    step = ckpts.select_step(which)
    state, _ = ckpts.restore(step, like)
    ckpts.close()
    return state, step


def load_config(run_dir: Path, app: str) -> DictConfig:
    """The `config.yaml` a training app wrote into its run directory."""
    from jaxdl.errors import CheckpointError

    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.yaml); pass the directory {app} wrote")
    return OmegaConf.load(path)
