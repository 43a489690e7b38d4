"""Grad-CAM on a ViT without a reshape to write: pytorch-grad-cam's `reshape_transform` (drop the class
token, patch tokens onto their grid, channels last) and its recommended layer (the last block's `norm1`)
are chosen for any model whose tokens are image patches (the zoo's ViT, imported ViT-B/16)."""

from __future__ import annotations

from typing import Any

from flax import nnx

from jaxdl.models.transformer import PatchEmbedding
from xai.explain.cam import token_grid


def is_patch_model(model: nnx.Module) -> bool:
    """A class-token model over image patches (sequence transformers keep their (B, T, C) rows)."""
    return isinstance(getattr(model, "embed", None), PatchEmbedding) and hasattr(model, "blocks")


def patch_layer(model: nnx.Module) -> str:
    """The last block's first LayerNorm: its tokens still carry each patch's own evidence (the final `norm`
    feeds the head through the class token alone, so its patch gradients are zero)."""
    return f"blocks.{len(model.blocks) - 1}.norm1"


def cam_options(model: nnx.Module, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with the token-grid reshape added for a patch model unless one is given."""
    if "reshape" in options or not is_patch_model(model):
        return options
    return {**options, "reshape": token_grid(1)}
