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
from jaxdl.run_status import STATUS_FILE

# Directories inside a run that never hold another run.
_RUN_INTERNALS = {"checkpoints", "tb", "eval", ".hydra", ".submitit", "mlartifacts", "wandb"}  # trackers keep copies of runs
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
    """The JSON objects of a JSON-lines file, numeric fields only; lines cut short by a killed job, or not
    objects, are skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):  # only numeric values are metrics
            records.append({k: v for k, v in record.items() if _number(v) is not None})
    return records


def _read_json_object(path: Path) -> tuple[dict, str]:
    """(the JSON object in `path` or {}, a note on why it could not be used)."""
    if not path.exists():
        return {}, ""
    try:
        value = json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError:
        return {}, f"{path.name} is not valid JSON"
    return (value, "") if isinstance(value, dict) else ({}, f"{path.name} holds a {type(value).__name__}, not an object")


def _number(value: Any) -> float | None:
    """A finite-or-not float from a metric value; None for strings, lists and the like."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


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
            if _number(last.get(key)) is not None:
                metrics[f"final {key}"] = _number(last[key])
        for key, best in (("val/accuracy", max), ("val/loss", min)):
            values = [_number(r[key]) for r in curves if _number(r.get(key)) is not None]
            if values:
                metrics[f"best {key}"] = best(values)
        metrics["epochs"] = float(len(curves))
    for key in ("test/accuracy", "test/loss"):
        if _number(results.get(key)) is not None:
            metrics[key] = _number(results[key])
    return metrics


def load_record(run_dir: Path, root: Path) -> RunRecord:
    status, status_note = _read_json_object(run_dir / STATUS_FILE)
    results, results_note = _read_json_object(run_dir / "results.json")
    curves = [r for r in _read_jsonl(run_dir / "metrics.jsonl") if "val/accuracy" in r or "train/loss" in r]
    state = str(status.get("status") or ("completed" if results else "unknown"))
    wall = _number(status.get("wall_s"))
    if wall is None and curves:
        wall = sum(_number(r.get("time/epoch_s")) or 0.0 for r in curves)
    config = _read_yaml(run_dir / "config.yaml")
    trainer = (config.get("trainer") if isinstance(config, dict) else None) or {}
    objective = status.get("objective") or (trainer.get("objective") if isinstance(trainer, dict) else None)
    error = "; ".join(filter(None, [str(status.get("error") or ""), status_note, results_note]))
    name = str(run_dir.relative_to(root))
    return RunRecord(
        run_dir, name, _task_overrides(run_dir), state, error, wall, curves, summary_metrics(curves, results), objective
    )


def _is_run_dir(path: Path) -> bool:
    return (
        (path / STATUS_FILE).exists()
        or (path / "metrics.jsonl").exists()
        or ((path / "config.yaml").exists() and (path / ".hydra").is_dir())
    )


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
            raise ConfigError(
                f"no jaxdl runs under {root} (a run directory has status.json or metrics.jsonl); "
                "pass the directory jaxdl-train or a sweep wrote"
            )
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
