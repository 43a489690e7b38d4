"""The spine's jitted train step with a BatchNorm model: statistics update inside the gradient trace."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxdl.data.pipeline import Preprocess
from jaxdl.parallel import data_mesh
from jaxdl.steps import init_state, make_train_step, split_model


class TinyBN(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(4, 3, rngs=rngs)
        self.bn = nnx.BatchNorm(3, rngs=rngs)

    def __call__(self, x):
        return self.bn(self.dense(x.reshape(x.shape[0], -1)))


def test_train_step_updates_batch_statistics_and_lowers_the_loss():
    mesh = data_mesh()
    train_def, _, params, rest = split_model(TinyBN(nnx.Rngs(0)))
    tx = optax.sgd(0.1)
    step = make_train_step(train_def, tx, Preprocess((2, 2), (0.0,), (1.0,)), mesh, seed=0)
    state = init_state(params, rest, tx, mesh)
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 2, 2, 1)), jnp.uint8)
    labels = jnp.arange(8, dtype=jnp.int32) % 3
    losses = []
    for _ in range(5):
        state, metrics = step(state, images, labels)
        losses.append(float(metrics["loss_sum"]))
    assert losses[-1] < losses[0]
    assert not np.allclose(np.asarray(state.model_state["bn"]["mean"][...]), 0.0)  # running mean moved
