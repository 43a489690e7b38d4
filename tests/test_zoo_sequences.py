"""Sequence models (masking, attention weights) and the generated 1-D signal data set."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf

from jaxdl import models
from jaxdl.config import CONF_DIR
from jaxdl.data import load_dataset, signals
from jaxdl.errors import ConfigError, DataError
from jaxdl.models import InputSpec

SIGNAL = InputSpec((1, 24), 1, 10)  # one row of 24 steps, one channel


def padded_batch() -> tuple[jax.Array, jax.Array, jax.Array]:
    """Three signals of lengths 24, 15 and 6, and a copy whose padding is garbage."""
    x = jax.random.normal(jax.random.key(0), (3, 1, 24, 1))
    lengths = jnp.array([24, 15, 6])
    garbage = jnp.where(jnp.arange(24)[None, None, :, None] >= lengths[:, None, None, None], 50.0, x)
    return x, garbage, lengths


@pytest.mark.parametrize(
    "name, options",
    [
        ("lstm", {"bidirectional": True, "num_layers": 2}),
        ("gru", {"bidirectional": False}),
        ("seq_transformer", {"depth": 2}),
    ],
)
def test_masking_ignores_the_padding_of_variable_length_sequences(name, options):
    model = models.build({"name": name, **options}, SIGNAL, seed=0)
    model.eval()
    x, garbage, lengths = padded_batch()
    masked = model(x, lengths)
    np.testing.assert_allclose(model(garbage, lengths), masked, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(x, jnp.full((3,), 24)), model(x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(model(x)[1:], masked[1:], atol=1e-4)  # the mask does change the shorter ones


def test_images_are_read_row_by_row():
    model = models.build({"name": "gru", "hidden": 8}, InputSpec((28, 28), 1, 10), seed=0)
    assert model.layers[0].cell.in_features == 28
    assert model(jnp.ones((2, 28, 28, 1))).shape == (2, 10)


def test_attention_weights_are_retrievable_and_leave_no_state_behind():
    model = models.build({"name": "vit", "depth": 2, "patch": 7}, InputSpec((28, 28), 1, 10), seed=0)
    model.eval()
    before = jax.tree.structure(nnx.state(model))
    weights = model.attention_weights(jnp.ones((2, 28, 28, 1)))
    assert len(weights) == 2 and weights[0].shape == (2, 4, 17, 17)  # 16 patches + the class token
    np.testing.assert_allclose(weights[1].sum(-1), 1.0, rtol=1e-5)
    assert jax.tree.structure(nnx.state(model)) == before


def test_masked_steps_get_no_attention():
    model = models.build({"name": "seq_transformer", "depth": 1}, SIGNAL, seed=0)
    x, _, lengths = padded_batch()
    (weights,) = model.attention_weights(x, lengths)
    assert float(weights[2, :, :, 1 + 6 :].max()) == 0.0  # tokens after step 6 of the third signal
    assert float(weights[2, :, :, : 1 + 6].sum(-1).min()) == pytest.approx(1.0, rel=1e-5)


def test_vit_patch_must_divide_the_input():
    with pytest.raises(ConfigError, match="model.patch=5 must divide the input size 28x28"):
        models.build({"name": "vit", "patch": 5}, InputSpec((28, 28), 1, 10), seed=0)


def test_signal_data_set_is_balanced_reproducible_and_float():
    a, b = signals.generate(200, 40, seed=3), signals.generate(200, 40, seed=3)
    assert a.images.shape == (200, 1, 40, 1) and a.images.dtype == np.float32
    np.testing.assert_array_equal(a.images, b.images)
    assert np.bincount(a.labels).tolist() == [20] * 10
    assert not np.array_equal(a.images, signals.generate(200, 40, seed=4).images)
    with pytest.raises(DataError, match="data.length must be at least 12"):
        signals.generate(10, 8, seed=0)


def test_signal_classes_are_learnable_but_not_trivially():
    """Nearest class mean on raw samples beats chance yet is far from perfect (the noise and shifts matter)."""
    train, test = signals.generate(2000, 40, seed=0), signals.generate(500, 40, seed=1)
    flat = lambda s: s.images.reshape(len(s), -1)
    means = np.stack([flat(train)[train.labels == c].mean(0) for c in range(10)])
    predicted = np.argmin(((flat(test)[:, None] - means[None]) ** 2).sum(-1), axis=1)
    accuracy = float(np.mean(predicted == test.labels))
    assert 0.2 < accuracy < 0.8


def test_signals_config_loads_with_a_train_subset():
    cfg = OmegaConf.load(CONF_DIR / "data" / "signals1d.yaml")
    cfg.num_train, cfg.num_test = 500, 100
    cfg.train_subset = 90
    dataset = load_dataset(cfg)
    assert len(dataset.train) == 90 and np.bincount(dataset.train.labels).tolist() == [9] * 10
    assert dataset.image_shape == (1, 40, 1) and len(dataset.test) == 100
    cfg.train_subset = 10_000
    with pytest.raises(DataError, match="data.train_subset must be between 1 and the 450"):
        load_dataset(cfg)


def set_fused(model: nnx.Module, fused: bool) -> None:
    for block in model.blocks:
        block.attention.fused = fused


@pytest.mark.parametrize("name, spec, lengths", [("vit", InputSpec((28, 28), 1, 10), None), ("seq_transformer", SIGNAL, True)])
def test_fused_attention_gives_the_explicit_paths_logits_and_gradients(name, spec, lengths, monkeypatch):
    model = models.build({"name": name, "depth": 1, **({"patch": 7} if name == "vit" else {})}, spec, seed=0)
    model.eval()  # no attention dropout: the fused call applies
    x = jax.random.normal(jax.random.key(1), (3, *spec.size, 1))
    lengths = padded_batch()[2] if lengths else None
    calls = []
    fused_call = jax.nn.dot_product_attention
    monkeypatch.setattr(jax.nn, "dot_product_attention", lambda *a, **k: calls.append(k["implementation"]) or fused_call(*a, **k))

    def loss(m: nnx.Module) -> jax.Array:
        return (m(x, lengths) ** 2).mean()

    results = {}
    for fused in (True, False):
        set_fused(model, fused)
        calls.clear()
        results[fused] = (model(x, lengths), nnx.grad(loss)(model))
        assert calls == ([None] * 2 if fused else [])  # XLA's composition on the CPU: the logits, then the grad
    np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(results[True][1]), jax.tree.leaves(results[False][1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_cudnn_attention_is_chosen_only_for_16_bit_unmasked_inputs_on_nvidia(monkeypatch):
    from jaxdl.models import transformer

    class Device:
        platform = "gpu"

        class client:  # noqa: N801 - mimics jax's Device.client attribute
            platform_version = "PJRT C API\ncuda 12080"

    assert transformer.fused_implementation(jnp.bfloat16, None) is None  # the CPU: XLA's
    monkeypatch.setattr(jax, "devices", lambda: [Device()])
    assert transformer.fused_implementation(jnp.bfloat16, None) == "cudnn"
    assert transformer.fused_implementation(jnp.float16, None) == "cudnn"
    assert transformer.fused_implementation(jnp.float32, None) is None
    assert transformer.fused_implementation(jnp.bfloat16, jnp.ones((2, 5), bool)) is None


def test_attention_dropout_in_training_takes_the_explicit_path(monkeypatch):
    model = models.build({"name": "vit", "depth": 1, "patch": 7, "dropout": 0.5}, InputSpec((28, 28), 1, 10), seed=0)
    model.train()
    monkeypatch.setattr(jax.nn, "dot_product_attention", lambda *a, **k: pytest.fail("fused call with attention dropout"))
    model(jnp.ones((2, 28, 28, 1)))
