import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.explain_models import MaskedSum, PooledLinear, SmallConvNet
from xai.explain.cam import GradCAM
from xai.explain.metrics import (
    Faithfulness,
    empty_maps,
    mean_over_nonempty,
    noisy_linear_imputation,
    random_baseline,
    sobel_baseline,
    trapezoid_auc,
)
from xai.explain.probe import Probe
from xai.explain.sanity import STD_FLOOR, map_similarity, parameter_layers, randomisation_test, randomise_layers


def _synthetic_task():
    """Class 0's evidence is a bright 4x4 square over faint noise; the oracle saliency is that square."""
    mask = np.zeros((12, 12))
    mask[3:7, 5:9] = 1
    images = (0.2 * np.random.default_rng(0).random((6, 12, 12, 1)) + mask[None, ..., None]).astype(np.float32)
    oracle = mask[None] + 0.01 * np.random.default_rng(1).random((6, 12, 12))
    return MaskedSum(mask, offset=13.0), images, oracle


def test_an_oracle_saliency_beats_random_on_deletion_insertion_and_road():
    model, images, oracle = _synthetic_task()
    faith = Faithfulness(Probe(model), steps=12, road_fractions=(0.1, 0.5, 0.9), road_iterations=20)
    targets = np.zeros(6, int)
    good = {**faith.deletion_insertion(images, oracle, targets), **faith.road(images, oracle, targets)}
    rand = random_baseline(oracle.shape)
    bad = {**faith.deletion_insertion(images, rand, targets), **faith.road(images, rand, targets)}
    assert good["deletion_auc"].mean() < bad["deletion_auc"].mean() - 0.1
    assert good["insertion_auc"].mean() > bad["insertion_auc"].mean() + 0.05
    assert good["road_morf"].mean() < bad["road_morf"].mean() and good["road_gap"].mean() > bad["road_gap"].mean()
    assert good["deletion_curve"].shape == (6, 13)


def test_trapezoid_auc_and_baselines():
    np.testing.assert_allclose(trapezoid_auc(np.linspace(1, 0, 11)), 0.5, atol=1e-6)
    edges = sobel_baseline(np.pad(np.ones((1, 4, 4, 1), np.float32), ((0, 0), (2, 2), (2, 2), (0, 0))))
    assert edges[0, 4, 4] == 0 and edges[0, 2, 4] > 0  # flat inside, strong on the border


def test_imputation_fills_removed_pixels_from_their_neighbours():
    ramp = np.tile(np.linspace(0, 1, 9, dtype=np.float32), (9, 1))[None, ..., None]
    removed = np.zeros((1, 9, 9), bool)
    removed[0, 3:6, 3:6] = True
    filled = np.asarray(noisy_linear_imputation(ramp, removed, __import__("jax").random.key(0), 0.0, 200))
    np.testing.assert_allclose(filled, ramp, atol=1e-3)  # a linear ramp is harmonic: recovered exactly


def test_parameter_randomisation_drives_the_similarity_down():
    model = SmallConvNet(nnx.Rngs(0))
    images = np.random.default_rng(2).random((3, 12, 12, 1)).astype(np.float32)
    cam = GradCAM(model, "conv1")
    assert parameter_layers(cam.probe, cam.probe.check(images)) == ["conv1", "conv2", "head"]
    result = randomisation_test(cam, cam.probe, images, [0, 1, 2], key=0)
    assert result["layers"] == ["trained", "head", "conv2", "conv1"] and result["spearman"][0] == pytest.approx(1.0)
    assert result["spearman"][-1] < 0.5 and result["ssim"][-1] < 0.5
    assert cam.probe.state is not None and np.allclose(np.asarray(cam(images, [0, 1, 2])), np.asarray(cam(images, [0, 1, 2])))
    last = randomisation_test(cam, cam.probe, images, [0, 1, 2], key=0, cascade=False)  # the last step alone: same draw
    assert last["layers"] == ["trained", "conv1"] and last["spearman"] == [result["spearman"][0], result["spearman"][-1]]


def test_empty_maps_are_the_constant_ones_and_means_leave_them_out():
    maps = np.stack([np.zeros((4, 4)), np.full((4, 4), 0.3), np.eye(4) * 1e-3, np.random.default_rng(3).random((4, 4))])
    assert empty_maps(maps).tolist() == [True, True, False, False]
    means = mean_over_nonempty(
        {"deletion_auc": np.array([9.0, 9.0, 0.2, 0.4]), "deletion_curve": np.zeros((4, 3))}, empty_maps(maps)
    )
    assert means == {"deletion_auc": pytest.approx(0.3), "images_used": 2, "images_total": 4}
    assert np.isnan(mean_over_nonempty({"x": np.ones(2)}, np.array([True, True]))["x"])


def test_randomisation_test_leaves_empty_maps_out_instead_of_scoring_them_zero():
    """Grad-CAM on PooledLinear is relu(x @ W[:, t]): an all-negative image gives an empty map."""
    model = PooledLinear(1, 2, nnx.Rngs(0))
    model.head.kernel.set_value(jnp.array([[1.0, -1.0]]))
    rng = np.random.default_rng(4)
    images = np.concatenate([-rng.random((1, 6, 6, 1)), rng.random((2, 6, 6, 1))]).astype(np.float32)
    cam = GradCAM(model, "body")
    result = randomisation_test(cam, cam.probe, images, [0, 0, 0], key=0)
    assert result["images_used"] == 2 and result["images_total"] == 3
    assert result["spearman"][0] == pytest.approx(1.0) and result["empty"][0] == 1  # the two others are ranked, exactly
    rho, _ = map_similarity(np.asarray(cam(images, [0, 0, 0])), np.asarray(cam(images, [0, 0, 0])))
    assert np.isnan(rho[0]) and np.allclose(rho[1:], 1.0)
    everything_empty = randomisation_test(cam, cam.probe, images[:1], [0], key=0)
    assert np.isnan(everything_empty["spearman"]).all()


def test_randomised_layers_keep_each_trained_tensors_std_and_zero_std_tensors_get_the_floor():
    model = SmallConvNet(nnx.Rngs(0))
    model.conv2.kernel.set_value(model.conv2.kernel[...] * 0.1)  # a trained-like scale, far below 1/sqrt(kernel height)
    state = nnx.state(model)
    randomised = randomise_layers(state, ["conv2"], jax.random.key(0))
    trained, drawn = np.asarray(state["conv2"]["kernel"][...]), np.asarray(randomised["conv2"]["kernel"][...])
    assert not np.allclose(trained, drawn) and drawn.std() == pytest.approx(trained.std(), rel=0.1)
    assert np.asarray(state["conv2"]["bias"][...]).std() == 0  # flax initialises biases to zero
    assert np.asarray(randomised["conv2"]["bias"][...]).std() == pytest.approx(STD_FLOOR, rel=0.5)
    np.testing.assert_array_equal(np.asarray(randomised["conv1"]["kernel"][...]), np.asarray(state["conv1"]["kernel"][...]))
