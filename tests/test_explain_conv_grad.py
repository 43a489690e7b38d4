"""The gradient explainers' conv: its input (and kernel) gradient equals jax's own, in plain HWIO stride-1 convs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xai.explain.conv_grad import NHWC, input_grad_conv, with_input_grad_convs

CASES = [  # kernel, stride, padding: ResNet's stem, its strided 3x3 and 1x1, an even kernel, uneven explicit padding
    (7, 2, [(3, 3), (3, 3)]),
    (3, 2, "SAME"),
    (1, 2, "VALID"),
    (4, 3, "SAME"),
    (3, 1, [(2, 0), (1, 2)]),
]


@pytest.mark.parametrize("kernel, stride, padding", CASES)
def test_input_and_kernel_gradients_equal_jaxs_own(kernel, stride, padding):
    rng = np.random.default_rng(kernel + stride)
    x = jnp.asarray(rng.normal(size=(2, 11, 12, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 3, 4)), jnp.float32)

    def grads(conv):
        loss = lambda x, w: jnp.sum(jnp.sin(conv(x, w, (stride, stride), padding, dimension_numbers=NHWC)))
        return jax.jit(jax.grad(loss, (0, 1)))

    ours, theirs = grads(input_grad_conv), grads(jax.lax.conv_general_dilated)
    for a, b in zip(ours(x, w), theirs(x, w)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))
    hlo = jax.jit(jax.grad(lambda x: jnp.sum(input_grad_conv(x, w, (stride, stride), padding, dimension_numbers=NHWC))))
    text = hlo.lower(x).compile().as_text()
    assert "lhs_dilate" not in text and "01oi" not in text  # the forms XLA:CPU's fast conv fusions do not take


def test_the_explainers_copy_swaps_plain_convs_only_and_leaves_the_model_alone():
    model = nnx.Sequential(
        nnx.Conv(1, 2, (3, 3), rngs=nnx.Rngs(0)), nnx.Conv(2, 2, (3, 3), feature_group_count=2, rngs=nnx.Rngs(1))
    )
    copy = with_input_grad_convs(model)
    assert [m.conv_general_dilated for m in copy.layers] == [input_grad_conv, input_grad_conv]
    assert all(m.conv_general_dilated is jax.lax.conv_general_dilated for m in model.layers)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 6, 6, 1)), jnp.float32)
    np.testing.assert_allclose(jax.grad(lambda x: copy(x).sum())(x), jax.grad(lambda x: model(x).sum())(x), rtol=1e-5)
