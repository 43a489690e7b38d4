"""Unstructured magnitude pruning as an optax wrapper whose masks live in the optimizer state.

Keeping the masks in `opt_state` means they are saved with every checkpoint and a
resumed run keeps the same zeros. The gradual schedule is the cubic one of Zhu &
Gupta 2017 ("To prune, or not to prune"): s_t = s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3,
with masks recomputed every `frequency` steps between t0 and t1. Pruned weights are
exactly zero after every update, so the optimiser cannot revive them.

In a config (`optimizer.pruning`, or a `conf/compress/*.yaml` recipe's `prune`):

    sparsity: 0.9            # target fraction of zeros in the pruned weights
    scope: global            # global: one magnitude threshold over all layers | layer: per layer
    schedule: gradual        # gradual (cubic) | one_shot
    begin_epoch: 0
    end_epoch: 1             # gradual: target reached by the end of this epoch
    frequency: 50            # steps between mask updates
    overrides: {conv1: 0.5}  # regex on parameter path -> that layer's own target
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdl.errors import ConfigError
from jaxdl.trees import map_named, path_name

POOLED = -1.0  # target of leaves sharing the global threshold


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When masks change and how sparse they are at each step (one-shot when begin == end)."""

    begin_step: int = 0
    end_step: int = 0
    frequency: int = 100
    initial: float = 0.0

    def sparsity(self, step: jax.Array, target: float) -> jax.Array:
        """Zhu & Gupta's cubic ramp from `initial` at begin_step to `target` at end_step; 0 before."""
        span = max(self.end_step - self.begin_step, 1)
        progress = jnp.clip((step - self.begin_step) / span, 0.0, 1.0)
        ramp = target + (self.initial - target) * (1.0 - progress) ** 3
        if self.end_step <= self.begin_step:
            ramp = jnp.asarray(target, jnp.float32)
        return jnp.where(step >= self.begin_step, ramp, 0.0)

    def updates_at(self, step: jax.Array) -> jax.Array:
        """Whether masks are recomputed before update number `step` (0-based)."""
        in_window = (step >= self.begin_step) & (step <= self.end_step)
        on_grid = (step - self.begin_step) % self.frequency == 0
        return (in_window & on_grid) | (step == self.end_step)


@dataclasses.dataclass(frozen=True)
class PruningSpec:
    """What to prune: target sparsity, scope, per-layer overrides; leaves of rank < min_rank are never pruned."""

    sparsity: float
    schedule: Schedule = Schedule()
    scope: str = "global"
    overrides: tuple[tuple[str, float], ...] = ()
    min_rank: int = 2  # excludes biases and normalisation scales/offsets

    def __post_init__(self):
        for name, value in ((None, self.sparsity), *self.overrides):
            if not 0.0 <= float(value) < 1.0:
                where = f"override '{name}'" if name else "sparsity"
                raise ConfigError(f"pruning {where} must be in [0, 1), got {value}")
        if self.scope not in ("global", "layer"):
            raise ConfigError(f"pruning.scope must be 'global' or 'layer', got '{self.scope}'")

    def target(self, name: str, leaf: Any) -> float | None:
        """This leaf's own target (an override, or `sparsity` in layer scope); None if pooled or never pruned."""
        if leaf.ndim < self.min_rank:
            return None
        for pattern, value in self.overrides:
            pattern = pattern.replace("/", r"\.")  # patterns of earlier versions named layers with slashes
            if re.fullmatch(pattern, name) or re.fullmatch(pattern, name.rsplit(".", 1)[0]):
                return float(value)
        return self.sparsity if self.scope == "layer" else POOLED


class PruningState(NamedTuple):
    count: jax.Array  # updates applied so far
    masks: Any  # like params: bool arrays for prunable leaves, a scalar True for the others
    inner: optax.OptState


def _threshold(magnitudes: jax.Array, sparsity: jax.Array) -> jax.Array:
    """Threshold below which the `sparsity` fraction of `magnitudes` lies (ties at it are pruned)."""
    flat = jnp.sort(magnitudes.ravel())
    k = jnp.floor(sparsity * flat.size).astype(jnp.int32)
    return jnp.where(k > 0, flat[jnp.maximum(k - 1, 0)], -1.0)


