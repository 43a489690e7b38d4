"""Grad-CAM of an imported network equals `pytorch-grad-cam`'s on the torch original (same layer, target, photo).

The ViT goes through the explain app's own path with no layer and no reshape given: its default layer and
token grid must be the ones pytorch-grad-cam's ViT tutorial writes by hand."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")

from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from jaxdl.pretrained import import_model, source_metadata  # noqa: E402
from jaxdl.pretrained.verify import photos, random_torch_model, torch_logits  # noqa: E402
from xai.explain.cam import GradCAM  # noqa: E402
from xai.explain.methods import build_method, default_target_layer  # noqa: E402


def torch_token_grid(tokens):
    """The package's documented ViT reshape: drop the class token, (B, 196, C) -> (B, C, 14, 14)."""
    return tokens[:, 1:].reshape(tokens.shape[0], 14, 14, tokens.shape[-1]).permute(0, 3, 1, 2)


CASES = {  # source: (jaxdl layer, the same torch module, token model)
    "torchvision:resnet50": ("stages.3.2", lambda m: m.layer4[-1], False),
    "torchvision:vgg16": ("features.16", lambda m: m.features[29], False),  # the last conv's ReLU
    "torchvision:vit_b_16": (None, lambda m: m.encoder.layers[-1].ln_1, True),  # None: the app's default
}


@pytest.mark.parametrize("source", CASES)
def test_gradcam_of_an_import_equals_pytorch_grad_cam(source):
    layer, torch_layer, tokens = CASES[source]
    model = random_torch_model(source)
    module, card = import_model(source, torch_model=model)
    meta = source_metadata(source)
    images = photos(card, ("astronaut", "chelsea"))
    targets = torch_logits(model, images, meta["mean"], meta["std"]).argmax(1)
    if tokens:
        assert default_target_layer(module, card.preprocess, images) == "blocks.11.norm1"
        cam = build_method("gradcam", module, card.preprocess, {}, default_target_layer(module, card.preprocess, images))
    else:
        cam = GradCAM(module, layer, preprocess=card.preprocess)
    ours = np.asarray(cam(images, targets))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(1, 3, 1, 1)
    cam = pytorch_grad_cam.GradCAM(
        model=model, target_layers=[torch_layer(model)], reshape_transform=torch_token_grid if tokens else None
    )
    theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    assert ours.shape == theirs.shape == (2, 224, 224)
    for a, b in zip(ours, theirs):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.999
