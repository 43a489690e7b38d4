"""torchvision's and timm's ResNet key names (`conv1`, `layer1.0.bn2`, `downsample.0`, `fc`) for the zoo ResNet."""

from __future__ import annotations

from flax import nnx


def conv_bn(jax_path: str, conv: str, norm: str) -> dict[str, str]:
    """A zoo `ConvBN` from a torch conv and the batch norm after it."""
    return {f"{jax_path}.conv": conv, f"{jax_path}.norm": norm}


def torch_names(model: nnx.Module) -> dict[str, str]:
    names = {**conv_bn("stem.0", "conv1", "bn1"), "head": "fc"}
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            jax, torch = f"stages.{i}.{j}", f"layer{i + 1}.{j}"
            for k in (1, 2, 3):
                if hasattr(block, f"conv{k}"):
                    names.update(conv_bn(f"{jax}.conv{k}", f"{torch}.conv{k}", f"{torch}.bn{k}"))
            if block.shortcut is not None:
                names.update(conv_bn(f"{jax}.shortcut", f"{torch}.downsample.0", f"{torch}.downsample.1"))
    return names
