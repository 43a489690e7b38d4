"""What every tracker backend shares: the writer interface, the run's context, and the one-line errors."""

from __future__ import annotations

import dataclasses
import importlib
import os
import socket
import subprocess
from pathlib import Path
from typing import Any, Mapping, Protocol

from omegaconf import DictConfig, OmegaConf

from jaxdl.errors import ConfigError

# The optional package each backend needs, installed by the extra of the backend's name: pip install 'jaxdl[mlflow]'.
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


class Tracker(Protocol):
    """One backend. Calls come from process 0 only; a call that raises disables the backend (jaxdl/tracking/__init__.py)."""

    name: str

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def log_images(self, step: int, images: Mapping[str, Path]) -> None: ...

    def log_artifacts(self, paths: Mapping[str, Path]) -> None: ...

    def close(self, status: str) -> None: ...


@dataclasses.dataclass
class RunContext:
    """What a backend needs to open (or reopen) its run.

    `state` is this backend's entry of `<run_dir>/trackers.json` (e.g. the MLflow run id): a backend stores
    there what a resumed run needs to continue the same tracker run."""

    cfg: DictConfig
    run_dir: Path
    sweep_dir: Path | None  # the Hydra multirun (grid or Optuna) this run belongs to
    resumed: bool
    state: dict

    @property
    def run_name(self) -> str:
        return self.run_dir.name if self.sweep_dir is None else f"{self.sweep_dir.name}/{self.run_dir.name}"

    @property
    def experiment(self) -> str:
        return str((self.cfg.trainer.get("tracking") or {}).get("experiment") or "jaxdl")

    @property
    def params(self) -> dict[str, Any]:
        return flat_params(self.cfg)

    @property
    def tags(self) -> dict[str, str]:
        return run_tags()


def require(backend: str) -> Any:
    """The backend's package, or the one-line error naming the extra that installs it."""
    package = PACKAGES[backend]
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigError(
            f"trainer.loggers has '{backend}' but the {package} package is not installed: pip install 'jaxdl[{backend}]'"
        ) from None


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as `a.b.c -> scalar` (lists as their text): what trackers compare runs by."""
    out: dict[str, Any] = {}

    def visit(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                visit(f"{prefix}.{key}" if prefix else str(key), value)
        elif node is None or isinstance(node, (bool, int, float, str)):
            out[prefix] = "null" if node is None else node
        else:
            out[prefix] = str(node)

    visit("", OmegaConf.to_container(cfg, resolve=True))
    return out


def run_tags() -> dict[str, str]:
    """Where the run ran: the commit of the jaxdl code, the host, the SLURM job."""
    tags = {"host": socket.gethostname()}
    try:
        source = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            tags["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    for name, var in (("slurm_job", "SLURM_JOB_ID"), ("slurm_array_task", "SLURM_ARRAY_TASK_ID")):
        if os.environ.get(var):
            tags[name] = os.environ[var]
    return tags
