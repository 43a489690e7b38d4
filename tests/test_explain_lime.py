import numpy as np
import pytest
from flax import nnx
from lime.lime_image import LimeImageExplainer

from tests.explain_models import MaskedSum, SmallConvNet
from xai.explain.lime import LimeImage, bernoulli_samples, lime_stability
from xai.explain.probe import predict_fn
from xai.explain.segmentation import segment


@pytest.mark.parametrize("hide_color", [None, 0.3])
def test_weights_equal_the_lime_package_on_the_same_samples(hide_color):
    model = SmallConvNet(nnx.Rngs(0), channels=3)
    image = np.random.default_rng(0).random((12, 12, 3))
    segments = segment(image, "grid", cell=3)  # 16 superpixels
    n, features, target = 200, 16, 2
    lime = LimeImage(model, num_samples=n, hide_color=hide_color)
    reference = LimeImageExplainer(random_state=0).explain_instance(
        image,
        predict_fn(lime.probe),
        labels=(target,),
        top_labels=None,
        num_samples=n,
        batch_size=64,
        segmentation_fn=lambda _: segments,
        random_seed=0,
        hide_color=hide_color,
    )
    samples = np.random.RandomState(0).randint(0, 2, n * features).reshape(n, features)  # lime's own draw
    samples[0] = 1
    ours = lime(image[None].astype(np.float32), [target], segments=segments[None], samples=samples[None])
    expected = np.zeros(features)
    for feature, weight in reference.local_exp[target]:
        expected[feature] = weight
    np.testing.assert_allclose(ours.weights[0], expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_allclose(ours.intercept[0], reference.intercept[target], rtol=1e-4)
    np.testing.assert_allclose(ours.r2[0], reference.score, rtol=1e-3)


def test_lime_over_windows_of_a_sequence_finds_the_informative_window():
    mask = np.zeros((1, 24))
    mask[0, 8:12] = 1  # class 0 reads time steps 8..11
    lime = LimeImage(
        MaskedSum(mask),
        num_samples=300,
        hide_color=0.0,
        segmentation="windows",
        segmentation_options={"window": 4},
        score="logit",
    )
    signals = np.random.default_rng(1).random((3, 1, 24, 1)).astype(np.float32) + 0.5
    result = lime(signals, [0, 0, 0], key=0)
    assert result.weights.shape == (3, 6) and (result.num_features == 6).all()
    assert (result.weights.argmax(-1) == 2).all()
    np.testing.assert_allclose(result.weights[:, 2], signals[:, 0, 8:12, 0].sum(-1), rtol=0.05)  # a linear model is recovered
    assert (result.r2 > 0.99).all()


def test_samples_start_with_the_image_and_stability_is_reported():
    samples = np.asarray(bernoulli_samples(__import__("jax").random.key(0), 2, 50, 7))
    assert (samples[:, 0] == 1).all() and 0.3 < samples[:, 1:].mean() < 0.7
    lime = LimeImage(SmallConvNet(nnx.Rngs(1)), num_samples=64, segmentation="grid", segmentation_options={"cell": 5})
    results, agreement = lime_stability(
        lime, np.random.default_rng(2).random((2, 10, 10, 1)).astype(np.float32), seeds=(0, 1), k=2
    )
    assert len(results) == 2 and agreement.shape == (2,) and ((0 <= agreement) & (agreement <= 1)).all()
