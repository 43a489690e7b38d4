"""Mixup and CutMix in the jitted step: hand-computed mixes, soft targets with label smoothing, resume
(with RandAugment and random erasing before them in the same step)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import models, optim
from jaxdl.augment import batch_mix, cutmix, mixup, soft_targets
from jaxdl.data.pipeline import Preprocess
from jaxdl.errors import ConfigError
from jaxdl.image_augment import image_augment
from jaxdl.parallel import data_mesh
from jaxdl.steps import init_state, make_train_step, split_model

X = jnp.arange(4 * 6 * 6 * 1, dtype=jnp.float32).reshape(4, 6, 6, 1)  # every pixel distinct
LABELS = jnp.array([0, 1, 2, 3])


def test_mixup_is_the_convex_combination_of_images_and_targets():
    targets = soft_targets(LABELS, 5, 0.0)
    x, t = mixup(X, targets, jnp.float32(0.3))
    np.testing.assert_allclose(x[1], 0.3 * X[1] + 0.7 * X[2], rtol=1e-6)  # mirror of example 1 of 4 is example 2
    np.testing.assert_allclose(t[1], [0, 0.3, 0.7, 0, 0], rtol=1e-6)


@pytest.mark.parametrize("lam", [0.2, 0.7])
def test_cutmix_label_weight_is_the_share_of_pixels_kept(lam):
    x, t = cutmix(jax.random.key(3), X, soft_targets(LABELS, 4, 0.0), jnp.float32(lam))
    kept = float(np.mean(np.asarray(x[0]) == np.asarray(X[0])))
    pasted = np.asarray(x[0]) != np.asarray(X[0])
    np.testing.assert_array_equal(np.asarray(x[0])[pasted], np.asarray(X[3])[pasted])  # from the mirrored image
    assert 0 < kept < 1
    np.testing.assert_allclose(t[0], [kept, 0, 0, 1 - kept], rtol=1e-6)


def test_label_smoothing_applies_to_both_mixed_targets():
    mix = batch_mix({"mixup": 0.4}, 4, label_smoothing=0.1)
    x, t = mix(jax.random.key(0), X, LABELS)
    lam = float((x[0, 0, 0, 0] - X[3, 0, 0, 0]) / (X[0, 0, 0, 0] - X[3, 0, 0, 0]))  # recovered from the pixels
    smooth = lambda c: np.full(4, 0.1 / 4) + 0.9 * np.eye(4)[c]  # noqa: E731
    np.testing.assert_allclose(t[0], lam * smooth(0) + (1 - lam) * smooth(3), rtol=1e-5)
    np.testing.assert_allclose(t.sum(-1), 1.0, rtol=1e-6)


def test_the_same_key_gives_the_same_batch_and_both_ops_are_used():
    mix = jax.jit(batch_mix({"mixup": 0.2, "cutmix": 1.0}, 4))  # compiled once for the 14 calls below
    a, b = mix(jax.random.key(5), X, LABELS), mix(jax.random.key(5), X, LABELS)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    kinds = set()
    for seed in range(12):  # cutmix leaves some pixels exactly as they were, mixup (0 < λ < 1) none
        x, _ = mix(jax.random.key(seed), X, LABELS)
        kinds.add("cutmix" if np.any(np.asarray(x[0]) == np.asarray(X[0])) else "mixup")
    assert kinds == {"cutmix", "mixup"}
    assert batch_mix({"mixup": 0.0, "cutmix": 0.0}, 4) is None
    with pytest.raises(ConfigError, match="data.augment.cutmix must be a Beta alpha"):
        batch_mix({"cutmix": -1}, 4)


def test_train_step_mixes_from_the_step_key_and_resumes_exactly():
    mesh = data_mesh()
    spec = models.InputSpec((8, 8), 1, 4)
    model = models.build({"name": "mlp", "hidden": [16], "dropout": 0.0}, spec, seed=0)
    tx = optim.build({"name": "sgd", "learning_rate": 0.1}, 10, 1)
    train_def, _, params, rest = split_model(model)
    preprocess = Preprocess((8, 8), (0.5,), (0.5,))
    mix = batch_mix({"mixup": 0.4, "cutmix": 1.0}, 4, label_smoothing=0.1)
    augment = image_augment({"randaugment": {"n": 1, "m": 9}, "random_erasing": {"p": 0.5}}, (0.5,), (0.5,), 1)
    step = make_train_step(train_def, tx, preprocess, mesh, seed=7, label_smoothing=0.1, mix=mix, augment=augment)
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1), np.uint8))
    labels = jnp.arange(8) % 4
    state = init_state(params, rest, tx, mesh)
    # the step's loss is cross-entropy against the mixed soft targets of the step's own key, after the per-image ops
    key = jax.random.fold_in(jax.random.key(7), 0)
    plain = jax.jit(preprocess)(images, key)
    augmented = jax.jit(augment)(jax.random.fold_in(key, 2), plain)
    assert not np.array_equal(augmented, plain)
    x, targets = jax.jit(mix)(jax.random.fold_in(key, 1), augmented, labels)
    expected = optax.softmax_cross_entropy(model(x), targets).mean()
    losses = []
    for _ in range(3):
        if int(state.step) == 1:
            saved = jax.tree.map(jnp.copy, state)
        state, metrics = step(state, images, labels)
        losses.append(float(metrics["loss_sum"]) / 8)
    assert losses[0] == pytest.approx(float(expected), rel=1e-5)
    resumed = losses[:1]
    for _ in range(2):
        saved, metrics = step(saved, images, labels)
        resumed.append(float(metrics["loss_sum"]) / 8)
    assert resumed == losses  # bit-identical: augmentation and mix depend only on the seed and the step number
