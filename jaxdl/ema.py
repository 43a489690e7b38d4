"""An exponential moving average of the weights, kept in the optimiser state (`trainer.ema_decay`).

    ema_0 = params_0,   ema_t = decay * ema_{t-1} + (1 - decay) * params_t     (after every optimiser step)

It lives in the optimiser state, so the train state checkpoints and resumes it with no change to the
jitted step, and under `trainer.grad_accum_steps` it moves once per real update, not per micro-batch.
Flax NNX has no EMA helper of its own (`nnx.Optimizer` keeps no averages), and `optax.ema` averages the
updates, not the weights; hence this small wrapper. `trainer.eval_weights=ema` evaluates, picks the best
checkpoint and exports the average instead of the raw weights.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

from jaxdl.errors import ConfigError

EVAL_WEIGHTS = ("raw", "ema")
# The name of the EMA's leaves in a checkpoint's state: `opt_state.<...>.ema.<parameter>`.
FIELD = "ema"


class EmaState(NamedTuple):
    inner: optax.OptState
    ema: Any  # the averaged parameters, same tree as the parameters


def with_ema(tx: optax.GradientTransformation, decay: float) -> optax.GradientTransformation:
    """`tx` that also keeps the EMA of the parameters it updates (its state's `ema`)."""

    def init(params):
        return EmaState(tx.init(params), jax.tree.map(lambda p: p.copy(), params))

    def update(updates, state, params=None):
        updates, inner = tx.update(updates, state.inner, params)
        new_params = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p.astype(e.dtype), state.ema, new_params)
        return updates, EmaState(inner, ema)

    return optax.GradientTransformation(init, update)


def ema_params(opt_state: Any) -> Any | None:
    """The averaged parameters inside an optimiser state (through accumulation wrappers), or None."""
    found = []

    def visit(node: Any) -> None:
        if isinstance(node, EmaState):
            found.append(node.ema)
        elif isinstance(node, (tuple, list)):
            for child in node:
                visit(child)
        elif isinstance(node, optax.MultiStepsState):
            visit(node.inner_opt_state)

    visit(opt_state)
    return found[0] if found else None


def check(trainer: Any) -> None:
    """One-line errors for `trainer.ema_decay` and `trainer.eval_weights`."""
    decay, which = trainer.get("ema_decay"), trainer.get("eval_weights", "raw")
    if decay is not None and not (isinstance(decay, (int, float)) and 0.0 < float(decay) < 1.0):
        raise ConfigError(f"trainer.ema_decay must be a number between 0 and 1 (e.g. 0.999) or null, got {decay!r}")
    if which not in EVAL_WEIGHTS:
        raise ConfigError(f"trainer.eval_weights must be one of {', '.join(EVAL_WEIGHTS)}, got {which!r}")
    if which == "ema" and decay is None:
        raise ConfigError("trainer.eval_weights=ema needs trainer.ema_decay (e.g. 0.999)")


def eval_params(trainer: Any, state: Any) -> Any:
    """The parameters evaluation uses: the EMA with `trainer.eval_weights=ema`, else the raw ones."""
    return ema_params(state.opt_state) if trainer.get("eval_weights", "raw") == "ema" else state.params


def restore_ema(ckpts: Any, step: int, params_like: Any) -> Any:
    """The EMA weights stored in checkpoint `step`, as a tree like `params_like` (what a run's artifact loads
    when it was trained with `trainer.eval_weights=ema`)."""
    from jaxdl.errors import CheckpointError
    from jaxdl.trees import map_named

    for prefix in ("opt_state.ema.", "opt_state.inner_opt_state.ema."):
        found = ckpts.restore_named(step, prefix)
        if found:
            return map_named(lambda name, like: found[name].astype(like.dtype), params_like)
    raise CheckpointError(f"checkpoint {ckpts.directory / str(step)} holds no weight EMA, though its model card says it should")
