"""The model zoo: every conf/model/*.yaml builds, runs, trains and counts parameters as published."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from omegaconf import OmegaConf

from jaxdl import models
from jaxdl.config import CONF_DIR
from jaxdl.data.pipeline import Preprocess
from jaxdl.models import InputSpec
from jaxdl.parallel import data_mesh
from jaxdl.steps import TrainState, init_state, make_train_step, split_model
from tests.random_weights import with_random_weights

MODEL_CONFIGS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
SMALL = [name for name in MODEL_CONFIGS if not name.endswith("_imagenet")]
IMAGENET = [name for name in MODEL_CONFIGS if name.endswith("_imagenet")]

# torchvision's parameter counts (1000 classes, no auxiliary heads), the published figures.
PUBLISHED_PARAMS = {
    "alexnet_imagenet": 61_100_840,
    "vgg11_imagenet": 132_863_336,
    "vgg16_imagenet": 138_357_544,
    "vgg19_imagenet": 143_667_240,
    "googlenet_imagenet": 6_624_904,
    "inception_v3_imagenet": 23_834_568,
    "resnet18_imagenet": 11_689_512,
    "resnet34_imagenet": 21_797_672,
    "resnet50_imagenet": 25_557_032,
    "squeezenet1_0_imagenet": 1_248_424,
    "squeezenet1_1_imagenet": 1_235_496,
    "vit_imagenet": 86_567_656,
}


def model_cfg(name: str):
    return OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")


def small_spec(name: str, native: int = 28) -> InputSpec:
    """Fashion-MNIST-like grey input at the size the config asks for, else at `native` pixels."""
    return InputSpec(models.input_size(model_cfg(name), (native, native)), 1, 10)


def build_small(name: str, seed: int = 0, native: int = 28, **overrides) -> nnx.Module:
    cfg = model_cfg(name)
    cfg.update({k: v for k, v in overrides.items() if k in cfg})
    return models.build(cfg, small_spec(name, native), seed)


def param_count(model: nnx.Module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def images(spec: InputSpec, n: int, seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (n, *spec.size, spec.channels))


def test_every_imagenet_variant_has_a_published_count():
    assert sorted(PUBLISHED_PARAMS) == IMAGENET


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_variant_parameter_count_and_output_shape(name):
    cfg = model_cfg(name)
    spec = InputSpec(models.input_size(cfg, (0, 0)), 3, 1000)
    model = nnx.eval_shape(lambda: models.build(cfg, spec, 0))
    assert param_count(model) == PUBLISHED_PARAMS[name]
    model.eval()
    graphdef, state = nnx.split(model)
    out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, jax.ShapeDtypeStruct((2, *spec.size, 3), jnp.float32))
    assert out.shape == (2, 1000)


@pytest.mark.parametrize("name", SMALL)
def test_small_variant_output_shape(name):
    """Abstractly (no compute): every config builds and maps a 28x28 batch to class logits."""
    spec = small_spec(name)
    model = nnx.eval_shape(lambda: build_small(name))
    graphdef, state = nnx.split(model)
    out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, jax.ShapeDtypeStruct((2, *spec.size, 1), jnp.float32))
    assert out.shape == (2, 10)


def eval_twice(model: nnx.Module, spec: InputSpec) -> tuple[jax.Array, jax.Array]:
    """Two jitted eval-mode forward passes of the same batch."""
    model.eval()
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    x = images(spec, 2)
    return forward(state, x), forward(state, x)


# The Inception CNNs' train steps take 20-40 s to compile on a CPU: they run forward only
# (ResNet-50's bottleneck blocks are covered by the abstract tests and ResNet-18's training).
FORWARD_ONLY = ["googlenet", "inception_v3"]


@pytest.mark.parametrize("name", FORWARD_ONLY)
def test_large_small_variants_run_deterministically_in_eval_mode(name):
    spec = small_spec(name, native=16)
    first, second = eval_twice(with_random_weights(lambda: build_small(name, native=16)), spec)
    assert first.shape == (2, 10) and bool(jnp.all(jnp.isfinite(first)))
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


def train_losses(model: nnx.Module, spec: InputSpec, x: jax.Array, y: jax.Array, steps: int) -> tuple[list[float], TrainState]:
    """Losses of `steps` Adam steps on one fixed batch through the spine's jitted train step."""
    mesh = data_mesh()
    train_def, _, params, model_state = split_model(model)
    tx = optax.adam(1e-4)
    state = init_state(params, model_state, tx, mesh)
    identity = Preprocess(spec.size, (0.0,) * spec.channels, (1.0,) * spec.channels)
    step = make_train_step(train_def, tx, identity, mesh, seed=0)
    losses = []
    for _ in range(steps):
        state, metrics = step(state, x, y)
        losses.append(float(metrics["loss_sum"]) / int(metrics["count"]))
    return losses, state


# One config per remaining model class (VGG shares AlexNet's plain conv + dense head, the LSTM the
# GRU's RecurrentClassifier, the sequence Transformer ViT's encoder; those run in the other tests).
TRAINED = ["alexnet", "resnet18", "squeezenet1_1", "mlp", "gru", "vit"]


@pytest.mark.parametrize("name", TRAINED)
def test_train_steps_lower_the_loss_on_a_fixed_batch(name):
    spec = small_spec(name, native=16)  # 16 px keeps the big CNNs cheap; AlexNet and VGG ask for 32
    # without dropout noise the loss must fall step by step; two Transformer blocks compile faster than six
    model = build_small(name, native=16, dropout=0.0, depth=2)
    x, y = images(spec, 4, seed=1), jnp.arange(4) % spec.num_classes
    losses, _ = train_losses(model, spec, x, y, steps=4)
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    first, second = eval_twice(with_random_weights(lambda: build_small(name, native=16)), spec)  # as configured, dropout included
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
