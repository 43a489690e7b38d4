"""Magnitude pruning: schedule values, masks, and zeros that survive training and resume."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.errors import ConfigError
from xai.compress.pruning import PruningSpec, Schedule, magnitude_pruning, prune_now, sparsity_of, spec_from_config


def test_cubic_schedule_values():
    schedule = Schedule(begin_step=10, end_step=110, frequency=25)
    s = lambda step: float(schedule.sparsity(jnp.asarray(step), 0.8))
    assert s(0) == 0.0 and s(9) == 0.0
    assert s(10) == pytest.approx(0.0)
    assert s(60) == pytest.approx(0.8 * (1 - 0.5**3))  # Zhu & Gupta: s_f (1 - (1 - t/T)^3)
    assert s(110) == pytest.approx(0.8) and s(500) == pytest.approx(0.8)
    updates = [t for t in range(0, 130) if bool(schedule.updates_at(jnp.asarray(t)))]
    assert updates == [10, 35, 60, 85, 110]


def test_layer_masks_remove_the_smallest_and_spare_biases():
    params = {"dense": {"kernel": jnp.arange(1.0, 17.0).reshape(4, 4) * jnp.array([1, -1, 1, -1.0]), "bias": jnp.ones(4)}}
    pruned = prune_now(params, PruningSpec(0.25, scope="layer"))
    kernel = np.asarray(pruned["dense"]["kernel"])
    assert (kernel == 0).sum() == 4
    assert set(np.abs(params["dense"]["kernel"])[kernel == 0].tolist()) == {1.0, 2.0, 3.0, 4.0}
    np.testing.assert_array_equal(pruned["dense"]["bias"], params["dense"]["bias"])


def test_global_scope_and_overrides():
    params = {
        "big": jnp.arange(1.0, 101.0).reshape(10, 10),
        "small": 1000 + jnp.arange(4.0).reshape(2, 2),
        "first": jnp.arange(1.0, 5.0).reshape(2, 2),
    }
    pruned = prune_now(params, PruningSpec(0.5, scope="global", overrides=(("first", 0.0),)))
    # One threshold over big+small: the 52 smallest of 104 are all in `big`; `first` is kept by its override.
    assert int((pruned["big"] == 0).sum()) == 52 and int((pruned["small"] == 0).sum()) == 0
    assert int((pruned["first"] == 0).sum()) == 0


def test_pruned_zeros_survive_training_steps():
    key = jax.random.key(0)
    params = {"w": jax.random.normal(key, (8, 8)), "b": jnp.zeros(8)}
    spec = PruningSpec(0.75, Schedule(begin_step=0, end_step=6, frequency=2), scope="layer")
    tx = magnitude_pruning(optax.adam(0.1), spec)
    state = tx.init(params)
    loss = lambda p: jnp.sum((jnp.ones((4, 8)) @ p["w"] + p["b"] - 3.0) ** 2)
    step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p))
    zeros_at_end = None
    for i in range(12):
        updates, state = step(params, state)
        params = optax.apply_updates(params, updates)
        if i == 6:
            zeros_at_end = np.asarray(params["w"] == 0)
    assert zeros_at_end.sum() == 48  # 75% of 64
    np.testing.assert_array_equal(np.asarray(params["w"] == 0), zeros_at_end)  # Adam's momentum did not revive them
    assert sparsity_of(params) == pytest.approx(0.75)


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="sparsity must be in"):
        spec_from_config({"sparsity": 1.5}, 10, 2)
    with pytest.raises(ConfigError, match="no option 'sparsty'"):
        spec_from_config({"sparsty": 0.5}, 10, 2)
    spec = spec_from_config({"sparsity": 0.9, "end_epoch": 1, "frequency": 5}, 10, 3)
    assert (spec.schedule.begin_step, spec.schedule.end_step, spec.schedule.frequency) == (0, 9, 5)


def test_pruned_zeros_survive_checkpoint_and_resume(tmp_path):
    from tests.compress_util import digits_config
    from jaxdl.runs import load_run
    from jaxdl.trainer import train_and_evaluate

    pruning = "optimizer.pruning={sparsity:0.7,schedule:one_shot}"
    train_and_evaluate(digits_config(pruning, "trainer.epochs=1"), tmp_path)
    first = load_run(tmp_path, "last")
    zeros = np.asarray(first.model.hidden[0].kernel[...] == 0)
    masks = first.experiment.state.opt_state.masks
    np.testing.assert_array_equal(np.asarray(masks["hidden"][0]["kernel"][...]), ~zeros)  # masks are checkpointed
    assert sparsity_of(nnx_params(first.model)) == pytest.approx(0.7, abs=0.01)
    train_and_evaluate(digits_config(pruning, "trainer.epochs=2"), tmp_path)  # resumes at epoch 2
    second = load_run(tmp_path, "last")
    assert second.step == 2 * first.step
    np.testing.assert_array_equal(np.asarray(second.model.hidden[0].kernel[...] == 0), zeros)
    assert not np.array_equal(np.asarray(second.model.hidden[0].kernel[...]), np.asarray(first.model.hidden[0].kernel[...]))


def nnx_params(model):
    from flax import nnx

    return nnx.state(model, nnx.Param)
