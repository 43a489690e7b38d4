"""Optax optimisers and learning-rate schedules from `conf/optimizer/*.yaml`."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import jax
import optax

from jaxdl.errors import ConfigError
from jaxdl.layer_decay import scale_by_layer_decay
from jaxdl.registry import Registry, call_with_options

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULES: Registry = Registry("schedule")
# Wrappers around the whole optimiser, each enabled by the optimizer config key of its name and
# registered by a plugin: `(tx, options, steps_per_epoch, epochs) -> tx` (xai.compress: `pruning`).
WRAPPERS: Registry = Registry("optimizer wrapper")

# Keys of an optimizer config handled here rather than passed to the optax constructor.
OWN_KEYS = ("name", "learning_rate", "schedule", "weight_decay", "grad_clip_norm", "backbone_lr_scale", "layer_decay")


def decay_mask(params: Any) -> Any:
    """Weight decay applies to kernels only: biases and normalisation scales (rank < 2) are excluded."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


@OPTIMIZERS.register("sgd")
def _sgd(learning_rate, momentum: float = 0.0, nesterov: bool = False):
    return optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov)


@OPTIMIZERS.register("momentum")
def _momentum(learning_rate, momentum: float = 0.9):
    return optax.sgd(learning_rate, momentum=momentum)


@OPTIMIZERS.register("nesterov")
def _nesterov(learning_rate, momentum: float = 0.9):
    return optax.sgd(learning_rate, momentum=momentum, nesterov=True)


@OPTIMIZERS.register("adam")
def _adam(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


@OPTIMIZERS.register("adamw")
def _adamw(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-4):
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(learning_rate, decay: float = 0.9, eps: float = 1e-7, momentum: float = 0.0, centered: bool = False):
    return optax.rmsprop(learning_rate, decay=decay, eps=eps, momentum=momentum or None, centered=centered)


@SCHEDULES.register("constant")
def _constant(lr: float, total_steps: int, warmup_steps: int = 0):
    if not warmup_steps:
        return optax.constant_schedule(lr)
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup_steps), optax.constant_schedule(lr)], [warmup_steps])


@SCHEDULES.register("cosine")
def _cosine(lr: float, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.0):
    return optax.warmup_cosine_decay_schedule(
        0.0 if warmup_steps else lr, lr, warmup_steps, max(total_steps, 1), lr * final_fraction
    )


@SCHEDULES.register("warmup_cosine")
def _warmup_cosine(lr: float, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.0):
    warmup_steps = warmup_steps or max(1, total_steps // 20)
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps, max(total_steps, warmup_steps + 1), lr * final_fraction)


@SCHEDULES.register("one_cycle")
def _one_cycle(lr: float, total_steps: int, warmup_steps: int = 0, pct_start: float = 0.3):
    pct = warmup_steps / total_steps if warmup_steps else pct_start
    return optax.cosine_onecycle_schedule(max(total_steps, 1), lr, pct_start=pct)


def build(cfg: Mapping[str, Any], steps_per_epoch: int, epochs: int) -> optax.GradientTransformation:
    """Clip -> weight decay -> optimiser with its schedule, as the config says; registered wrappers (pruning) around it."""
    cfg = dict(cfg)
    name = str(cfg.get("name"))
    factory = OPTIMIZERS.get(name)
    if cfg.get("learning_rate") is None or float(cfg["learning_rate"]) <= 0:
        raise ConfigError(f"optimizer.learning_rate must be a positive number, got {cfg.get('learning_rate')}")
    schedule_cfg = dict(cfg.get("schedule") or {"name": "constant"})
    schedule_name = str(schedule_cfg.pop("name", "constant"))
    warmup_epochs = float(schedule_cfg.pop("warmup_epochs", 0))
    lr = call_with_options(
        SCHEDULES.get(schedule_name),
        schedule_cfg,
        f"schedule '{schedule_name}'",
        lr=float(cfg["learning_rate"]),
        total_steps=steps_per_epoch * epochs,
        warmup_steps=int(warmup_epochs * steps_per_epoch),
    )
    takes = inspect.signature(factory).parameters
    unset_wrappers = [k for k, v in cfg.items() if not v and k not in OWN_KEYS and k not in takes]  # e.g. pruning: null
    wrappers = {k: v for k, v in cfg.items() if v and k not in OWN_KEYS and k not in takes and k in WRAPPERS}
    options = {k: v for k, v in cfg.items() if k not in OWN_KEYS and k not in wrappers and k not in unset_wrappers}
    chain = []
    if cfg.get("grad_clip_norm"):
        chain.append(optax.clip_by_global_norm(float(cfg["grad_clip_norm"])))
    weight_decay = float(cfg.get("weight_decay") or 0.0)
    if name == "adamw":  # decoupled decay, inside the optimiser
        options["weight_decay"] = weight_decay
    elif weight_decay:  # classic L2: added to the gradient before the optimiser
        chain.append(optax.add_decayed_weights(weight_decay, mask=decay_mask))
    chain.append(call_with_options(factory, options, f"optimizer '{name}'", learning_rate=lr))
    if cfg.get("layer_decay") is not None:
        chain.append(scale_by_layer_decay(float(cfg["layer_decay"])))
    tx = optax.chain(*chain)
    for key, value in wrappers.items():
        tx = WRAPPERS.get(key)(tx, value, steps_per_epoch, epochs)
    return tx


def accumulate(tx: optax.GradientTransformation, steps: int) -> optax.GradientTransformation:
    """`trainer.grad_accum_steps`: `tx` applied to the mean gradient of every `steps` batches (optax.MultiSteps).

    The accumulated gradients live in the optimiser state, so a checkpoint between micro-steps resumes exactly."""
    return tx if steps == 1 else optax.MultiSteps(tx, every_k_schedule=steps).gradient_transformation()
