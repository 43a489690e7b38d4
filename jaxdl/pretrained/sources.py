"""The catalogue of importable networks: which zoo model each torchvision / timm architecture becomes."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from flax import nnx

from jaxdl.errors import ConfigError
from jaxdl.pretrained import inception, resnet, sequential, vit
from jaxdl.pretrained.mapping import Adjust


@dataclasses.dataclass(frozen=True)
class Architecture:
    """How one torch architecture maps onto a zoo model."""

    zoo: str  # conf/model/<zoo>.yaml
    names: Callable[[nnx.Module], dict[str, str]]  # zoo module path -> torch prefix (see mapping.py)
    head: str  # torch key of the classifier weight: (classes, ...)
    stem: str  # torch key of the first conv weight: (out, channels, kh, kw)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # zoo options beside the YAML's
    ignore: tuple[str, ...] = ()  # torch key prefixes with no zoo counterpart (auxiliary heads)
    adjust: Callable[[nnx.Module], Adjust] | None = None
    transform_input: bool = False  # torchvision's pretrained weights re-normalise inside the model


def _last_conv_width(model: nnx.Module) -> int:
    return [layer for layer in model.features if hasattr(layer, "conv")][-1].conv.out_features


def _rows_fix(model: nnx.Module) -> Adjust:
    return sequential.chw_to_hwc_rows(_last_conv_width(model))


def _vgg(depth: int, bn: bool) -> Architecture:
    return Architecture(
        f"vgg{depth}_imagenet",
        sequential.vgg_names,
        "classifier.6.weight",
        "features.0.weight",
        {"batch_norm": bn},
        adjust=_rows_fix,
    )


_RESNET = dict(names=resnet.torch_names, head="fc.weight", stem="conv1.weight")

TORCHVISION: dict[str, Architecture] = {
    "alexnet": Architecture(
        "alexnet_imagenet", sequential.alexnet_names, "classifier.6.weight", "features.0.weight", adjust=_rows_fix
    ),
    **{f"vgg{d}{'_bn' if bn else ''}": _vgg(d, bn) for d in (11, 16, 19) for bn in (False, True)},
    **{f"resnet{d}": Architecture(f"resnet{d}_imagenet", **_RESNET) for d in (18, 34, 50)},
    **{
        f"squeezenet{v}": Architecture(
            f"squeezenet{v}_imagenet", sequential.squeezenet_names, "classifier.1.weight", "features.0.weight"
        )
        for v in ("1_0", "1_1")
    },
    "googlenet": Architecture(
        "googlenet_imagenet",
        inception.googlenet_names,
        "fc.weight",
        "conv1.conv.weight",
        ignore=inception.IGNORED,
        transform_input=True,
    ),
    "inception_v3": Architecture(
        "inception_v3_imagenet",
        inception.inception_v3_names,
        "fc.weight",
        "Conv2d_1a_3x3.conv.weight",
        ignore=inception.IGNORED,
        transform_input=True,
    ),
    "vit_b_16": Architecture("vit_imagenet", vit.torchvision_names, "heads.head.weight", "conv_proj.weight"),
}

# timm names are `<architecture>.<pretrained tag>`; any tag of these architectures imports.
TIMM: dict[str, Architecture] = {
    "resnet50": Architecture("resnet50_imagenet", **_RESNET),
    "vit_base_patch16_224": Architecture("vit_imagenet", vit.timm_names, "head.weight", "patch_embed.proj.weight"),
}

LIBRARIES = {"torchvision": TORCHVISION, "timm": TIMM}


def known_sources() -> list[str]:
    return [f"{lib}:{name}" for lib, table in LIBRARIES.items() for name in table]


def parse_source(source: str) -> tuple[str, str, Architecture]:
    """('torchvision', 'resnet50', its Architecture) of 'torchvision:resnet50'; timm tags kept ('resnet50.a1_in1k')."""
    lib, _, name = str(source).partition(":")
    table = LIBRARIES.get(lib, {})
    arch = table.get(name.split(".", 1)[0] if lib == "timm" else name)
    if arch is None:
        raise ConfigError(
            f"unknown source '{source}'; known: {', '.join(known_sources())} "
            f"(timm names may carry a pretrained tag, e.g. timm:resnet50.a1_in1k)"
        )
    return lib, name, arch
