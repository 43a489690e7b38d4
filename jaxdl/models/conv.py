"""A convolution whose kernel gradient is one matmul over image patches; the forward pass is XLA's own conv.

On XLA:CPU a conv's kernel gradient costs 1.5-3x its forward (experiments/profile_cpu_conv.py). Written
as patches (strided slices of the input) times the output gradient, it is a plain matmul.
The forward pass and the input gradient stay `jax.lax.conv_general_dilated`, so qwix, which intercepts
that function, still sees every forward conv. Drop-in for `nnx.Conv(..., conv_general_dilated=patch_grad_conv)`;
only ungrouped, undilated convs take the patch path, every other conv is the native one.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


def ungrouped_undilated(feature_group_count: int, lhs_dilation: Any, rhs_dilation: Any) -> bool:
    """Whether a conv's options leave it a plain one: one feature group, no input or kernel dilation (the
    convs whose gradients `patch_grad_conv` and xai's input-gradient conv rewrite)."""
    dilations = (*(lhs_dilation or ()), *(rhs_dilation or ()))
    return feature_group_count == 1 and all(d == 1 for d in dilations)


def patch_grad_conv(
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
    """`jax.lax.conv_general_dilated` with the kernel gradient computed as patches^T @ output gradient."""
    plain = not kwargs.get("preferred_element_type") and kwargs.get("out_sharding") is None
    plain = plain and ungrouped_undilated(feature_group_count, lhs_dilation, rhs_dilation)
    if not plain:
        return jax.lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            precision,
            **kwargs,
        )
    numbers = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    padding = padding if isinstance(padding, str) else tuple(map(tuple, padding))
    return _conv(lhs, rhs, tuple(window_strides), padding, numbers, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv(lhs, rhs, strides, padding, numbers, precision):
    return jax.lax.conv_general_dilated(lhs, rhs, strides, padding, dimension_numbers=numbers, precision=precision)


def _conv_fwd(lhs, rhs, strides, padding, numbers, precision):
    return _conv(lhs, rhs, strides, padding, numbers, precision), (lhs, rhs)


def _conv_bwd(strides, padding, numbers, precision, residuals, grad):
    lhs, rhs = residuals
    native = lambda x: jax.lax.conv_general_dilated(x, rhs, strides, padding, dimension_numbers=numbers, precision=precision)
    _, input_vjp = jax.vjp(native, lhs)
    (d_lhs,) = input_vjp(grad)
    return d_lhs, kernel_gradient(lhs, rhs.shape, grad, strides, padding, numbers, precision)


def kernel_gradient(lhs, rhs_shape, grad, strides, padding, numbers, precision) -> jax.Array:
    """d(loss)/d(kernel) of a conv: every output position's input patch times its output gradient, summed.

    The patches are strided slices of the padded input, one per window offset, side by side (window-major,
    channel fastest): measured faster on XLA:CPU than `jax.lax.conv_general_dilated_patches`, which is itself
    a convolution with a one-hot kernel (experiments/profile_cpu_conv.py, part 6)."""
    lhs_spec, rhs_spec, out_spec = numbers
    window = tuple(rhs_shape[d] for d in rhs_spec[2:])
    x = jnp.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))  # (N, *spatial, C)
    g = jnp.transpose(grad, (out_spec[0], *out_spec[2:], out_spec[1]))  # (N, *out, O)
    pads = jax.lax.padtype_to_pads(x.shape[1:-1], window, strides, padding) if isinstance(padding, str) else padding
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out = g.shape[1:-1]
    slices = []
    for offset in itertools.product(*(range(w) for w in window)):
        index = tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, strides, out))
        slices.append(x[(slice(None), *index)])
    patches = jnp.concatenate(slices, axis=-1).reshape(-1, len(slices) * x.shape[-1])
    kernel = jnp.matmul(patches.T, g.reshape(-1, g.shape[-1]).astype(patches.dtype), precision=precision)
    kernel = kernel.reshape(*window, x.shape[-1], g.shape[-1])  # (*window, C, O)
    order = [0] * len(rhs_shape)  # kernel axis -> axis of the (*window, C, O) array
    order[rhs_spec[0]], order[rhs_spec[1]] = len(window) + 1, len(window)
    for i, d in enumerate(rhs_spec[2:]):
        order[d] = i
    return jnp.transpose(kernel, order).astype(grad.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def use_patch_grad(model: nnx.Module) -> nnx.Module:
    """Every `nnx.Conv` of `model` computes its kernel gradient as patches @ output gradient (in place)."""
    for _, module in nnx.iter_modules(model):
        if isinstance(module, nnx.Conv):
            module.conv_general_dilated = patch_grad_conv
    return model
