"""Key names of torchvision's `nn.Sequential` families: AlexNet, VGG (with and without BN) and SqueezeNet.

torchvision numbers every module of `features` (conv, batch norm, ReLU, pool); the zoo lists
a conv with its norm and ReLU as one `ConvBN`, so indices are recounted here. Their dense
heads flatten (C, H, W) maps, the zoo (H, W, C): the first dense kernel's rows are reordered.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from flax import nnx

from jaxdl.models.layers import ConvBN


def feature_names(layers: Sequence[nnx.Module], jax: str = "features", torch: str = "features") -> dict[str, str]:
    """Zoo `features.k` -> torch `features.t`, counting the torch modules each zoo layer stands for."""
    names, t = {}, 0
    for k, layer in enumerate(layers):
        if isinstance(layer, ConvBN):
            names[f"{jax}.{k}.conv"] = f"{torch}.{t}"
            t += 1
            if layer.norm is not None:
                names[f"{jax}.{k}.norm"] = f"{torch}.{t}"
                t += 1
            t += int(layer.relu)
        else:  # a pool, or a Fire module (one torch module with its own names)
            names.update(
                {
                    f"{jax}.{k}.{part}.conv": f"{torch}.{t}.{part}"
                    for part in ("squeeze", "expand1x1", "expand3x3")
                    if hasattr(layer, part)
                }
            )
            t += 1
    return names


def vgg_names(model: nnx.Module) -> dict[str, str]:
    """VGG: classifier Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear."""
    return {**feature_names(model.features), **{f"classifier.layers.{i}": f"classifier.{3 * i}" for i in range(3)}}


def alexnet_names(model: nnx.Module) -> dict[str, str]:
    """AlexNet: classifier Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear."""
    return {**feature_names(model.features), **{f"classifier.layers.{i}": f"classifier.{t}" for i, t in enumerate((1, 4, 6))}}


def squeezenet_names(model: nnx.Module) -> dict[str, str]:
    """SqueezeNet: classifier Dropout, Conv, ReLU, pool."""
    return {**feature_names(model.features), "classifier.conv": "classifier.1"}


def chw_to_hwc_rows(channels: int):
    """The adjust hook reordering the first dense kernel from torch's (C, H, W) flatten order to (H, W, C)."""

    def adjust(name: str, array: np.ndarray) -> np.ndarray:
        if name != "classifier.layers.0.kernel" or array.shape[0] % channels:
            return array
        cells = array.shape[0] // channels
        side = int(round(cells**0.5))
        return array.reshape(channels, side, side, -1).transpose(1, 2, 0, 3).reshape(array.shape)

    return adjust
