"""Pretrained networks: torchvision / timm weights imported into the jaxdl zoo as self-contained artifacts.

    module, card = import_model("torchvision:resnet50", weights="IMAGENET1K_V2")
    jaxdl.artifacts.save_model("models/resnet50", module, card)   # jaxdl-import does both

The network becomes the matching `*_imagenet` zoo model; its card keeps the source's class names
and evaluation preprocessing (shorter side, centre crop, mean/std, interpolation), so the saved
artifact predicts, explains and fine-tunes without torch. Only importing needs the `torch` extra.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np
from flax import nnx
from omegaconf import OmegaConf

from jaxdl import models
from jaxdl.artifacts import ModelCard
from jaxdl.config import CONF_DIR
from jaxdl.data.pipeline import Preprocess
from jaxdl.errors import CheckpointError, ConfigError
from jaxdl.models.registry import build_unfilled
from jaxdl.pretrained.mapping import load_state_dict
from jaxdl.pretrained.sources import Architecture, known_sources, parse_source

__all__ = ["import_model", "known_sources", "source_metadata", "source_model", "zoo_config"]


def zoo_config(arch: Architecture, input_size: int | None) -> dict[str, Any]:
    """The zoo entry's config (conf/model/<zoo>.yaml) with the architecture's options and the input size."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / f"{arch.zoo}.yaml"), resolve=True)
    cfg.update(arch.options)
    if input_size is not None:
        cfg["input_size"] = int(input_size)
    return cfg


def fold_transform_input(
    mean: Sequence[float], std: Sequence[float], source_mean: Sequence[float], source_std: Sequence[float]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean/std that give directly what torchvision's `transform_input` makes of (x - mean) / std.

    GoogLeNet and Inception-v3 weights were trained on (x - 0.5) / 0.5; their torch models turn
    ImageNet-normalised input into that with x * s / 0.5 + (m - 0.5) / 0.5 per channel, an affine
    map that folds into the normalisation: the zoo model stays the plain network.
    """
    a = np.asarray(source_std) / 0.5
    b = (np.asarray(source_mean) - 0.5) / 0.5
    new_std = np.asarray(std) / a
    return tuple(map(float, np.asarray(mean) - b * new_std)), tuple(map(float, new_std))


def source_metadata(source: str, weights: str | None = None) -> dict[str, Any]:
    """The source's evaluation transform (crop, resize, mean, std, interpolation), class names and weights name."""
    from jaxdl.pretrained import torch_io

    lib, name, _ = parse_source(source)
    return torch_io.torchvision_metadata(name, weights) if lib == "torchvision" else torch_io.timm_metadata(name)


def source_model(source: str, weights: str | None = None) -> Any:
    """The torch model of `source` from its library (downloading `weights` through the library's cache)."""
    from jaxdl.pretrained import torch_io

    lib, name, _ = parse_source(source)
    return (torch_io.torchvision_model if lib == "torchvision" else torch_io.timm_model)(name, weights)


def _state_dict(source: str, weights: str | None, file: str | None, torch_model: Any) -> tuple[dict, Any]:
    from jaxdl.pretrained import torch_io

    if torch_model is None and not file:
        torch_model = source_model(source, weights)
    if torch_model is not None:
        return torch_io.numpy_state_dict(torch_model.state_dict()), torch_model
    return torch_io.read_state_dict(file), None


def _shape(state_dict: Mapping[str, np.ndarray], key: str, source: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise CheckpointError(
            f"the state dict does not fit {source}: missing key {key}; its first keys: {', '.join(list(state_dict)[:3])}"
        )
    return tuple(state_dict[key].shape)


def import_model(
    source: str,
    *,
    weights: str | None = None,
    file: str | None = None,
    torch_model: Any = None,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    transform_input: bool | None = None,
) -> tuple[nnx.Module, ModelCard]:
    """The zoo model holding `source`'s weights, and its card.

    The weights come from `torch_model` (a torch module), else `file` (.pth / .pt / .safetensors),
    else the library itself (`weights`: a torchvision weights name, default DEFAULT; `none` for
    random weights). The number of classes and input channels are read off the state dict; class
    names and preprocessing come from the source's metadata unless given.
    """
    _, _, arch = parse_source(source)
    in_memory = torch_model is not None
    state_dict, torch_model = _state_dict(source, weights, file, torch_model)
    meta = source_metadata(source, weights)
    num_classes = _shape(state_dict, arch.head, source)[0]
    channels = _shape(state_dict, arch.stem, source)[1]
    cfg = zoo_config(arch, input_size)
    size = int(cfg.get("input_size") or meta["crop"])
    spec = models.InputSpec((size, size), channels, num_classes)
    module = build_unfilled(cfg, spec)
    module.eval()
    load_state_dict(
        module,
        state_dict,
        arch.names(module),
        ignore=arch.ignore,
        adjust=arch.adjust(module) if arch.adjust else None,
        what=f"{source} (jaxdl {arch.zoo}, {num_classes} classes)",
    )
    card = ModelCard(
        cfg,
        spec,
        _preprocess(arch, meta, spec, torch_model, mean, std, transform_input),
        _class_names(meta, class_names, num_classes),
        "uint8",
        "float32",
        {
            "source": source,
            "weights": _weights_note(meta, weights, file, in_memory),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "importer": "jaxdl-import",
        },
    )
    return module, card


def _preprocess(
    arch: Architecture,
    meta: Mapping[str, Any],
    spec: models.InputSpec,
    torch_model: Any,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    transform_input: bool | None,
) -> Preprocess:
    """The source's evaluation transform at the model's size, `transform_input` folded into mean/std."""
    same_channels = spec.channels == len(meta["mean"])
    mean = tuple(mean or (meta["mean"] if same_channels else (0.5,) * spec.channels))
    std = tuple(std or (meta["std"] if same_channels else (0.5,) * spec.channels))
    if transform_input is None:
        transform_input = getattr(torch_model, "transform_input", arch.transform_input)
    if transform_input:
        mean, std = fold_transform_input(mean, std, meta["mean"], meta["std"])
    size = spec.size[0]
    return Preprocess(
        spec.size,
        mean,
        std,
        resize="center_crop",
        resize_shorter=int(round(meta["resize"] * size / meta["crop"])),
        interpolation=str(meta["interpolation"]),
    )


def _class_names(meta: Mapping[str, Any], given: Sequence[str] | None, num_classes: int) -> tuple[str, ...]:
    names = tuple(map(str, given or (meta["class_names"] if len(meta["class_names"]) == num_classes else range(num_classes))))
    if len(names) != num_classes:
        raise ConfigError(f"class_names has {len(names)} names, the network {num_classes} classes")
    return names


def _weights_note(meta: Mapping[str, Any], weights: str | None, file: str | None, in_memory: bool) -> str:
    """What the card's provenance says the weights were."""
    if file:
        return f"file {file}"
    if str(weights).lower() == "none":
        return "random (weights=none)"
    return "a torch module passed in memory" if in_memory and weights is None else str(meta["weights"])