def compute_masks(spec: PruningSpec, params: Any, masks: Any, step: jax.Array) -> Any:
    """New masks at `step` from the magnitudes of the (already masked) weights."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    old = jax.tree.leaves(masks)
    targets = [spec.target(path_name(path), p) for path, p in flat]
    magnitudes = [jnp.abs(p * m) for (_, p), m in zip(flat, old)]
    pooled = [mag.ravel() for mag, t in zip(magnitudes, targets) if t == POOLED]
    if pooled:
        global_threshold = _threshold(jnp.concatenate(pooled), spec.schedule.sparsity(step, spec.sparsity))

    def mask(target, mag, old_mask):
        if target is None:
            return old_mask
        threshold = global_threshold if target == POOLED else _threshold(mag, spec.schedule.sparsity(step, target))
        return mag > threshold

    return jax.tree.unflatten(treedef, [mask(*args) for args in zip(targets, magnitudes, old)])


def initial_masks(spec: PruningSpec, params: Any) -> Any:
    return map_named(lambda name, p: jnp.ones(p.shape if spec.target(name, p) is not None else (), bool), params)


def magnitude_pruning(inner: optax.GradientTransformation, spec: PruningSpec) -> optax.GradientTransformation:
    """Wrap `inner` so that parameters are pruned by magnitude on `spec`'s schedule and stay pruned."""

    def init(params):
        return PruningState(jnp.zeros((), jnp.int32), initial_masks(spec, params), inner.init(params))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("magnitude_pruning needs the parameters: call update(grads, state, params)")
        masks = jax.lax.cond(
            spec.schedule.updates_at(state.count),
            lambda: compute_masks(spec, params, state.masks, state.count),
            lambda: state.masks,
        )
        updates, inner_state = inner.update(grads, state.inner, params)
        # p + where(m, u, -p) is exactly p + u where kept and exactly 0 where pruned.
        updates = jax.tree.map(lambda p, u, m: jnp.where(m, u, -p).astype(u.dtype), params, updates, masks)
        return updates, PruningState(state.count + 1, masks, inner_state)

    return optax.GradientTransformation(init, update)


def prune_now(params: Any, spec: PruningSpec) -> Any:
    """One-shot magnitude pruning of a parameter tree at the spec's full target (no training)."""
    one_shot = dataclasses.replace(spec, schedule=Schedule())
    masks = compute_masks(one_shot, params, initial_masks(spec, params), jnp.asarray(0))
    return jax.tree.map(lambda p, m: p * m, params, masks)


def spec_from_config(cfg: Mapping[str, Any], steps_per_epoch: int, epochs: int) -> PruningSpec:
    """A PruningSpec from a `pruning:` config block; epochs are converted to steps."""
    cfg = dict(cfg)
    known = {"sparsity", "scope", "schedule", "begin_epoch", "end_epoch", "frequency", "initial_sparsity", "overrides"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"pruning has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(sorted(known))}")
    if cfg.get("sparsity") is None:
        raise ConfigError("pruning.sparsity is required, e.g. pruning.sparsity=0.9")
    kind = cfg.get("schedule", "gradual")
    if kind not in ("gradual", "one_shot"):
        raise ConfigError(f"pruning.schedule must be 'gradual' or 'one_shot', got '{kind}'")
    begin = int(round(float(cfg.get("begin_epoch", 0)) * steps_per_epoch))
    end_epoch = cfg.get("end_epoch")
    end_epoch = max(1.0, epochs / 2) if end_epoch is None else float(end_epoch)
    end = begin if kind == "one_shot" else max(begin, int(round(end_epoch * steps_per_epoch)) - 1)
    schedule = Schedule(begin, end, max(1, int(cfg.get("frequency", 100))), float(cfg.get("initial_sparsity", 0.0)))
    overrides = tuple((str(k), float(v)) for k, v in dict(cfg.get("overrides") or {}).items())
    return PruningSpec(float(cfg["sparsity"]), schedule, str(cfg.get("scope", "global")), overrides)


def sparsity_of(params: Any, min_rank: int = 2) -> float:
    """Fraction of zeros among the leaves pruning may touch (rank >= min_rank)."""
    leaves = [p for p in jax.tree.leaves(params) if p.ndim >= min_rank]
    total = sum(p.size for p in leaves)
    return float(sum(int((p == 0).sum()) for p in leaves) / max(total, 1))
