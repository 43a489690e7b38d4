import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.explain_models import PooledLinear, SmallConvNet, TinyLSTM, trained_digits_convnet
from xai.explain.cam import (
    CAM_METHODS,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    ScoreCAM,
    token_grid,
    upsample_align_corners,
)
from xai.explain.guided import GuidedBackprop, guided
from xai.explain.inputs import ExplainError
from xai.explain.lime import LimeImage
from xai.explain.occlusion import Occlusion
from xai.explain.rollout import attention_rollout


def _scaled(x):
    x = np.maximum(x, 0)
    return (x - x.min()) / max(x.max() - x.min(), 1e-7)


@pytest.mark.parametrize("name", ["gradcam", "hirescam", "xgradcam", "layercam"])
def test_cams_match_the_analytic_map(name):
    """The gradient is W[:, t] / HW everywhere, so Grad-CAM = HiResCAM = XGradCAM = relu(x @ W[:, t]);
    LayerCAM keeps only positive gradients: relu(x @ relu(W[:, t]))."""
    model = PooledLinear(3, 5, nnx.Rngs(0))
    images = np.random.default_rng(0).random((4, 6, 7, 3)).astype(np.float32)
    targets = np.array([0, 1, 2, 4])
    maps = np.asarray(CAM_METHODS[name](model, "body")(images, targets))
    kernel = np.asarray(model.head.kernel[...])
    kernel = np.maximum(kernel, 0) if name == "layercam" else kernel
    for image, target, got in zip(images, targets, maps):
        np.testing.assert_allclose(got, _scaled(image @ kernel[:, target]), atol=1e-5)


def test_gradcam_plus_plus_matches_the_reference_formula_with_its_epsilon():
    """On PooledLinear the gradient of logit t is g_k = W[k, t] / HW everywhere, so Grad-CAM++'s weight is
    HW relu(g_k) g_k^2 / (2 g_k^2 + S_k g_k^3 + 1e-6), S_k the channel's activation sum (pytorch-grad-cam's eps)."""
    model = PooledLinear(3, 5, nnx.Rngs(0))
    images = np.random.default_rng(6).random((3, 6, 7, 3)).astype(np.float32)
    targets = np.array([0, 2, 4])
    maps = np.asarray(GradCAMPlusPlus(model, "body")(images, targets))
    kernel = np.asarray(model.head.kernel[...], np.float64)
    for image, target, got in zip(images.astype(np.float64), targets, maps):
        hw, g = image.shape[0] * image.shape[1], kernel[:, target] / (image.shape[0] * image.shape[1])
        alpha = np.where(g != 0, g**2 / (2 * g**2 + image.sum((0, 1)) * g**3 + 1e-6), 0)
        np.testing.assert_allclose(got, _scaled(image @ (hw * np.maximum(g, 0) * alpha)), atol=1e-5)


def _conv_same(x, kernel, bias):
    """flax's 3x3 'SAME' convolution (a cross-correlation) in numpy: x (B, H, W, C), kernel (3, 3, C, O)."""
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(padded[:, dy : dy + h, dx : dx + w] @ kernel[dy, dx] for dy in range(3) for dx in range(3)) + bias


def _numpy_small_convnet(model, x):
    """SmallConvNet in float64 numpy: (logits, conv2's output)."""
    p = lambda param: np.asarray(param[...], np.float64)
    hidden = np.maximum(_conv_same(x, p(model.conv1.kernel), p(model.conv1.bias)), 0)
    act = _conv_same(hidden, p(model.conv2.kernel), p(model.conv2.bias))
    return np.maximum(act, 0).mean((1, 2)) @ p(model.head.kernel) + p(model.head.bias), act


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def numpy_scorecam(model, image, target, weighting):
    """Score-CAM of one image at SmallConvNet's conv2 (same resolution as the image, so no resizing):
    the paper's weights are p_t(image * mask_k) - p_t(black image); pytorch-grad-cam's a softmax over
    channels of the masked images' target logits."""
    act = _numpy_small_convnet(model, image[None])[1][0]  # (H, W, C)
    lo, hi = act.min((0, 1)), act.max((0, 1))
    masks = np.moveaxis((act - lo) / np.maximum(hi - lo, 1e-7), -1, 0)[..., None]  # (C, H, W, 1)
    logits = _numpy_small_convnet(model, image[None] * masks)[0]
    if weighting == "increase":
        weights = _softmax(logits)[:, target] - _softmax(_numpy_small_convnet(model, np.zeros_like(image[None]))[0])[0, target]
    else:
        weights = _softmax(logits[:, target])
    return _scaled(act @ weights)


