"""Structured channel pruning: exact function when only dead channels go, real shrinkage, residual groups."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxdl import models
from jaxdl.errors import ConfigError
from xai.compress.channels import ChannelGroup, apply_plan, groups_of, module_at, select_channels, widths

SPEC = models.InputSpec((28, 28), 1, 10)


def _count(model):
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_removing_all_zero_channels_preserves_lenet_exactly():
    model = models.build({"name": "lenet5"}, SPEC, 0)
    dead1, dead2 = [0, 3, 7, 11], list(range(0, 50, 2))
    model.conv1.kernel[...] = model.conv1.kernel[...].at[..., dead1].set(0.0)
    model.conv1.bias[...] = model.conv1.bias[...].at[jnp.asarray(dead1)].set(0.0)
    model.conv2.kernel[...] = model.conv2.kernel[...].at[..., dead2].set(0.0)
    model.conv2.bias[...] = model.conv2.bias[...].at[jnp.asarray(dead2)].set(0.0)
    x = jax.random.normal(jax.random.key(1), (3, 28, 28, 1))
    before, params_before = model(x), _count(model)
    groups = groups_of("lenet5", model)
    plan = select_channels(model, groups[:2], fraction=0.5, criterion="l1")
    plan["conv1"] = [i for i in range(20) if i not in dead1]  # exactly the dead ones, not 50%
    apply_plan(model, groups, plan)
    assert (model.conv1.out_features, model.conv2.out_features) == (16, 25)
    assert model.hidden[0].in_features == 16 * 25
    np.testing.assert_allclose(model(x), before, rtol=1e-5, atol=1e-5)
    assert _count(model) < params_before * 0.6


class ResidualNet(nnx.Module):
    """conv -> BN -> relu, a second conv -> BN added to it (a residual), pool, dense."""

    def __init__(self, rngs):
        self.stem = nnx.Conv(1, 8, (3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(8, rngs=rngs)
        self.conv = nnx.Conv(8, 8, (3, 3), rngs=rngs)
        self.bn2 = nnx.BatchNorm(8, rngs=rngs)
        self.head = nnx.Linear(8, 4, rngs=rngs)

    def __call__(self, x):
        h = jax.nn.relu(self.bn1(self.stem(x)))
        h = jax.nn.relu(h + self.bn2(self.conv(h)))
        return self.head(h.mean(axis=(1, 2)))


RESIDUAL_GROUPS = [ChannelGroup(("stem", "conv"), norms=("bn1", "bn2"), consumers=("conv", "head"))]


def test_residual_group_pruned_consistently_and_exactly_by_bn_scale():
    model = ResidualNet(nnx.Rngs(0))
    dead = jnp.asarray([1, 4, 6])
    for bn in (model.bn1, model.bn2):
        bn.scale[...] = bn.scale[...].at[dead].set(0.0)
        bn.bias[...] = bn.bias[...].at[dead].set(0.0)
    model.eval()
    x = jax.random.normal(jax.random.key(2), (2, 6, 6, 1))
    before = model(x)
    plan = select_channels(model, RESIDUAL_GROUPS, fraction=3 / 8, criterion="bn")
    assert plan == {"stem": [0, 2, 3, 5, 7]}
    apply_plan(model, RESIDUAL_GROUPS, plan)
    assert model.stem.out_features == model.conv.in_features == model.conv.out_features == model.bn2.num_features == 5
    assert model.head.in_features == 5
    np.testing.assert_allclose(model(x), before, rtol=1e-5, atol=1e-5)


def test_model_config_channels_rebuilds_the_pruned_shape():
    model = models.build({"name": "lenet5", "channels": {"conv1": 10, "conv2": 25, "hidden.0": 250}}, SPEC, 0)
    assert widths(model, groups_of("lenet5", model)) == {"conv1": 10, "conv2": 25, "hidden.0": 250}
    assert model(jnp.zeros((1, 28, 28, 1))).shape == (1, 10)
    with pytest.raises(ConfigError, match="unknown channel groups"):
        models.build({"name": "lenet5", "channels": {"conv9": 3}}, SPEC, 0)
    aligned = select_channels(models.build({"name": "lenet5"}, SPEC, 0), groups_of("lenet5", model), 0.5, multiple=8)
    assert {name: len(kept) for name, kept in aligned.items()} == {"conv1": 8, "conv2": 24, "hidden.0": 248}
    kept_conv1 = select_channels(model, groups_of("lenet5", model), 0.5, skip=["conv1"], multiple=8)
    assert sorted(kept_conv1) == ["conv2", "hidden.0"]
    with pytest.raises(ConfigError, match=r"skip names unknown channel groups \['conv0'\].*'conv1'"):
        select_channels(model, groups_of("lenet5", model), 0.5, skip=["conv0"])
    with pytest.raises(ConfigError, match="criterion 'bn' needs a batch norm"):
        select_channels(model, groups_of("lenet5", model), 0.5, "bn")


def test_resnet_rule_keeps_residual_streams_consistent_and_exact():
    from jaxdl.models.resnet import BasicBlock, ResNet

    model = ResNet(models.InputSpec((8, 8), 1, 10), BasicBlock, (2, 1), rngs=nnx.Rngs(0))
    groups = groups_of("resnet18", model)
    stream = next(g for g in groups if g.name == "stem.0.conv")  # stage 1: stem + two blocks add into it
    assert stream.producers == ("stem.0.conv", "stages.0.0.conv2.conv", "stages.0.1.conv2.conv")
    assert stream.consumers == (
        "stages.0.0.conv1.conv",
        "stages.0.1.conv1.conv",
        "stages.1.0.conv1.conv",
        "stages.1.0.shortcut.conv",
    )
    dead = jnp.arange(0, 64, 2)
    for path in stream.norms:
        norm = module_at(model, path)
        norm.scale[...] = norm.scale[...].at[dead].set(0.0)
        norm.bias[...] = norm.bias[...].at[dead].set(0.0)
    model.eval()
    x = jax.random.normal(jax.random.key(3), (2, 8, 8, 1))
    before = model(x)
    plan = select_channels(model, groups, 0.5, "bn", skip=[g.name for g in groups if g is not stream])
    assert plan == {"stem.0.conv": list(range(1, 64, 2))}
    apply_plan(model, groups, plan)
    assert model.stages[0][1].conv2.conv.out_features == model.stages[1][0].shortcut.conv.in_features == 32
    np.testing.assert_allclose(model(x), before, rtol=1e-4, atol=1e-4)
