import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from explain_models import PooledLinear, SmallConvNet, TinyLSTM
from xai.explain.cam import CAM_METHODS, GradCAM, HiResCAM, token_grid
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
    single = np.concatenate([np.asarray(cam(images[i:i + 1], [t])) for i, t in enumerate([0, 1, 3])])
    assert batched.shape == (3, 10, 10) and np.isfinite(batched).all()
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_occlusion_batched_and_finds_the_informative_region():
    mask = np.zeros((8, 8)); mask[2:4, 5:7] = 1
    from explain_models import MaskedSum
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


@pytest.mark.parametrize("images, targets, layer, message", [
    (np.zeros((10, 10, 1), np.float32), 0, "conv2", "NHWC"),
    (np.zeros((1, 10, 10, 1), np.int64), 0, "conv2", "dtype"),
    (np.zeros((1, 10, 10, 3), np.float32), 0, "conv2", "cannot take images"),
    (np.full((1, 10, 10, 1), np.nan, np.float32), 0, "conv2", "NaN"),
    (np.zeros((1, 10, 10, 1), np.float32), 4, "conv2", "out of range"),
    (np.zeros((1, 10, 10, 1), np.float32), 0, "conv3", "valid layers: conv1, conv2, head"),
])
def test_bad_input_is_a_one_line_error(images, targets, layer, message):
    with pytest.raises(ExplainError, match=message) as info:
        HiResCAM(SmallConvNet(nnx.Rngs(0)), layer)(images, targets)
    assert "\n" not in str(info.value)
