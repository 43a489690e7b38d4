"""`patch_grad_conv`: the kernel gradient as patches @ output gradient equals JAX's autodiff of the native conv."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxdl import models
from jaxdl.models.conv import patch_grad_conv, use_patch_grad

CASES = [  # (in, out, kernel, stride, padding, image size)
    (1, 20, (5, 5), 1, "VALID", 28),  # LeNet-5's conv1
    (20, 50, (5, 5), 1, "VALID", 12),  # and conv2
    (3, 8, (3, 3), 2, ((1, 1), (1, 1)), 9),  # ResNet's strided 3x3
    (4, 6, (3, 2), 1, "SAME", 7),
    (5, 7, (1, 1), 2, "VALID", 8),  # ResNet's 1x1 projection
]


@pytest.mark.parametrize("cin,cout,kernel,stride,padding,size", CASES)
def test_gradients_equal_autodiff_of_the_native_conv(cin, cout, kernel, stride, padding, size):
    native = nnx.Conv(cin, cout, kernel, strides=stride, padding=padding, rngs=nnx.Rngs(0))
    patched = nnx.Conv(cin, cout, kernel, strides=stride, padding=padding, rngs=nnx.Rngs(0), conv_general_dilated=patch_grad_conv)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, size, size, cin)).astype(np.float32))
    loss = lambda conv, x: jnp.sin(conv(x)).sum()  # a non-constant output gradient
    (d_native, dx_native), (d_patched, dx_patched) = (nnx.grad(loss, argnums=(0, 1))(m, x) for m in (native, patched))
    np.testing.assert_array_equal(patched(x), native(x))  # the forward is the native conv
    np.testing.assert_array_equal(dx_patched, dx_native)  # so is the input gradient
    reference = d_native["kernel"][...]
    np.testing.assert_allclose(d_patched["kernel"][...], reference, rtol=1e-5, atol=1e-5 * float(np.abs(reference).max()))
    np.testing.assert_array_equal(d_patched["bias"][...], d_native["bias"][...])


def test_use_patch_grad_swaps_every_conv_and_keeps_the_model_function():
    spec = models.InputSpec((28, 28), 1, 10)
    model, reference = (models.build({"name": "lenet5"}, spec, seed=0) for _ in range(2))
    use_patch_grad(model)
    convs = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.Conv)]
    assert len(convs) == 2 and all(c.conv_general_dilated is patch_grad_conv for c in convs)
    x = jnp.asarray(np.random.default_rng(1).random((2, 28, 28, 1), np.float32))
    np.testing.assert_array_equal(jax.jit(lambda m, x: m(x))(model, x), jax.jit(lambda m, x: m(x))(reference, x))
