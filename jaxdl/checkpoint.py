"""Orbax checkpoints of a run: keep the last N and the best by a validation metric; resume is automatic.

Orbax writes each step to a temporary directory and renames it when complete, so
a run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from jaxdl.errors import CheckpointError


def _describe(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """Flat {path: (shape, dtype)} of a pytree of arrays or array metadata."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): (tuple(leaf.shape), str(leaf.dtype)) for path, leaf in flat}


def check_compatible(saved: Any, expected: Any, where: Path) -> None:
    """Refuse a checkpoint whose arrays differ from the model's, naming the first differences."""
    have, want = _describe(saved), _describe(expected)
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    shapes = [f"{k}: checkpoint {have[k][0]} vs model {want[k][0]}" for k in sorted(set(have) & set(want)) if have[k][0] != want[k][0]]
    problems = [f"missing {', '.join(missing[:3])}"] * bool(missing) + [f"unexpected {', '.join(extra[:3])}"] * bool(extra) + shapes[:3]
    if problems:
        raise CheckpointError(
            f"checkpoint {where} does not match the model ({'; '.join(problems)}); "
            "use the config it was trained with or a fresh run directory"
        )


class RunCheckpoints:
    """The `checkpoints/` directory of one run."""

    def __init__(self, directory: Path, keep_last: int = 2, best_metric: str = "val/accuracy", best_mode: str = "max"):
        self.directory = Path(directory).absolute()
        self.best_metric = best_metric
        self.best_mode = best_mode
        policy = pp.AnyPreservationPolicy([
            pp.LatestN(keep_last),
            pp.BestN(get_metric_fn=lambda m: m[best_metric], reverse=best_mode == "min", n=1),
        ])
        options = ocp.CheckpointManagerOptions(preservation_policy=policy, enable_async_checkpointing=False, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, meta: dict, metrics: dict[str, float]) -> None:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self.manager.save(step, args=args, metrics={k: float(v) for k, v in metrics.items()})
        self.manager.wait_until_finished()

    def best_step(self) -> int | None:
        """The kept step with the best validation metric."""
        scored = [(s, m[self.best_metric]) for s, m in self._metrics().items() if self.best_metric in m]
        if not scored:
            return self.latest_step()
        return (min if self.best_mode == "min" else max)(scored, key=lambda sv: sv[1])[0]

    def _metrics(self) -> dict[int, dict]:
        return {s: (self.manager.metrics(s) or {}) for s in self.manager.all_steps()}

    def restore(self, step: int, like: Any) -> tuple[Any, dict]:
        """Restore `step` into the structure, shapes and shardings of `like`."""
        try:
            saved = self.manager.item_metadata(step)["state"]
        except Exception as err:  # noqa: BLE001 - any unreadable metadata is a damaged checkpoint
            raise CheckpointError(f"checkpoint {self.directory / str(step)} is unreadable: {err}") from err
        check_compatible(saved, like, self.directory / str(step))
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        return restored["state"], dict(restored["meta"])

    def close(self) -> None:
        self.manager.close()

