"""Everything that needs PyTorch, torchvision or timm (the `torch` extra): models, state dicts, metadata.

Imported only by `jaxdl-import`; a missing library is a one-line error naming the extra.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from jaxdl.errors import CheckpointError, ConfigError

EXTRA = "pip install -e '.[torch]' (torch, torchvision, timm, safetensors)"


def require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"importing networks needs {module}: {EXTRA}") from err


def numpy_state_dict(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A torch state dict (tensors) as float32/int numpy arrays, `module.` prefixes (DataParallel) removed."""
    out = {}
    for key, value in state_dict.items():
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        out[key.removeprefix("module.")] = array
    return out


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A `.safetensors` file (no torch needed) or a `.pth` / `.pt` file: a state dict, or a checkpoint holding one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"file={path} does not exist")
    if path.suffix == ".safetensors":
        safetensors = require("safetensors.numpy")
        try:
            return numpy_state_dict(safetensors.load_file(str(path)))
        except Exception as err:  # noqa: BLE001 - SafetensorError, and header JSON / dtype errors
            raise CheckpointError(f"file={path} is not a readable .safetensors file ({type(err).__name__}: {err})") from err
    torch = require("torch")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle and zip errors of every kind
        raise CheckpointError(f"file={path} is not a PyTorch state dict ({type(err).__name__}: {err})") from err
    if hasattr(data, "state_dict"):
        data = data.state_dict()
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
    if not isinstance(data, Mapping):
        raise CheckpointError(f"file={path} holds a {type(data).__name__}, not a state dict")
    return numpy_state_dict(data)


def torchvision_weights(name: str, weights: str | None) -> Any:
    """The torchvision weights enum member `weights` (or DEFAULT) of architecture `name`."""
    models = require("torchvision.models")
    enum = models.get_model_weights(name)
    key = weights or "DEFAULT"
    if key not in enum.__members__:
        raise ConfigError(f"torchvision {name} has no weights '{key}'; known: {', '.join(enum.__members__)}")
    return enum[key]


def torchvision_model(name: str, weights: str | None) -> Any:
    """torchvision's `name` with `weights` downloaded through its own cache, or random (`weights=none`)."""
    models = require("torchvision.models")
    if weights is not None and str(weights).lower() == "none":  # no weights= given means DEFAULT, not random
        return models.get_model(name, weights=None)
    return models.get_model(name, weights=torchvision_weights(name, weights))


def torchvision_metadata(name: str, weights: str | None) -> dict[str, Any]:
    """The preprocessing and class names torchvision ships with the weights (no download needed)."""
    chosen = torchvision_weights(name, None if str(weights).lower() == "none" else weights)
    t = chosen.transforms()
    return {
        "crop": int(t.crop_size[0]),
        "resize": int(t.resize_size[0]),
        "mean": tuple(t.mean),
        "std": tuple(t.std),
        "interpolation": t.interpolation.value,
        "class_names": tuple(chosen.meta["categories"]),
        "weights": str(chosen).rsplit(".", 1)[-1],
    }


def timm_model(name: str, weights: str | None) -> Any:
    """timm's `name`, pretrained through timm's hub cache unless `weights=none`."""
    timm = require("timm")
    return timm.create_model(name, pretrained=str(weights).lower() != "none")


def timm_metadata(name: str) -> dict[str, Any]:
    """timm's pretrained config: input size, crop fraction, interpolation, mean/std; ImageNet-1k class names."""
    timm = require("timm")
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise ConfigError(f"timm has no pretrained config for '{name}'")
    crop = int(cfg.input_size[-1])
    names = ()
    if cfg.num_classes == 1000:
        from timm.data import ImageNetInfo

        names = tuple(ImageNetInfo().label_descriptions())
    return {
        "crop": crop,
        "resize": int(math.floor(crop / cfg.crop_pct)),
        "mean": tuple(cfg.mean),
        "std": tuple(cfg.std),
        "interpolation": cfg.interpolation,
        "class_names": names,
        "weights": name.partition(".")[2] or "default",
    }
