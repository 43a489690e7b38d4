"""Defaults that follow the model: `data.image_size=auto`, `data.channels=auto`, size-suited augmentation.

- image size: a pretrained source's (`trainer.init_from`, e.g. an imported torchvision network: 224), else
  the model's `input_size` (28 for LeNet-5, 224 for the `*_imagenet` configs), else `FALLBACK_SIZE`;
- channels: a pretrained source's (its first layer fixes them), else what the images are (grey -> 1);
- augmentation `auto`: ImageNet-style random-resized crops (8-100 % of the area) and flips only from
  `LARGE_IMAGE` px on; a 28-px thumbnail keeps every pixel, like the array data sets' runs.
"""

from __future__ import annotations

from typing import Any, Mapping

from omegaconf import DictConfig, open_dict

from jaxdl.errors import ConfigError

AUTO = "auto"
FALLBACK_SIZE = 224  # a model without a fixed input size, on images of any size
LARGE_IMAGE = 64  # from this side length on, `auto` augmentation is ImageNet's
IMAGENET_CROP_SCALE = (0.08, 1.0)


def augment_settings(augment: Mapping[str, Any] | None, size: int) -> dict[str, Any]:
    """`augment` with a crop scale or flip set to `auto` resolved for images of `size` px (absent keys stay absent)."""
    out = dict(augment or {})
    large = int(size) >= LARGE_IMAGE
    if out.get("crop_scale") == AUTO:
        out["crop_scale"] = IMAGENET_CROP_SCALE if large else None
    if out.get("hflip") == AUTO:
        out["hflip"] = large
    return out


def image_size(value: Any) -> int:
    """`data.image_size` as a whole number; `auto` outside a training config (no model to follow) is `FALLBACK_SIZE`."""
    if value == AUTO or value is None:
        return FALLBACK_SIZE
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"data.image_size must be a positive whole number or auto, got {value!r}")
    return value


def follow_model(cfg: DictConfig, source_spec: Any | None = None) -> None:
    """Resolve `data.image_size` and `data.channels` = auto in `cfg` from the model (and a pretrained source's
    input spec), so `config.yaml` records what ran. Idempotent; a data set without these keys is left alone."""
    data = cfg.data
    with open_dict(data):
        if data.get("image_size") == AUTO:
            size = source_spec.size[0] if source_spec is not None else cfg.model.get("input_size")
            size = size[0] if isinstance(size, (list, tuple)) or hasattr(size, "__len__") else size
            data.image_size = int(size) if size else FALLBACK_SIZE
        if data.get("channels") == AUTO and source_spec is not None:
            data.channels = int(source_spec.channels)
