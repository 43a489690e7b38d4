"""Stochastic depth (timm's drop_path) in ResNet and ViT, and layer-wise learning-rate decay."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxdl import models, optim
from jaxdl.errors import ConfigError
from jaxdl.layer_decay import layer_scales
from jaxdl.models import InputSpec
from jaxdl.models.drop_path import block_rates, drop_path
from jaxdl.models.resnet import BasicBlock

SPEC = InputSpec((8, 8), 1, 10)


def test_drop_path_drops_whole_samples_and_rescales_the_kept_ones():
    layer = drop_path(0.25, 3, rngs=nnx.Rngs(dropout=0))
    x = jnp.ones((4000, 3, 2))
    y = np.asarray(layer(x, deterministic=False))
    per_sample = y.reshape(4000, -1)
    np.testing.assert_allclose(np.unique(per_sample.min(1)), [0.0, 1 / 0.75], rtol=1e-6)  # kept ones x 1/keep
    np.testing.assert_array_equal(per_sample.min(1), per_sample.max(1))
    assert abs((per_sample[:, 0] == 0).mean() - 0.25) < 0.03  # 4 sigma of Binomial(4000, 0.25)
    np.testing.assert_array_equal(layer(x, deterministic=True), x)  # evaluation: identity
    assert drop_path(0.0, 3, rngs=nnx.Rngs(0)) is None
    with pytest.raises(ConfigError, match="model.drop_path must be in"):
        drop_path(1.0, 3, rngs=nnx.Rngs(0))


def test_resnet_block_output_is_the_shortcut_or_the_rescaled_branch_per_sample():
    block = BasicBlock(4, 4, 1, drop=0.5, rngs=nnx.Rngs(params=0, dropout=1))
    block.train()
    x = jax.random.normal(jax.random.key(2), (64, 6, 6, 4))
    out = np.asarray(block(x)).reshape(64, -1)
    branch = np.asarray(block.conv2(block.conv1(x))).reshape(64, -1)  # batch statistics: deterministic
    dropped = np.asarray(jax.nn.relu(x)).reshape(64, -1)
    kept = np.asarray(jax.nn.relu(2.0 * branch + np.asarray(x).reshape(64, -1)))
    is_dropped = np.all(np.isclose(out, dropped, atol=1e-5), axis=1)
    is_kept = np.all(np.isclose(out, kept, atol=1e-5), axis=1)
    assert np.all(is_dropped ^ is_kept) and 10 < is_dropped.sum() < 54


def test_vit_and_resnet_follow_timms_linear_rule_and_are_identity_at_eval():
    assert block_rates(0.3, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    vit = models.build({"name": "vit", "patch": 4, "depth": 3, "dropout": 0.0, "drop_path": 0.2}, SPEC, seed=0)
    assert [b.drop_path and b.drop_path.rate for b in vit.blocks] == [None, pytest.approx(0.1), pytest.approx(0.2)]
    resnet = models.build({"name": "resnet18", "drop_path": 0.1}, SPEC, seed=0)
    rates = [b.drop_path.rate if b.drop_path else 0.0 for stage in resnet.stages for b in stage]
    assert rates == pytest.approx(block_rates(0.1, 8))
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    vit.eval()
    with_drop = vit(x)
    for b in vit.blocks:
        b.drop_path = None
    np.testing.assert_allclose(with_drop, vit(x), rtol=1e-6)


def test_layer_decay_scales_block_i_by_decay_to_the_L_minus_i():
    vit = models.build({"name": "vit", "patch": 4, "depth": 3}, SPEC, seed=0)
    params = nnx.state(vit, nnx.Param)
    scales = layer_scales(params, 0.5)
    assert scales["head"]["kernel"].get_value() == 1.0 and scales["norm"]["scale"].get_value() == 1.0
    for i in range(3):
        assert scales["blocks"][i]["mlp1"]["kernel"].get_value() == 0.5 ** (3 - i)
    for stem in (scales["embed"]["proj"]["kernel"], scales["class_token"], scales["position"]):
        assert stem.get_value() == 0.5**4
    resnet = nnx.state(models.build({"name": "resnet18"}, SPEC, seed=0), nnx.Param)
    res_scales = layer_scales(resnet, 0.9)  # 8 blocks over 4 stages, numbered in order
    assert res_scales["stages"][1][0]["conv1"]["conv"]["kernel"].get_value() == pytest.approx(0.9 ** (8 - 2))
    assert res_scales["stem"][0]["conv"]["kernel"].get_value() == pytest.approx(0.9**9)


def test_layer_decay_is_a_per_parameter_learning_rate_in_the_optimiser():
    vit = models.build({"name": "vit", "patch": 4, "depth": 2}, SPEC, seed=0)
    params = nnx.state(vit, nnx.Param)
    grads = jax.tree.map(jnp.ones_like, params)
    base = {"name": "adamw", "learning_rate": 0.1, "weight_decay": 0.05, "schedule": {"name": "constant"}}
    plain, decayed = optim.build(base, 10, 1), optim.build({**base, "layer_decay": 0.75}, 10, 1)
    u_plain, _ = plain.update(grads, plain.init(params), params)
    u_decayed, _ = decayed.update(grads, decayed.init(params), params)
    ratio = jax.tree.map(lambda a, b: b / jnp.where(a == 0, 1, a), u_plain, u_decayed)
    expected = layer_scales(params, 0.75)
    for r, s in zip(jax.tree.leaves(ratio), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(r, s, rtol=1e-5)
    with pytest.raises(ConfigError, match="needs a model of residual blocks"):
        layer_scales(nnx.state(models.build({"name": "lenet5"}, InputSpec((28, 28), 1, 10), seed=0), nnx.Param), 0.5)
    assert isinstance(decayed.init(params)[-1], optax.EmptyState)
