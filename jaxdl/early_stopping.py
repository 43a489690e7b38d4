"""Early stopping (`trainer.early_stopping.patience`, MATLAB's `ValidationPatience`).

The rule, decided on the recorded epoch metrics (so a resumed run decides exactly as an uninterrupted one):
an epoch improves when its `metric` beats the best so far by more than `min_delta` (above it for
`mode=max`, below for `min`; the first epoch always does); training stops after the epoch that is
`patience` epochs past the last improvement. The best checkpoint is kept and tested as always.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from jaxdl.errors import ConfigError


def settings(trainer: Any) -> dict | None:
    """{metric, mode, patience, min_delta} with the defaults filled in (`trainer.best_metric`/`best_mode`), or None when off."""
    cfg = trainer.get("early_stopping") or {}
    if cfg.get("patience") is None:
        return None
    return {
        "metric": cfg.get("metric") or trainer.best_metric,
        "mode": cfg.get("mode") or trainer.best_mode,
        "patience": cfg.get("patience"),
        "min_delta": cfg.get("min_delta") or 0.0,
    }


def check(trainer: Any, metrics: Iterable[str]) -> None:
    """One-line errors for early-stopping settings that could never work."""
    rule = settings(trainer)
    if rule is None:
        return
    metrics = sorted(metrics)
    patience = rule["patience"]
    if not (isinstance(patience, int) and not isinstance(patience, bool) and patience >= 1):
        raise ConfigError(f"trainer.early_stopping.patience must be a positive whole number or null, got {patience!r}")
    if rule["metric"] not in metrics:
        raise ConfigError(f"trainer.early_stopping.metric '{rule['metric']}' is not recorded; choose one of {', '.join(metrics)}")
    if rule["mode"] not in ("max", "min"):
        raise ConfigError(f"trainer.early_stopping.mode must be max or min, got {rule['mode']!r}")
    if not isinstance(rule["min_delta"], (int, float)) or rule["min_delta"] < 0:
        raise ConfigError(f"trainer.early_stopping.min_delta must be a number >= 0, got {rule['min_delta']!r}")


def decide(rule: dict | None, records: Sequence[dict]) -> dict | None:
    """{reason, epoch, best_epoch} when the recorded epochs say stop, else None."""
    if rule is None:
        return None
    metric, delta = rule["metric"], float(rule["min_delta"])
    epochs = [r for r in records if metric in r and "epoch" in r]
    best = best_epoch = None
    for record in epochs:
        value = record[metric]
        if best is None or (value > best + delta if rule["mode"] == "max" else value < best - delta):
            best, best_epoch = value, record["epoch"]
    if not epochs or epochs[-1]["epoch"] - best_epoch < rule["patience"]:
        return None
    last = epochs[-1]["epoch"]
    return {
        "reason": f"{metric} did not improve by more than {delta:g} for {rule['patience']} epoch(s) "
        f"(best {best:.6g} at epoch {best_epoch})",
        "epoch": last,
        "best_epoch": best_epoch,
    }
