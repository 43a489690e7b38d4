"""Imported torchvision / timm networks compute what PyTorch computes, on real photographs.

Every architecture is a randomly initialised torch model (no download) whose batch norms get
random running statistics and affine parameters, so that eps, statistics and layouts all
matter; its logits on scikit-image's photographs, fitted to the model's input with the
source's own evaluation transform, must agree with the imported zoo model's to 1e-4 of the
largest logit, with the same top-5 classes.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from jaxdl.artifacts import LoadedModel  # noqa: E402
from jaxdl.data.photos import fit_photo  # noqa: E402
from jaxdl.pretrained import import_model, torch_io  # noqa: E402

PHOTOS = ("astronaut", "chelsea")

# (library, architecture, torch constructor options): every importable architecture.
TORCHVISION = [(name, {}) for name in ("alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
                                        "resnet18", "resnet34", "resnet50", "squeezenet1_0", "squeezenet1_1", "vit_b_16")]
TORCHVISION += [("googlenet", {"aux_logits": False, "transform_input": True, "init_weights": True}),  # as its weights
                ("inception_v3", {"init_weights": True})]  # aux head present (not imported), no transform_input
CASES = [("torchvision", name, options) for name, options in TORCHVISION]
CASES += [("timm", "resnet50.a1_in1k", {}), ("timm", "vit_base_patch16_224.augreg2_in21k_ft_in1k", {})]


def torch_model(lib: str, name: str, options: dict):
    torch.manual_seed(0)
    if lib == "timm":
        model = timm.create_model(name, pretrained=False)
    else:
        model = torchvision.models.get_model(name, weights=None, **options)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def source_metadata(lib: str, name: str) -> dict:
    return torch_io.timm_metadata(name) if lib == "timm" else torch_io.torchvision_metadata(name, None)


def torch_logits(model, images: np.ndarray, meta: dict) -> np.ndarray:
    """PyTorch's logits of uint8 (N, H, W, 3) images, normalised as the source's transform does."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x).numpy()


def photos(preprocess, channels: int = 3) -> np.ndarray:
    return np.stack([fit_photo(Image.fromarray(getattr(data, name)()), preprocess, channels) for name in PHOTOS])


def assert_same_logits(ours: np.ndarray, theirs: np.ndarray) -> None:
    scale = np.abs(theirs).max()
    assert scale > 0
    assert np.abs(ours - theirs).max() <= 1e-4 * scale, (np.abs(ours - theirs).max(), scale)
    np.testing.assert_array_equal(np.argsort(-ours, axis=1)[:, :5], np.argsort(-theirs, axis=1)[:, :5])


@pytest.mark.parametrize("lib,name,options", CASES, ids=[f"{lib}:{name.split('.')[0]}" for lib, name, _ in CASES])
def test_imported_network_matches_pytorch_on_photos(lib, name, options):
    model = torch_model(lib, name, options)
    module, card = import_model(f"{lib}:{name}", torch_model=model)
    meta = source_metadata(lib, name)
    images = photos(card.preprocess)
    assert images.shape[1:] == (meta["crop"], meta["crop"], 3)
    assert card.class_names == tuple(meta["class_names"]) and len(card.class_names) == 1000
    assert_same_logits(np.asarray(LoadedModel(module, card, None)(images)), torch_logits(model, images, meta))
