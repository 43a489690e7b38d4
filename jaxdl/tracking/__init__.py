"""Experiment trackers, several at once: `trainer.loggers=[jsonl,tensorboard,mlflow,wandb]`.

JSONL (`metrics.jsonl`, jaxdl/run_log.py) is always written; each other backend is one module here
behind one writer interface (jaxdl/tracking/base.py), its package in the extra of its name
(`pip install 'jaxdl[mlflow]'`). Only process 0 of a multi-host run tracks.

A tracker must never stop or corrupt training: a backend whose call raises (its server went
down, its disk filled) is reported once and dropped for the rest of the run. `<run_dir>/trackers.json`
holds each backend's run id and the last step logged per metric, so a resumed run continues the same
tracker run and never logs a step twice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from omegaconf import DictConfig

from jaxdl.errors import ConfigError
from jaxdl.tracking.base import PACKAGES, RunContext, require

log = logging.getLogger("jaxdl")

STATE_FILE = "trackers.json"
ALWAYS = "jsonl"
# Aim 3.29 (the newest) would downgrade filelock 4.3 -> 3.x beside jaxdl's pins: not offered (RESULTS.md, issue 25).
UNSUPPORTED = {"aim": "aim is not supported: aim 3.29 does not install beside jaxdl's pinned packages (it downgrades filelock)"}


def _backends() -> dict[str, Callable]:
    from jaxdl.tracking.mlflow import MLflowTracker
    from jaxdl.tracking.tensorboard import TensorBoardTracker
    from jaxdl.tracking.wandb import WandbTracker

    return {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker, "wandb": WandbTracker}


def requested(trainer: Any) -> list[str]:
    """The backends `trainer.loggers` names besides JSONL, checked: one-line errors for unknown, unsupported
    or not installed ones (before the run directory is touched)."""
    names = list(trainer.get("loggers") or [ALWAYS])
    for name in names:
        if name in UNSUPPORTED:
            raise ConfigError(f"trainer.loggers: {UNSUPPORTED[name]}")
        if name != ALWAYS and name not in PACKAGES:
            raise ConfigError(f"unknown logger '{name}' in trainer.loggers; valid names: {', '.join([ALWAYS, *PACKAGES])}")
    backends = [name for name in dict.fromkeys(names) if name != ALWAYS]
    for name in backends:
        require(name)
    return backends


def sweep_dir() -> Path | None:
    """The directory of the Hydra multirun (grid or Optuna) running this job, if any."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            return Path(HydraConfig.get().sweep.dir).absolute()
    except (ImportError, ValueError):
        pass
    return None


class Trackers:
    """The run's trackers: every call goes to each backend still alive."""

    def __init__(self, cfg: DictConfig, run_dir: Path, resume_step: int):
        self.path = Path(run_dir) / STATE_FILE
        self.state = json.loads(self.path.read_text()) if resume_step and self.path.exists() else {}
        self.backends: list = []
        sweep = sweep_dir()
        for name in requested(cfg.trainer):
            entry = self.state.setdefault(name, {})
            ctx = RunContext(cfg, Path(run_dir), sweep, bool(resume_step) and bool(entry), entry)
            self._guard(name, lambda: self.backends.append(_backends()[name](ctx, resume_step)))
        self._save()

    def _guard(self, name: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as err:  # noqa: BLE001 - a tracker failing must never stop training
            log.warning("tracker %s failed and is off for the rest of this run (training goes on): %s", name, _first_line(err))
            self.backends = [b for b in self.backends if b.name != name]

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.path)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Metrics with a '/' in their name (train/loss, val/accuracy, ...), each step at most once per backend."""
        metrics = {k: float(v) for k, v in metrics.items() if "/" in k}
        for backend in list(self.backends):
            logged = self.state[backend.name].setdefault("logged", {})
            new = {k: v for k, v in metrics.items() if step > logged.get(k, -1)}
            if new:
                self._guard(backend.name, lambda: backend.log_metrics(step, new))
                logged.update(dict.fromkeys(new, step))
        if self.backends:
            self._save()

    def log_images(self, step: int, images: Mapping[str, Path]) -> None:
        for backend in list(self.backends):
            self._guard(backend.name, lambda: backend.log_images(step, images))

    def log_artifacts(self, paths: Mapping[str, Path]) -> None:
        paths = {name: path for name, path in paths.items() if Path(path).exists()}
        for backend in list(self.backends):
            self._guard(backend.name, lambda: backend.log_artifacts(paths))

    def close(self, status: str = "FINISHED") -> None:
        for backend in list(self.backends):
            self._guard(backend.name, lambda: backend.close(status))
        self.backends = []


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def figures(run_dir: Path) -> dict[str, Path]:
    """The run's PNG figures that exist, by tracker image name."""
    names = {"curves": "curves.png", "confusion_matrix": "eval/confusion_matrix.png", "misclassified": "eval/misclassified.png"}
    return {name: Path(run_dir) / rel for name, rel in names.items() if (Path(run_dir) / rel).exists()}


def run_artifacts(run_dir: Path, best_step: int | None) -> dict[str, Path]:
    """What a finished run hands its trackers: config, results, plots, evaluation, summary, and the model
    artifact's card with the best checkpoint's weights (`jaxdl.load_model` reads the run directory)."""
    run_dir = Path(run_dir)
    names = ["config.yaml", "results.json", "status.json", "curves.png", "summary.html", "eval", "model.json"]
    paths = {name: run_dir / name for name in names}
    if best_step is not None:
        paths["checkpoints/best"] = run_dir / "checkpoints" / str(best_step)
    return paths


def attach_to_run(run_dir: Path, paths: Mapping[str, Path]) -> None:
    """Add files made after training (jaxdl-explain's `report.html`) to the MLflow run of the training run in
    `run_dir`, when it had one. A tracker problem is one warning, never an error of the calling app."""
    state_file = Path(run_dir) / STATE_FILE
    entry = json.loads(state_file.read_text()).get("mlflow", {}) if state_file.exists() else {}
    if not entry.get("run_id"):
        return
    from jaxdl.tracking.mlflow import attach

    try:
        attach(entry, paths)
    except Exception as err:  # noqa: BLE001 - the app's own result is written already
        log.warning("could not add %s to MLflow run %s: %s", ", ".join(paths), entry["run_id"], _first_line(err))
