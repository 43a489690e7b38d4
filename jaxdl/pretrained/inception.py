"""torchvision's GoogLeNet and Inception-v3 key names for the zoo's `Concat`-of-branches modules.

Each torch Inception module names its branch convs (`branch3x3dbl_2`, `branch_pool`); the zoo
numbers branches and layers. The tables below list, per branch, the torch name of each layer
(None for a weightless pool; a nested list for a zoo `Concat` inside a branch, as Inception-E's
split 1x3 / 3x1 convs). Every torch `BasicConv2d` is a zoo `ConvBN` (`conv`, `bn` -> `conv`, `norm`).
"""

from __future__ import annotations

from typing import Sequence

from flax import nnx

GOOGLENET_MODULES = (
    "inception3a",
    "inception3b",
    None,
    "inception4a",
    "inception4b",
    "inception4c",
    "inception4d",
    "inception4e",
    None,
    "inception5a",
    "inception5b",
)
GOOGLENET_BRANCHES = (("branch1",), ("branch2.0", "branch2.1"), ("branch3.0", "branch3.1"), (None, "branch4.1"))
GOOGLENET_STEM = ("conv1", None, "conv2", "conv3", None)

INCEPTION_V3_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", None, "Conv2d_3b_1x1", "Conv2d_4a_3x3", None)
_A = (
    ("branch1x1",),
    ("branch5x5_1", "branch5x5_2"),
    ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
    (None, "branch_pool"),
)
_B = (("branch3x3",), ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"), (None,))
_C = (
    ("branch1x1",),
    ("branch7x7_1", "branch7x7_2", "branch7x7_3"),
    tuple(f"branch7x7dbl_{i}" for i in range(1, 6)),
    (None, "branch_pool"),
)
_D = (("branch3x3_1", "branch3x3_2"), tuple(f"branch7x7x3_{i}" for i in range(1, 5)), (None,))
_E = (
    ("branch1x1",),
    ("branch3x3_1", ("branch3x3_2a", "branch3x3_2b")),
    ("branch3x3dbl_1", "branch3x3dbl_2", ("branch3x3dbl_3a", "branch3x3dbl_3b")),
    (None, "branch_pool"),
)
INCEPTION_V3_MODULES = (
    ("Mixed_5b", _A),
    ("Mixed_5c", _A),
    ("Mixed_5d", _A),
    ("Mixed_6a", _B),
    ("Mixed_6b", _C),
    ("Mixed_6c", _C),
    ("Mixed_6d", _C),
    ("Mixed_6e", _C),
    ("Mixed_7a", _D),
    ("Mixed_7b", _E),
    ("Mixed_7c", _E),
)

# Auxiliary classifiers exist in torch only (training-time heads): not imported.
IGNORED = ("aux1", "aux2", "AuxLogits")


def basic_conv(jax: str, torch: str) -> dict[str, str]:
    return {f"{jax}.conv": f"{torch}.conv", f"{jax}.norm": f"{torch}.bn"}


def sequence(jax: str, torch_names: Sequence[str | None]) -> dict[str, str]:
    names = {}
    for i, torch in enumerate(torch_names):
        if torch is not None:
            names.update(basic_conv(f"{jax}.{i}", torch))
    return names


def concat(jax: str, torch: str, branches) -> dict[str, str]:
    names = {}
    for b, branch in enumerate(branches):
        for i, layer in enumerate(branch):
            if isinstance(layer, tuple):
                for s, sub in enumerate(layer):
                    names.update(basic_conv(f"{jax}.branches.{b}.{i}.branches.{s}.0", f"{torch}.{sub}"))
            elif layer is not None:
                names.update(basic_conv(f"{jax}.branches.{b}.{i}", f"{torch}.{layer}"))
    return names


def googlenet_names(model: nnx.Module) -> dict[str, str]:
    names = {**sequence("stem", GOOGLENET_STEM), "head": "fc"}
    for k, module in enumerate(GOOGLENET_MODULES):
        if module is not None:
            names.update(concat(f"inception.{k}", module, GOOGLENET_BRANCHES))
    return names


def inception_v3_names(model: nnx.Module) -> dict[str, str]:
    names = {**sequence("stem", INCEPTION_V3_STEM), "head": "fc"}
    for k, (module, branches) in enumerate(INCEPTION_V3_MODULES):
        names.update(concat(f"inception.{k}", module, branches))
    return names
