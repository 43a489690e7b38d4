"""Imported torchvision / timm networks compute what PyTorch computes, on real photographs.

Every architecture is a randomly initialised torch model (no download) whose batch norms get
random running statistics and affine parameters, so that eps, statistics and layouts all
matter; its logits on scikit-image's photographs, fitted to the model's input with the
source's own evaluation transform, must agree with the imported zoo model's to 1e-4 of the
largest logit, with the same top-5 classes.

The suite checks one network per converter path (a deeper VGG or ResNet runs the same code as the
shallow one, at 3-8 s of CPU each); `python experiments/pretrained_agreement.py` checks every source
(RESULTS, "Every source").
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("timm")

from jaxdl.pretrained import import_model, source_metadata  # noqa: E402
from jaxdl.pretrained.verify import agreement, every_source, photos, random_torch_model  # noqa: E402

# same layers as vgg11 / vgg11_bn / resnet18, only more of them
SAME_PATH_AS_A_CHECKED_ONE = {"vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet34"}
SOURCES = [s for s in every_source() if s.split(":")[1] not in SAME_PATH_AS_A_CHECKED_ONE]


def assert_agrees(result: dict) -> None:
    assert result["max_abs_logit"] > 0 and result["top5_identical"], result
    assert result["relative_gap"] <= 1e-4, result


@pytest.mark.parametrize("source", SOURCES, ids=[source.split(".")[0] for source in SOURCES])
def test_imported_network_matches_pytorch_on_photos(source):
    model = random_torch_model(source)
    module, card = import_model(source, torch_model=model)
    meta = source_metadata(source)
    images = photos(card)
    assert images.shape == (2, meta["crop"], meta["crop"], 3)
    assert card.class_names == tuple(meta["class_names"]) and len(card.class_names) == 1000
    assert_agrees(agreement(module, card, model, meta["mean"], meta["std"], images))
