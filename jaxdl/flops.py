"""Analytic multiply-add counts of a model's forward pass, read off its jaxpr.

Model FLOPs utilisation needs a FLOP count that does not depend on the compiler: XLA:GPU's own
cost analysis leaves cuDNN convolutions out, and XLA:CPU's counts elementwise work too. Counting
the multiply-adds of every convolution and matrix product in the traced program gives the number
papers and torchvision's weight tables quote (ResNet-50: 4.09 G per 224 px image).

    macs = module_macs(lambda: models.build(cfg.model, spec, seed=0), (1, 224, 224, 3))
    train_step_flops = 3 * 2 * macs   # forward + two backward products of the same size; 2 FLOPs per multiply-add
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def _sub_jaxprs(params: dict) -> list[Any]:
    """The jaxprs nested in an equation's parameters (jit bodies, checkpoint and custom-derivative functions)."""
    found = []
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            inner = getattr(item, "jaxpr", item)
            if hasattr(inner, "eqns"):
                found.append(inner)
    return found


def jaxpr_macs(jaxpr: Any) -> int:
    """Multiply-adds of the convolutions and dot products in `jaxpr`, a scan's body counted once per iteration."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        out = math.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0
        if name == "conv_general_dilated":
            kernel = eqn.invars[1].aval.shape
            out_features = kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
            total += out * math.prod(kernel) // out_features  # (input channels / groups) x window per output
        elif name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += out * math.prod(lhs[d] for d in contracting)
        repeats = eqn.params.get("length", 1) if name == "scan" else 1
        if name == "cond":  # one branch runs: count the largest
            total += max((jaxpr_macs(b.jaxpr) for b in eqn.params["branches"]), default=0)
            continue
        total += repeats * sum(jaxpr_macs(sub) for sub in _sub_jaxprs(eqn.params))
    return total


def forward_macs(fn: Callable, input_shape: Sequence[int], dtype: Any = jnp.float32) -> int:
    """Multiply-adds of one call `fn(x)` (an NNX module in eval mode, say) on an input of `input_shape`."""
    jaxpr = jax.make_jaxpr(fn)(jax.ShapeDtypeStruct(tuple(input_shape), dtype))
    return jaxpr_macs(jaxpr.jaxpr)


def module_macs(build: Callable[[], nnx.Module], input_shape: Sequence[int], dtype: Any = jnp.float32) -> int:
    """Multiply-adds of the module `build()` makes, in eval mode, never initialising its weights."""
    graphdef, state = nnx.split(nnx.eval_shape(build))

    def forward(state: nnx.State, x: jax.Array) -> jax.Array:
        module = nnx.merge(graphdef, state)
        module.eval()
        return module(x)

    jaxpr = jax.make_jaxpr(forward)(state, jax.ShapeDtypeStruct(tuple(input_shape), dtype))
    return jaxpr_macs(jaxpr.jaxpr)
