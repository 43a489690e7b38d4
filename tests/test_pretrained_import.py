"""Imported torchvision / timm networks compute what PyTorch computes, on real photographs.

Every architecture is a randomly initialised torch model (no download) whose batch norms get
random running statistics and affine parameters, so that eps, statistics and layouts all
matter; its logits on scikit-image's photographs, fitted to the model's input with the
source's own evaluation transform, must agree with the imported zoo model's to 1e-4 of the
largest logit, with the same top-5 classes.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

from jaxdl.pretrained import import_model, source_metadata  # noqa: E402
from jaxdl.pretrained.verify import agreement, photos, randomise_batchnorm  # noqa: E402

# (library, architecture, torch constructor options): every importable architecture.
TORCHVISION = [(name, {}) for name in ("alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
                                        "resnet18", "resnet34", "resnet50", "squeezenet1_0", "squeezenet1_1", "vit_b_16")]
TORCHVISION += [("googlenet", {"aux_logits": False, "transform_input": True, "init_weights": True}),  # as its weights
                ("inception_v3", {"init_weights": True})]  # aux head present (not imported), no transform_input
CASES = [("torchvision", name, options) for name, options in TORCHVISION]
CASES += [("timm", "resnet50.a1_in1k", {}), ("timm", "vit_base_patch16_224.augreg2_in21k_ft_in1k", {})]


def torch_model(lib: str, name: str, options: dict):
    """A randomly initialised torch model (no download) with random batch-norm statistics."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False) if lib == "timm" else torchvision.models.get_model(name, weights=None,
                                                                                                        **options)
    with torch.no_grad():
        for layer in model.modules():  # torchvision's ViT starts with a zero head: every logit 0
            if isinstance(layer, torch.nn.Linear) and not layer.weight.any():
                layer.weight.normal_(0, 0.02)
    return randomise_batchnorm(model)


def assert_agrees(result: dict) -> None:
    assert result["max_abs_logit"] > 0 and result["top5_identical"], result
    assert result["relative_gap"] <= 1e-4, result


@pytest.mark.parametrize("lib,name,options", CASES, ids=[f"{lib}:{name.split('.')[0]}" for lib, name, _ in CASES])
def test_imported_network_matches_pytorch_on_photos(lib, name, options):
    model = torch_model(lib, name, options)
    module, card = import_model(f"{lib}:{name}", torch_model=model)
    meta = source_metadata(f"{lib}:{name}")
    images = photos(card)
    assert images.shape == (2, meta["crop"], meta["crop"], 3)
    assert card.class_names == tuple(meta["class_names"]) and len(card.class_names) == 1000
    assert_agrees(agreement(module, card, model, meta["mean"], meta["std"], images))
