"""Guided backpropagation (Springenberg et al. 2015) and Guided Grad-CAM, without editing the model.

The model function is traced to a jaxpr and re-evaluated with every ReLU
(`max(x, 0)`, also inside `jax.nn.relu`'s custom JVP and nested jits) replaced by
a ReLU whose backward pass lets only positive gradients through positive inputs.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from xai.explain.cam import GradCAM, scale_maps
from xai.explain.inputs import check_targets
from xai.explain.probe import Probe, resolve_targets


@jax.custom_vjp
def guided_relu(x: jax.Array) -> jax.Array:
    return jnp.maximum(x, 0)


def _guided_fwd(x):
    return jnp.maximum(x, 0), x


def _guided_bwd(x, g):
    return (jnp.where((x > 0) & (g > 0), g, 0).astype(g.dtype),)


guided_relu.defvjp(_guided_fwd, _guided_bwd)


def _is_zero_literal(var: Any) -> bool:
    return isinstance(var, jcore.Literal) and not jnp.shape(var.val) and float(var.val) == 0.0


def _eval_guided(jaxpr: jcore.Jaxpr, consts: list, *args: Any) -> list:
    """Evaluate a jaxpr, swapping ReLUs for guided ReLUs and descending into jit / custom_jvp calls."""
    env: dict = {}
    read = lambda v: v.val if isinstance(v, jcore.Literal) else env[v]
    for var, val in zip(jaxpr.constvars, consts):
        env[var] = val
    for var, val in zip(jaxpr.invars, args):
        env[var] = val
    for eqn in jaxpr.eqns:
        inputs = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name == "max" and any(_is_zero_literal(v) for v in eqn.invars):
            other = inputs[1] if _is_zero_literal(eqn.invars[0]) else inputs[0]
            outs = [guided_relu(jnp.broadcast_to(other, eqn.outvars[0].aval.shape))]
        elif name in ("pjit", "jit"):
            closed = eqn.params["jaxpr"]
            outs = _eval_guided(closed.jaxpr, closed.consts, *inputs)
        elif name == "custom_jvp_call":
            closed = eqn.params["call_jaxpr"]
            outs = _eval_guided(closed.jaxpr, closed.consts, *inputs)
        else:
            outs = eqn.primitive.bind(*inputs, **eqn.params)
            outs = outs if eqn.primitive.multiple_results else [outs]
        for var, val in zip(eqn.outvars, outs):
            env[var] = val
    return [read(v) for v in jaxpr.outvars]


def guided(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """`fn` with guided-backprop ReLUs (same forward values, guided gradients)."""

    def wrapped(*args):
        closed = jax.make_jaxpr(fn)(*args)
        (out,) = _eval_guided(closed.jaxpr, closed.consts, *jax.tree.leaves(args))
        return out

    return wrapped


class GuidedBackprop:
    """Guided-backprop input gradients `(B, H, W, C)` of each image's target logit."""

    def __init__(self, model, *, preprocess=None):
        self.probe = Probe(model, (), preprocess)
        self._jitted = jax.jit(self._gradients)

    def __call__(self, images: Any, targets: Any = None) -> jax.Array:
        images = self.probe.check(images)
        return self._jitted(self.probe.state, images, check_targets(targets, len(images), self.probe.num_classes))

    def _gradients(self, state, images, targets):
        logits_fn = guided(lambda x, st: self.probe.fn(st, x, None)[0])
        logits, vjp = jax.vjp(logits_fn, images, state)  # state as a primal: the model lives in the vjp's trace
        targets = resolve_targets(targets, logits)
        return vjp(jax.nn.one_hot(targets, logits.shape[-1], dtype=logits.dtype))[0]


class GuidedGradCAM:
    """Grad-CAM times guided backprop; the map is the per-pixel largest |product| over channels, in [0, 1]."""

    def __init__(self, model, target_layers, *, preprocess=None, **cam_options):
        self.cam = GradCAM(model, target_layers, preprocess=preprocess, **cam_options)
        self.backprop = GuidedBackprop(model, preprocess=preprocess)

    def __call__(self, images: Any, targets: Any = None) -> jax.Array:
        cam = self.cam(images, targets)
        gradients = self.backprop(images, targets)
        return scale_maps(jnp.abs(gradients * cam[..., None]).max(-1))
