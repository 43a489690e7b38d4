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
from jaxdl.errors import ConfigError
from jaxdl.models import InputSpec

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


def small_spec(name: str) -> InputSpec:
    """Fashion-MNIST-like input at the size the config asks for (28x28 grey unless it says 32)."""
    return InputSpec(models.input_size(model_cfg(name), (28, 28)), 1, 10)


def build_small(name: str, seed: int = 0) -> nnx.Module:
    return models.build(model_cfg(name), small_spec(name), seed)


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
def test_small_variant_forward_shape_and_eval_determinism(name):
    model = build_small(name)
    x = images(small_spec(name), 2)
    model.eval()
    first, second = model(x), model(x)
    assert first.shape == (2, 10)
    assert bool(jnp.all(jnp.isfinite(first)))
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


def train_loss_curve(model: nnx.Module, x: jax.Array, y: jax.Array, steps: int, lr: float = 1e-3) -> list[float]:
    """Losses of `steps` Adam steps on one fixed batch, through the spine's split/merge of the model."""
    from jaxdl.steps import cross_entropy, split_model

    train_def, _, params, model_state = split_model(model)
    tx = optax.adam(lr)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, model_state, opt_state):
        def loss_fn(p):
            m = nnx.merge(train_def, p, model_state)
            loss = cross_entropy(m(x), y).mean()
            return loss, nnx.state(m, nnx.Not(nnx.Param))

        (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), model_state, opt_state, loss

    losses = []
    for _ in range(steps):
        params, model_state, opt_state, loss = step(params, model_state, opt_state)
        losses.append(float(loss))
    return losses


# The CNN families, the sequence models and the MLP: one representative config per model class.
TRAINED = ["alexnet", "vgg11", "resnet18", "resnet50", "squeezenet1_1", "googlenet", "inception_v3",
           "mlp", "lstm", "gru", "vit", "seq_transformer"]


@pytest.mark.parametrize("name", TRAINED)
def test_train_steps_lower_the_loss_on_a_fixed_batch(name):
    spec = small_spec(name)
    model = build_small(name)
    x, y = images(spec, 8, seed=1), jnp.arange(8) % spec.num_classes
    losses = train_loss_curve(model, x, y, steps=4)
    assert losses[-1] < losses[0], losses
