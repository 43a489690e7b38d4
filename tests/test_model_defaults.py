"""`data.image_size=auto`, `data.channels=auto` and size-suited augmentation: `data=folder` follows the model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from jaxdl.data import auto_size, load_dataset
from jaxdl.data.folder_tools import write_folder
from jaxdl.trainer import build_experiment
from tests.conftest import compose_config

SUBSET = ["data.classes=[0,2,4,6]", "data.label_fraction=0.02"]


@pytest.fixture
def fashion_png(fashion_dir, tmp_path_factory):
    """A small Fashion-MNIST subset as the PNG tree `jaxdl-data write-folder` writes."""
    tree = tmp_path_factory.mktemp("fashion_png")
    write_folder(load_dataset(compose_config("data=fashion_mnist", *SUBSET).data), tree)
    return tree


def test_plain_folder_command_composes_the_arrays_run(fashion_png):
    """`jaxdl-train data=folder data.root=fashion_png model=lenet5`: the same input, preprocessing and augmentation
    as `data=fashion_mnist model=lenet5`, with no data.image_size or data.augment overrides."""
    arrays = build_experiment(compose_config("data=fashion_mnist", "model=lenet5", *SUBSET))
    folder = build_experiment(compose_config("data=folder", f"data.root={fashion_png}", "model=lenet5"))
    assert folder.cfg.data.image_size == 28  # resolved, and so recorded in config.yaml
    assert folder.spec == arrays.spec
    assert folder.preprocess == arrays.preprocess  # size, normalisation, no flips, no crops
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(folder.dataset, split).images, getattr(arrays.dataset, split).images)
        np.testing.assert_array_equal(getattr(folder.dataset, split).labels, getattr(arrays.dataset, split).labels)
    streamed = load_dataset(
        compose_config("data=folder", f"data.root={fashion_png}", "data.image_size=28", "data.stream=true").data
    )
    assert streamed.train.decoder.crop_scale is None and streamed.train.decoder.hflip is False  # no 8 % crops of 28 px


def test_imagenet_sized_models_and_pretrained_sources_get_224_and_imagenet_augmentation():
    cfg = compose_config("data=folder", "data.root=unused", "model=resnet18_imagenet")
    auto_size.follow_model(cfg)
    assert cfg.data.image_size == 224 and cfg.data.channels == "auto"
    augment = auto_size.augment_settings(cfg.data.augment, cfg.data.image_size)
    assert augment["crop_scale"] == (0.08, 1.0) and augment["hflip"] is True
    imported = SimpleNamespace(size=(224, 224), channels=3)  # an imported torchvision network's input spec
    cfg = compose_config("data=folder", "data.root=unused", "model=lenet5")
    auto_size.follow_model(cfg, imported)
    assert cfg.data.image_size == 224 and cfg.data.channels == 3
    explicit = compose_config("data=folder", "data.root=unused", "model=lenet5", "data.image_size=32", "data.channels=1")
    auto_size.follow_model(explicit, imported)
    assert explicit.data.image_size == 32 and explicit.data.channels == 1  # what the user says wins
