"""What `jaxdl-compare` knows about one run directory, read from the files `jaxdl-train` wrote.

config.yaml, metrics.jsonl, results.json, status.json and Hydra's .hydra/overrides.yaml;
nothing here imports JAX, so comparing hundreds of runs is quick.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from jaxdl.errors import ConfigError
from jaxdl.run_status import STATUS_FILE, read_status

# Directories inside a run that never hold another run.
_RUN_INTERNALS = {"checkpoints", "tb", "eval", ".hydra", ".submitit"}
SEED_KEY = "trainer.seed"


@dataclasses.dataclass
class RunRecord:
    """One run: its overrides, status, metrics per epoch and summary metrics."""

    path: Path
    name: str
    overrides: dict[str, str]
    status: str  # completed | failed | running (or killed) | unknown
    error: str
    wall_s: float | None
    curves: list[dict[str, Any]]
    metrics: dict[str, float]
    objective: str | None

    @property
    def seed(self) -> str | None:
        return self.overrides.get(SEED_KEY)

    def metric(self, name: str) -> float:
        return self.metrics.get(name, math.nan)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (FileNotFoundError, yaml.YAMLError):
        return None


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a killed job
    return records


def _task_overrides(run_dir: Path) -> dict[str, str]:
    """`key=value` overrides of the job, without Hydra's own (hydra.*, hydra/launcher=...)."""
    overrides = {}
    for item in _read_yaml(run_dir / ".hydra" / "overrides.yaml") or []:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if not key.startswith("hydra"):
            overrides[key] = value
    return overrides


def summary_metrics(curves: list[dict], results: dict) -> dict[str, float]:
    """Final and best per-epoch metrics, plus the test metrics of the best checkpoint."""
    metrics: dict[str, float] = {}
    if curves:
        last = curves[-1]
        for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy"):
            if key in last:
                metrics[f"final {key}"] = float(last[key])
        for key, best in (("val/accuracy", max), ("val/loss", min)):
            values = [float(r[key]) for r in curves if key in r]
            if values:
                metrics[f"best {key}"] = best(values)
        metrics["epochs"] = float(len(curves))
    for key in ("test/accuracy", "test/loss"):
        if key in results:
            metrics[key] = float(results[key])
    return metrics


def load_record(run_dir: Path, root: Path) -> RunRecord:
    status = read_status(run_dir)
    results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else {}
    curves = [r for r in _read_jsonl(run_dir / "metrics.jsonl") if "val/accuracy" in r or "train/loss" in r]
    state = status.get("status") or ("completed" if results else "unknown")
    wall = status.get("wall_s")
    if wall is None and curves:
        wall = sum(float(r.get("time/epoch_s", 0.0)) for r in curves)
    config = _read_yaml(run_dir / "config.yaml") or {}
    objective = status.get("objective") or (config.get("trainer") or {}).get("objective")
    name = str(run_dir.relative_to(root))
    return RunRecord(run_dir, name, _task_overrides(run_dir), state, status.get("error", ""),
                     None if wall is None else float(wall), curves, summary_metrics(curves, results), objective)


def _is_run_dir(path: Path) -> bool:
    return (path / STATUS_FILE).exists() or (path / "metrics.jsonl").exists() or (
        (path / "config.yaml").exists() and (path / ".hydra").is_dir())


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def find_runs(paths: Iterable[str | Path]) -> list[RunRecord]:
    """Every run directory at or below `paths` (run, multirun or any parent directories)."""
    paths = [Path(p) for p in paths]
    records = []
    for root in paths:
        if not root.is_dir():
            raise ConfigError(f"{root} is not a directory; pass run or multirun directories written by jaxdl-train")
        base = root.parent if len(paths) > 1 or _is_run_dir(root) else root  # names stay unique
        found = []
        for current, dirs, _ in os.walk(root):
            here = Path(current)
            if _is_run_dir(here):
                found.append(load_record(here, base))
                dirs.clear()
            else:
                dirs[:] = [d for d in dirs if d not in _RUN_INTERNALS]
        if not found:
            raise ConfigError(f"no jaxdl runs under {root} (a run directory has status.json or metrics.jsonl); "
                              "pass the directory jaxdl-train or a sweep wrote")
        records.extend(sorted(found, key=lambda r: _natural_key(r.name)))
    return records


def optuna_best(paths: Iterable[str | Path]) -> list[str]:
    """One line per Optuna sweep among `paths`: the best value and parameters its sweeper recorded."""
    lines = []
    for root in map(Path, paths):
        result = _read_yaml(root / "optimization_results.yaml") or {}
        if "best_value" in result:
            params = " ".join(f"{k}={v}" for k, v in (result.get("best_params") or {}).items())
            lines.append(f"Optuna best in {root}: {result['best_value']:.4f} with {params}")
    return lines
