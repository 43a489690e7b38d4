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
    return {_path_name(path): (tuple(leaf.shape), str(leaf.dtype)) for path, leaf in flat}


def _path_name(path: tuple) -> str:
    """'params/conv1/kernel/value' for both a live pytree and Orbax's saved metadata tree."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


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


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def keys_to_data(tree: Any) -> Any:
    """Typed PRNG keys (e.g. NNX dropout streams) as their uint32 data, which Orbax can store."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def keys_from_data(tree: Any, like: Any) -> Any:
    return jax.tree.map(lambda x, ref: jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref)) if _is_key(ref) else x, tree, like)


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
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, meta: dict, metrics: dict[str, float]) -> None:
        args = ocp.args.Composite(state=ocp.args.StandardSave(keys_to_data(state)), meta=ocp.args.JsonSave(meta))
        self.manager.save(step, args=args, metrics={k: float(v) for k, v in metrics.items()})
        self.manager.wait_until_finished()

    def best_step(self) -> int | None:
        """The kept step with the best validation metric."""
        scored = [(s, m[self.best_metric]) for s, m in self._metrics().items() if self.best_metric in m]
        if not scored:
            return self.latest_step()
        return (min if self.best_mode == "min" else max)(scored, key=lambda sv: sv[1])[0]

    def select_step(self, which: str | int = "best") -> int:
        """The step `which` names ('best', 'last' or a step number), or a clear error if it has none."""
        step = self.best_step() if which == "best" else self.latest_step() if which == "last" else int(which)
        if step is None or step not in self.manager.all_steps():
            raise CheckpointError(f"no checkpoint {'' if step is None else step} in {self.directory}; "
                                  f"train first or pick one of {list(self.manager.all_steps())}")
        return step

    def _metrics(self) -> dict[int, dict]:
        return {s: (self.manager.metrics(s) or {}) for s in self.manager.all_steps()}

    def restore(self, step: int, like: Any) -> tuple[Any, dict]:
        """Restore `step` into the structure, shapes and shardings of `like`."""
        try:
            saved = self.manager.item_metadata(step)["state"]
        except Exception as err:  # noqa: BLE001 - any unreadable metadata is a damaged checkpoint
            raise CheckpointError(f"checkpoint {self.directory / str(step)} is unreadable: {err}") from err
        if saved is None:
            raise CheckpointError(f"checkpoint {self.directory / str(step)} has no model state; it is damaged or not a jaxdl checkpoint")
        raw_like = keys_to_data(like)
        check_compatible(saved, raw_like, self.directory / str(step))
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, raw_like)
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        return keys_from_data(restored["state"], like), dict(restored["meta"])

    def close(self) -> None:
        self.manager.close()

