"""The train step's loss: label smoothing and bfloat16 compute."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import models, optim
from jaxdl.data.pipeline import Preprocess
from jaxdl.parallel import data_mesh
from jaxdl.steps import cross_entropy, init_state, make_train_step, split_model
from tests.conftest import compose_config


def test_label_smoothing_penalises_overconfidence():
    confident = jnp.array([[20.0, 0.0, 0.0]])
    labels = jnp.array([0])
    assert float(cross_entropy(confident, labels)[0]) < 1e-6
    smoothed = float(cross_entropy(confident, labels, label_smoothing=0.3)[0])
    assert smoothed == pytest.approx(0.2 * 20.0, rel=1e-3)  # the 2 x 0.1 mass on wrong classes costs 20 nats each


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_repeated_steps_on_a_fixed_batch_lower_the_loss(dtype):
    mesh = data_mesh()
    spec = models.InputSpec((28, 28), 1, 10)
    model = models.build(compose_config().model, spec, seed=0, dtype=dtype)
    tx = optim.build(compose_config().optimizer, 10, 1)
    train_def, _, params, rest = split_model(model)
    state = init_state(params, rest, tx, mesh)
    step = make_train_step(train_def, tx, Preprocess((28, 28), (0.5,), (0.5,)), mesh, seed=0, compute_dtype=dtype)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, 16, dtype=np.int32))
    losses = []
    for _ in range(8):
        state, metrics = step(state, images, labels)
        losses.append(float(metrics["loss_sum"]) / 16)
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]
    assert jax.tree.leaves(state.params)[0].dtype == jnp.float32  # parameters stay float32 under bf16 compute