@pytest.mark.parametrize("weighting", ["increase", "pytorch_grad_cam"])
def test_scorecam_matches_a_numpy_implementation(weighting):
    model = SmallConvNet(nnx.Rngs(3))
    images = np.random.default_rng(7).random((3, 10, 10, 1)).astype(np.float32)
    targets = np.array([0, 3, 1])
    maps = np.asarray(ScoreCAM(model, "conv2", weighting=weighting)(images, targets))
    for image, target, got in zip(images.astype(np.float64), targets, maps):
        np.testing.assert_allclose(got, numpy_scorecam(model, image, target, weighting), atol=2e-5)


def test_aligned_corner_upsampling_samples_input_i_at_output_i_times_in_minus_1_over_out_minus_1():
    maps = np.random.default_rng(9).random((2, 4, 5)).astype(np.float32)
    got = np.asarray(upsample_align_corners(maps, (10, 13)))
    rows, cols = np.linspace(0, 3, 10), np.linspace(0, 4, 13)  # torch's UpsamplingBilinear2d
    for m, g in zip(maps, got):
        along_rows = np.stack([np.interp(rows, np.arange(4), m[:, j]) for j in range(5)], 1)
        np.testing.assert_allclose(g, np.stack([np.interp(cols, np.arange(5), r) for r in along_rows]), atol=1e-5)


def _correlation(a, b):
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def test_scorecam_is_class_sensitive_on_a_trained_model():
    """The top-1 and top-2 classes' maps must differ: channels are weighted by how much each raises *this* class.
    (The issue's bar is 0.6; the softmax-over-probabilities weighting this replaced gives 0.46 here, the
    published weighting -0.13, so the bar is 0.2.)"""
    model, images, _ = trained_digits_convnet()
    images = images[:32]
    top = np.argsort(-np.asarray(model(images)), -1)
    cam = ScoreCAM(model, "conv2")
    first, second = np.asarray(cam(images, top[:, 0])), np.asarray(cam(images, top[:, 1]))
    assert np.nanmean(_correlation(first, second)) < 0.2


def test_scorecam_rejects_an_unknown_weighting():
    with pytest.raises(ExplainError, match="weighting must be one of increase, pytorch_grad_cam"):
        ScoreCAM(SmallConvNet(nnx.Rngs(0)), "conv2", weighting="softmax")


def _numpy_eigencam(act):
    """The first principal component's projection by numpy's SVD, with EigenCAM's sign rule, ReLU'd and scaled."""
    flat = act.reshape(-1, act.shape[-1]).astype(np.float64)
    centred = flat - flat.mean(0)
    vt = np.linalg.svd(centred, full_matrices=False)[2]
    proj = centred @ vt[0]
    agreement = (proj * flat.mean(-1)).sum()
    sign = np.sign(agreement) if agreement != 0 else np.sign(vt[0][np.argmax(np.abs(vt[0]))])
    return _scaled((sign * proj).reshape(act.shape[:2]))


def test_eigencam_matches_numpy_svd_even_when_the_top_singular_values_are_close():
    """Power iteration does not converge when S1/S2 ~ 1.03; an exact SVD does not care."""
    rng = np.random.default_rng(8)
    u = np.linalg.qr(rng.normal(size=(42, 4)))[0]
    v = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    close = (u * [1.03, 1.0, 0.3, 0.05]) @ v.T + rng.random(4)  # (HW, C) with S1/S2 = 1.03
    images = np.concatenate([close.reshape(1, 6, 7, 4), rng.random((3, 6, 7, 4))]).astype(np.float32)
    maps = np.asarray(EigenCAM(PooledLinear(4, 2, nnx.Rngs(0)), "body", upsample=False)(images))
    for image, got in zip(images, maps):
        np.testing.assert_allclose(got, _numpy_eigencam(image), atol=1e-4)


def test_gradcam_over_time_for_a_sequence_layer():
    model = PooledLinear(2, 3, nnx.Rngs(1))
    sequences = np.random.default_rng(1).random((2, 1, 12, 2)).astype(np.float32)  # (N, 1, T, C) layout
    maps = np.asarray(GradCAM(model, "body", reshape=lambda h: h[:, 0])(sequences, [2, 0]))  # probe (B, T, C)
    kernel = np.asarray(model.head.kernel[...])
    assert maps.shape == (2, 1, 12)
    np.testing.assert_allclose(maps[1, 0], _scaled(sequences[1, 0] @ kernel[:, 0]), atol=1e-5)


