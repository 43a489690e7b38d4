"""Gradient attributions equal captum's on the same weights: jaxdl's LeNet-5 and its PyTorch twin
(experiments/lenet_twin.py), and an imported torchvision ResNet-18 and the torch model it came from."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from scipy.ndimage import gaussian_filter

from jaxdl.data.pipeline import Preprocess
from jaxdl.models.lenet import lenet5, lenet5_classic
from jaxdl.models.registry import InputSpec
from xai.explain.gradients import (
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
    VarGrad,
    make_baseline,
)

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")

TWIN = Path(__file__).parents[1] / "experiments" / "lenet_twin.py"


def per_image_r(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    a, b = ours.reshape(len(ours), -1), theirs.reshape(len(theirs), -1)
    return np.array([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])


def nchw(images: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def nhwc(tensor) -> np.ndarray:
    return tensor.detach().numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def lenet():
    """A random jaxdl LeNet-5 (normalisation in `preprocess`), its torch twin, 4 smooth random images and targets."""
    spec = InputSpec((28, 28), 1, 10)
    model = lenet5(spec, rngs=nnx.Rngs(0))
    preprocess = Preprocess((28, 28), (0.3,), (0.35,))
    spec_ = importlib.util.spec_from_file_location("lenet_twin", TWIN)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    twin = module.torch_twin(model, preprocess)
    rng = np.random.default_rng(0)
    images = np.clip(gaussian_filter(rng.uniform(size=(4, 28, 28, 1)), (0, 1.5, 1.5, 0)) * 2 - 0.5, 0, 1).astype(np.float32)
    targets = np.array([0, 3, 7, 9])
    return model, preprocess, twin, images, targets


def captum_ig(twin, images, targets, baselines, n_steps, method):
    ig = captum_attr.IntegratedGradients(twin)
    attr = ig.attribute(nchw(images), baselines=nchw(baselines), target=targets.tolist(), n_steps=n_steps, method=method)
    return nhwc(attr)


@pytest.mark.parametrize(
    "method,options",
    [
        ("integrated_gradients", {}),  # captum's defaults: black, 50 steps, Gauss-Legendre
        ("integrated_gradients", {"baseline": "blurred", "n_steps": 20, "method": "riemann_trapezoid"}),
        ("integrated_gradients", {"baseline": "uniform", "n_steps": 16, "method": "riemann_middle", "internal_batch_size": 12}),
        ("saliency", {}),
        ("input_x_gradient", {}),
    ],
    ids=["ig-default", "ig-blurred-trapezoid", "ig-uniform-middle-chunked", "saliency", "input_x_gradient"],
)
def test_lenet_attributions_equal_captums(lenet, method, options):
    model, preprocess, twin, images, targets = lenet
    cls = {"integrated_gradients": IntegratedGradients, "saliency": Saliency, "input_x_gradient": InputXGradient}[method]
    explainer = cls(model, preprocess=preprocess, **options)
    maps = explainer(images, targets)
    x = nchw(images).requires_grad_()
    if method == "integrated_gradients":
        baselines = make_baseline(options.get("baseline", "black"), images, jax.random.split(jax.random.key(0))[1])
        theirs = captum_ig(twin, images, targets, baselines, explainer.n_steps, explainer.method)
    elif method == "saliency":
        theirs = nhwc(captum_attr.Saliency(twin).attribute(x, target=targets.tolist(), abs=False))
    else:
        theirs = nhwc(captum_attr.InputXGradient(twin).attribute(x, target=targets.tolist()))
    assert explainer.raw.shape == images.shape
    np.testing.assert_allclose(maps, explainer.raw.sum(-1), rtol=1e-6)
    r = per_image_r(explainer.raw, theirs)
    assert (r >= 0.999).all(), r
    np.testing.assert_allclose(explainer.raw, theirs, atol=1e-3 * np.abs(theirs).max())  # max-pool and ReLU kinks


def test_smoothgrad_is_seeded_and_agrees_with_captums_noise_tunnel(lenet):
    model, preprocess, twin, images, targets = lenet
    images, targets = images[:2], targets[:2]
    smooth = NoiseTunnel(model, preprocess=preprocess, nt_samples=512, noise_level=0.15, seed=1)
    first = smooth(images, targets)
    np.testing.assert_array_equal(first, smooth(images, targets))
    smooth.seed = 2  # the seed only draws the noise keys: no recompilation
    assert not np.array_equal(first, smooth(images, targets))
    smooth.seed = 1
    sigma = 0.15 * (images.max((1, 2, 3)) - images.min((1, 2, 3)))
    tunnel = captum_attr.NoiseTunnel(captum_attr.Saliency(twin))
    torch.manual_seed(0)
    theirs = np.concatenate(
        [
            nhwc(
                tunnel.attribute(
                    nchw(images[i : i + 1]), nt_type="smoothgrad", nt_samples=512, stdevs=float(s), target=int(t), abs=False
                )
            )
            for i, (s, t) in enumerate(zip(sigma, targets))
        ]
    )
    r = per_image_r(smooth.raw, theirs)
    assert (r >= 0.95).all(), r
    vargrad = VarGrad(model, preprocess=preprocess, nt_samples=8, seed=1)(images, targets)
    assert (vargrad >= -1e-6).all() and vargrad.shape == images.shape[:3]


@pytest.mark.parametrize("kind,method", [("tanh", "gausslegendre"), ("relu", "riemann_middle")])
def test_integrated_gradients_is_complete_within_one_percent_at_256_steps(lenet, kind, method):
    """Gauss-Legendre (captum's default) is near exact on a smooth network (classic LeNet-5: tanh, average pooling);
    on a piecewise-linear one (ReLU, max pooling) its nodes miss kinks and the midpoint rule is the one within 1%."""
    model, preprocess, _, images, targets = lenet
    if kind == "tanh":
        model = lenet5_classic(InputSpec((28, 28), 1, 10), rngs=nnx.Rngs(1))
    ig = IntegratedGradients(model, preprocess=preprocess, n_steps=256, internal_batch_size=256, method=method)
    ig(images, targets)
    assert max(ig.completeness["relative_gap"]) < 0.01, ig.completeness
    coarse = IntegratedGradients(model, preprocess=preprocess, n_steps=2, method="riemann_left")
    coarse(images, targets)
    assert max(coarse.completeness["relative_gap"]) > 0.01  # the check can fail: two left Riemann steps are far off


def peak_bytes(ig: IntegratedGradients, images: np.ndarray, targets: np.ndarray) -> int:
    """XLA's buffer assignment for the compiled attribution: arguments, outputs and the peak of temporaries.
    jax's CPU devices keep no allocator statistics (`memory_stats()` is None), so this is the honest measure here."""
    images, targets, baselines, key = ig.prepare(images, targets)
    stats = ig._jitted.lower(ig.probe.state, images, targets, baselines, key).compile().memory_analysis()
    return stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes


def test_integrated_gradients_memory_does_not_grow_with_steps(lenet):
    model, preprocess, _, images, targets = lenet
    few = peak_bytes(IntegratedGradients(model, preprocess=preprocess, n_steps=32, internal_batch_size=32), images, targets)
    many = peak_bytes(IntegratedGradients(model, preprocess=preprocess, n_steps=512, internal_batch_size=32), images, targets)
    assert abs(many - few) <= 0.1 * few, (few, many)
    at_once = peak_bytes(
        IntegratedGradients(model, preprocess=preprocess, n_steps=512, internal_batch_size=2048), images, targets
    )
    assert at_once > 3 * many  # the measure sees memory: every step in one batch (captum's default) is much larger


def test_gradient_shap_with_a_black_baseline_converges_to_integrated_gradients(lenet):
    model, preprocess, _, images, targets = lenet
    ig = IntegratedGradients(model, preprocess=preprocess)(images, targets)
    shap = GradientShap(model, preprocess=preprocess, baseline="black", n_samples=512, seed=3)(images, targets)
    assert (per_image_r(shap, ig) >= 0.95).all()  # E over a uniform alpha of (x - 0) grad f(alpha x) is IG's integral


@pytest.fixture(scope="module")
def resnet18():
    """An imported torchvision ResNet-18 (random weights and batch-norm statistics) at 64 px, and the torch model."""
    pytest.importorskip("torchvision")
    from jaxdl.pretrained import import_model, source_metadata
    from jaxdl.pretrained.verify import random_torch_model

    source = "torchvision:resnet18"
    torch_model = random_torch_model(source)
    module, card = import_model(source, torch_model=torch_model, input_size=64)
    meta = source_metadata(source)
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    wrapped = torch.nn.Sequential()
    wrapped.forward = lambda x: torch_model((x - mean) / std)  # images in [0, 1], as jaxdl explains them
    preprocess = Preprocess((64, 64), tuple(meta["mean"]), tuple(meta["std"]))
    images = np.random.default_rng(1).uniform(size=(2, 64, 64, 3)).astype(np.float32)
    return module, preprocess, wrapped, images, np.array([1, 500])


def test_imported_resnet18_attributions_equal_captums(resnet18):
    module, preprocess, torch_model, images, targets = resnet18
    x = nchw(images).requires_grad_()
    ig = IntegratedGradients(module, preprocess=preprocess, n_steps=16, internal_batch_size=16)
    ig(images, targets)
    theirs = captum_ig(torch_model, images, targets, np.zeros_like(images), 16, "gausslegendre")
    assert (per_image_r(ig.raw, theirs) >= 0.999).all()
    saliency = Saliency(module, preprocess=preprocess)
    saliency(images, targets)
    theirs = nhwc(captum_attr.Saliency(torch_model).attribute(x, target=targets.tolist(), abs=False))
    assert (per_image_r(saliency.raw, theirs) >= 0.999).all()
    ixg = InputXGradient(module, preprocess=preprocess)
    ixg(images, targets)
    assert (per_image_r(ixg.raw, images * theirs) >= 0.999).all()  # captum's InputXGradient is x * the same gradient
