"""Convolutions whose input gradient runs on XLA:CPU's fast conv kernels: the gradient explainers' hot path.

Gradient explainers need d logit / d image only, i.e. every conv's *input* gradient. jax writes it as a conv
of the output gradient with the flipped kernel in `01oi` order (input and output features swapped) and, for a
strided conv, with the output gradient dilated by the stride. Inside Integrated Gradients' jitted scan on
ResNet-50, XLA:CPU ran all 53 of them outside its YNNPACK conv fusions (which take neither form), 3x the time
of the forward convs (experiments/profile_ig_resnet50.py, RESULTS issue 26). Here the input gradient is
written as plain stride-1 convs with the kernel materialised in HWIO order: one conv for a stride-1 layer,
stride² sub-kernel convs interleaved for a strided one (the sub-pixel split of a transposed conv), the same
multiply-adds as the forward conv. The kernel gradient stays jax's own (explainers drop it; XLA removes it).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdl.models.conv import ungrouped_undilated

NHWC = ("NHWC", "HWIO", "NHWC")


def input_grad_conv(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    precision: Any = None,
    **kwargs: Any,
) -> jax.Array:
    """`jax.lax.conv_general_dilated` whose input gradient is built from plain HWIO convs (2-D NHWC convs only)."""
    native = functools.partial(
        jax.lax.conv_general_dilated,
        window_strides=window_strides,
        padding=padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        precision=precision,
        **kwargs,
    )
    numbers = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    plain = lhs.ndim == 4 and numbers == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC)
    plain = plain and not any(kwargs.values()) and jnp.issubdtype(rhs.dtype, jnp.floating)
    plain = plain and ungrouped_undilated(feature_group_count, lhs_dilation, rhs_dilation)
    if not plain:
        return native(lhs, rhs)
    strides = tuple(window_strides)
    pads = jax.lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding) if isinstance(padding, str) else padding
    pads = tuple(tuple(map(int, p)) for p in pads)
    if any(p < 0 or p >= k for p, k in zip(itertools.chain(*pads), 2 * rhs.shape[:2])):
        return native(lhs, rhs)
    return _conv(lhs, rhs, strides, pads, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(lhs, rhs, strides, pads, precision):
    return jax.lax.conv_general_dilated(lhs, rhs, strides, pads, dimension_numbers=NHWC, precision=precision)


def _conv_fwd(lhs, rhs, strides, pads, precision):
    return _conv(lhs, rhs, strides, pads, precision), (lhs, rhs)


def _conv_bwd(strides, pads, precision, residuals, grad):
    lhs, rhs = residuals
    kernel_vjp = jax.vjp(lambda w: jax.lax.conv_general_dilated(lhs, w, strides, pads, dimension_numbers=NHWC), rhs)[1]
    return input_gradient(grad, rhs, lhs.shape, strides, pads, precision), kernel_vjp(grad)[0]


_conv.defvjp(_conv_fwd, _conv_bwd)


def input_gradient(grad, rhs, shape, strides, pads, precision=None) -> jax.Array:
    """d(loss)/d(input) of an NHWC/HWIO conv from its output gradient.

    Along one axis (stride s, kernel k, padding p before), input i = s*m + t - p takes kernel taps t, t+s, ...:
    so input phase r (i = r, r+s, ...) is the correlation of the output gradient with the flipped sub-kernel
    w[t::s] (t = (r+p) mod s) at output positions m = (r+p) // s onwards. Stride 1 is the one phase r = 0.
    Each phase's conv is padded to give exactly the rows it needs (XLA:CPU's fast convs take no wide padding)."""
    n, h, w, c = shape
    (sh, sw) = strides
    phases = []
    for r, q in itertools.product(range(sh), range(sw)):
        sub = rhs[(r + pads[0][0]) % sh :: sh, (q + pads[1][0]) % sw :: sw]  # this phase's taps (maybe none)
        size = (-(-(h - r) // sh), -(-(w - q) // sw))  # this phase's input rows and columns
        if 0 in sub.shape[:2]:
            phases.append(jnp.zeros((n, *size, c), grad.dtype))
            continue
        g, window = grad, []
        for axis, start, length, k in (
            (1, (r + pads[0][0]) // sh, size[0], sub.shape[0]),
            (2, (q + pads[1][0]) // sw, size[1], sub.shape[1]),
        ):
            lo = k - 1 - start
            hi = length - g.shape[axis] - lo + k - 1
            g = jax.lax.slice_in_dim(g, max(0, -lo), g.shape[axis] - max(0, -hi), axis=axis)
            window.append((max(0, lo), max(0, hi)))
        kernel = jnp.flip(sub, (0, 1)).transpose(0, 1, 3, 2)  # HWIO with I = the conv's outputs
        phases.append(jax.lax.conv_general_dilated(g, kernel, (1, 1), window, dimension_numbers=NHWC, precision=precision))
    if sh == sw == 1:
        return phases[0]
    hq, wq = -(-h // sh), -(-w // sw)  # phases padded to a common size, interleaved, cut back
    padded = [jnp.pad(p, ((0, 0), (0, hq - p.shape[1]), (0, wq - p.shape[2]), (0, 0))) for p in phases]
    stacked = jnp.stack(padded, 3).reshape(n, hq, wq, sh, sw, c).transpose(0, 1, 3, 2, 4, 5)  # (N, hq, sh, wq, sw, C)
    return stacked.reshape(n, hq * sh, wq * sw, c)[:, :h, :w]


def with_input_grad_convs(model: nnx.Module) -> nnx.Module:
    """A copy of `model` (sharing its arrays) whose plain `nnx.Conv`s compute input gradients with `input_grad_conv`.

    Convs that already carry their own conv function (jaxdl's patch-gradient conv) keep it, and a model with any
    parameter that is not a float array (a quantized model: qwix intercepts its convs) is returned as it is."""
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    if not all(isinstance(p, jax.Array) and jnp.issubdtype(p.dtype, jnp.floating) for p in params):
        return model
    copy = nnx.merge(*nnx.split(model))
    for _, module in nnx.iter_modules(copy):
        if type(module) is nnx.Conv and module.conv_general_dilated is jax.lax.conv_general_dilated:
            module.conv_general_dilated = input_grad_conv
    return copy
