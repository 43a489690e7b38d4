"""Optimisers and schedules from config: names, schedule values, weight-decay mask, clipping."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import optim
from jaxdl.config import group_options
from jaxdl.errors import ConfigError
from tests.conftest import compose_config


def _quadratic_descent(tx, steps=50):
    """Loss of a tiny least-squares problem after `steps` updates (a matrix so weight decay applies)."""
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones((2,))}
    target = jnp.arange(6.0).reshape(3, 2) / 6
    loss = lambda p: jnp.sum((p["w"] - target) ** 2) + jnp.sum(p["b"] ** 2)
    state = tx.init(params)
    start = loss(params)
    for _ in range(steps):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    return float(start), float(loss(params))


@pytest.mark.parametrize("name", group_options("optimizer"))
def test_every_configured_optimizer_descends(name):
    cfg = compose_config(f"optimizer={name}", "optimizer.learning_rate=0.05").optimizer
    start, end = _quadratic_descent(optim.build(cfg, steps_per_epoch=10, epochs=5))
    assert end < 0.5 * start


@pytest.mark.parametrize("schedule", ["constant", "cosine", "warmup_cosine", "one_cycle"])
def test_schedules_have_their_shape(schedule):
    fn = optim.SCHEDULES.get(schedule)(1.0, 100, warmup_steps=10)
    values = np.array([float(fn(s)) for s in range(101)])
    assert values.max() == pytest.approx(1.0, rel=1e-3)
    if schedule == "constant":
        assert values[0] == 0.0 and np.all(values[10:] == 1.0)  # linear warmup, then flat
    else:
        assert values[-1] < 0.05 and values[0] < 0.5  # rises (or starts low), decays to ~0
        assert np.argmax(values) == pytest.approx(10, abs=1)


def test_weight_decay_skips_biases_and_norm_scales():
    mask = optim.decay_mask({"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.ones(4), "scale": jnp.ones(4)})
    assert mask == {"kernel": True, "bias": False, "scale": False}


def test_gradient_clipping_bounds_the_update():
    cfg = compose_config("optimizer=sgd", "optimizer.learning_rate=1.0", "optimizer.grad_clip_norm=0.5").optimizer
    tx = optim.build(cfg, 1, 1)
    params = {"w": jnp.zeros(4)}
    updates, _ = tx.update({"w": jnp.full(4, 100.0)}, tx.init(params), params)
    assert float(jnp.linalg.norm(updates["w"])) == pytest.approx(0.5, rel=1e-5)


def test_unknown_optimizer_option_is_named():
    cfg = compose_config("+optimizer.betas=[0.9,0.99]").optimizer
    with pytest.raises(ConfigError, match="optimizer 'adam' has no option 'betas'; valid options: b1, b2, eps"):
        optim.build(cfg, 1, 1)


def test_non_positive_learning_rate_is_refused():
    with pytest.raises(ConfigError, match="learning_rate must be a positive number"):
        optim.build(compose_config("optimizer.learning_rate=0").optimizer, 1, 1)
