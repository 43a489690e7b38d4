"""One training job of `jaxdl-train`, single run or one job of a sweep.

In a sweep (`--multirun`), a job that fails (bad hyperparameter, NaN loss, a bug)
records its error in `status.json` and returns no objective instead of raising, so
the launcher goes on with the other jobs and the sweepers mark the trial failed.
A job started again in its directory (a requeued SLURM job, or the same sweep
re-run with `hydra.sweep.dir=...`) skips itself if it already completed with the
same config and otherwise resumes from its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from jaxdl import distributed
from jaxdl.config import record_hydra
from jaxdl.data import auto_size
from jaxdl.errors import JaxdlError, RunRefused
from jaxdl.run_status import begin_attempt, read_status
from jaxdl.trainer import train_and_evaluate

log = logging.getLogger("jaxdl")


def objective_value(cfg: DictConfig, summary: Mapping[str, Any]) -> float | None:
    """The value sweepers optimise: `trainer.objective` from the run summary, or its best value."""
    objective = cfg.trainer.get("objective")
    if not objective:
        return None
    value = summary.get(objective, summary.get(f"best_{objective}"))
    return None if value is None else float(value)


def _completed_with_same_config(cfg: DictConfig, run_dir: Path) -> dict | None:
    """The results of an earlier attempt that completed with exactly this config, else None."""
    results, config = run_dir / "results.json", run_dir / "config.yaml"
    if read_status(run_dir).get("status") != "completed" or not (results.exists() and config.exists()):
        return None
    resolved = copy.deepcopy(cfg)
    if not cfg.trainer.get("init_from"):  # what build_experiment resolves data.image_size=auto to (config.yaml records it)
        auto_size.follow_model(resolved)
    if config.read_text() != OmegaConf.to_yaml(resolved, resolve=True):
        return None
    return json.loads(results.read_text())


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def run_job(cfg: DictConfig, run_dir: str | Path, in_sweep: bool) -> float | None:
    """Train one run in `run_dir`, keep its status file, and return the objective (None if it failed)."""
    run_dir = Path(run_dir)
    attempt, main = begin_attempt(run_dir), True
    try:
        distributed.initialize(cfg.trainer)  # before anything touches a JAX device
        main = distributed.is_main_process()
        done = _completed_with_same_config(cfg, run_dir) if in_sweep else None
        if done is not None:
            log.info("%s already completed with this config; skipping it", run_dir)
            return objective_value(cfg, done)
        opened = []  # the run directory passed its checks: from then on this attempt may write its status

        def mark_running() -> None:
            opened.append(True)
            if main:
                attempt.running()

        summary = train_and_evaluate(cfg, run_dir, on_open=mark_running)
    except Exception as err:  # noqa: BLE001 - in a sweep any failure of one job is recorded, not fatal
        error = _one_line(err)
        if main and not isinstance(err, RunRefused):  # a refused run must leave the directory's files untouched
            record_hydra(run_dir)  # a sweep's comparison lists the failed job with its overrides
            attempt.ended("failed", error=error)
        if not in_sweep:
            raise
        if isinstance(err, JaxdlError):
            log.error("job failed; the sweep goes on: %s", error)
        else:
            log.exception("job failed; the sweep goes on: %s", error)
        return None
    except BaseException as stop:  # a requeue (submitit exits on USR2), Ctrl-C: the next attempt resumes
        if main and opened:
            attempt.stopped(_one_line(stop))
        raise
    value = objective_value(cfg, summary)
    if main:
        stopped = {"stopped_early": summary["stopped_early"]} if "stopped_early" in summary else {}
        attempt.ended("completed", objective=cfg.trainer.get("objective"), objective_value=value, **stopped)
    return value