def test_gradcam_over_time_on_an_lstm_output_sequence():
    """A step whose hidden state is zeroed cannot matter; the map over the LSTM outputs must say so."""
    model = TinyLSTM(2, 8, 3, nnx.Rngs(0))
    signals = np.random.default_rng(5).random((2, 1, 10, 2)).astype(np.float32)
    cam = GradCAM(model, "lstm")
    maps = np.asarray(cam(signals, [0, 1]))
    assert maps.shape == (2, 1, 10) and np.isfinite(maps).all() and maps.max() == pytest.approx(1.0)
    np.testing.assert_allclose(maps[1:], np.asarray(cam(signals[1:], [1])), atol=1e-5)
    lime = LimeImage(model, num_samples=32, segmentation="windows", segmentation_options={"window": 5})(signals, [0, 1])
    assert lime.weights.shape == (2, 2) and np.isfinite(lime.weights).all()  # the model runs inside scans and vjps


@pytest.mark.parametrize("name", ["gradcam", "gradcam++", "scorecam", "eigencam"])
def test_batched_maps_equal_per_image_maps(name):
    model = SmallConvNet(nnx.Rngs(0))
    images = np.random.default_rng(2).random((3, 10, 10, 1)).astype(np.float32)
    cam = CAM_METHODS[name](model, "conv2", batch_size=16)
    batched = np.asarray(cam(images, [0, 1, 3]))
    single = np.concatenate([np.asarray(cam(images[i : i + 1], [t])) for i, t in enumerate([0, 1, 3])])
    assert batched.shape == (3, 10, 10) and np.isfinite(batched).all()
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_occlusion_batched_and_finds_the_informative_region():
    mask = np.zeros((8, 8))
    mask[2:4, 5:7] = 1
    from tests.explain_models import MaskedSum

    occlusion = Occlusion(MaskedSum(mask), mask_size=2, stride=1, mask_value=0.0, score="logit")
    images = np.random.default_rng(3).random((2, 8, 8, 1)).astype(np.float32) + 0.5
    maps = np.asarray(occlusion(images, [0, 0]))
    np.testing.assert_allclose(maps[1:], np.asarray(occlusion(images[1:], [0])), atol=1e-5)
    assert maps[0][mask > 0].min() > maps[0][mask == 0].max()


def test_multi_layer_average_and_token_reshape():
    model = SmallConvNet(nnx.Rngs(0))
    images = np.random.default_rng(4).random((2, 10, 10, 1)).astype(np.float32)
    assert GradCAM(model, ["conv1", "conv2"])(images, 1).shape == (2, 10, 10)
    tokens = jnp.arange(2 * 17 * 3.0).reshape(2, 17, 3)
    assert token_grid()(tokens).shape == (2, 4, 4, 3)


def test_guided_backprop_blocks_negative_gradients():
    f = lambda x: jnp.sum(-1.0 * jax.nn.relu(x) + 2.0 * jax.nn.relu(x[::-1]))
    x = jnp.array([1.0, -1.0, 2.0])
    np.testing.assert_allclose(jax.grad(f)(x), [1.0, 0.0, 1.0])
    np.testing.assert_allclose(jax.grad(guided(f))(x), [2.0, 0.0, 2.0])  # the ReLU fed a negative gradient passes nothing
    grads = GuidedBackprop(SmallConvNet(nnx.Rngs(0)))(np.ones((2, 10, 10, 1), np.float32), [0, 1])
    assert grads.shape == (2, 10, 10, 1) and np.isfinite(np.asarray(grads)).all()


def test_attention_rollout_follows_the_attended_patch():
    attention = np.full((1, 2, 5, 5), 0.01, np.float32)
    attention[:, :, :, 3] = 1.0  # every token attends to token 3 = patch (1, 0) of a 2x2 grid
    maps = np.asarray(attention_rollout([attention, attention]))
    assert maps.shape == (1, 2, 2) and np.argmax(maps[0]) == 2 and maps[0, 1, 0] > 0.99


@pytest.mark.parametrize(
    "images, targets, layer, message",
    [
        (np.zeros((10, 10, 1), np.float32), 0, "conv2", "NHWC"),
        (np.zeros((1, 10, 10, 1), np.int64), 0, "conv2", "dtype"),
        (np.zeros((1, 10, 10, 3), np.float32), 0, "conv2", "cannot take images"),
        (np.full((1, 10, 10, 1), np.nan, np.float32), 0, "conv2", "NaN"),
        (np.zeros((1, 10, 10, 1), np.float32), 4, "conv2", "out of range"),
        (np.zeros((1, 10, 10, 1), np.float32), 0, "conv3", "valid layers: conv1, conv2, head"),
    ],
)
def test_bad_input_is_a_one_line_error(images, targets, layer, message):
    with pytest.raises(ExplainError, match=message) as info:
        HiResCAM(SmallConvNet(nnx.Rngs(0)), layer)(images, targets)
    assert "\n" not in str(info.value)
