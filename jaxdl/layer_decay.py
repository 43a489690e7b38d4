"""Layer-wise learning-rate decay for fine-tuning (BEiT, Bao et al. 2021; timm's `layer_decay`).

Layers are numbered from the input: 0 for the stem / patch embedding, class token and position
embeddings, 1..L for the L residual blocks in order (ViT's `blocks`, ResNet's `stages` flattened), L + 1
for everything after them (final norm, head). A parameter of layer i learns at lr * decay^(L + 1 - i):
the head at the full rate, block i (0-based) at lr * decay^(L - i), the stem at lr * decay^(L + 1).
Scaling the optimiser's final update is exactly a per-layer learning rate, decoupled weight decay included.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from jaxdl.errors import ConfigError

STEM_KEYS = ("stem", "embed", "class_token", "position")


def _key(entry: Any) -> Any:
    return getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", entry)))


def _block_of(path: tuple) -> tuple | None:
    """('blocks', i) or ('stages', i, j) for a parameter inside a residual block, else None."""
    keys = [_key(e) for e in path]
    if keys[0] == "blocks":
        return tuple(keys[:2])
    if keys[0] == "stages":
        return tuple(keys[:3])
    return None


def layer_scales(params: Any, decay: float) -> Any:
    """The learning-rate factor of every parameter of `params` (a tree like it, of Python floats)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    blocks = sorted({b for path, _ in leaves if (b := _block_of(path)) is not None})
    if not blocks:
        raise ConfigError("optimizer.layer_decay needs a model of residual blocks (vit, seq_transformer, resnet18/34/50)")
    layer_of = {b: i + 1 for i, b in enumerate(blocks)}
    top = len(blocks) + 1

    def scale(path: tuple, _: Any) -> float:
        block = _block_of(path)
        layer = layer_of[block] if block else 0 if _key(path[0]) in STEM_KEYS else top
        return float(decay ** (top - layer))

    return jax.tree_util.tree_map_with_path(scale, params)


def scale_by_layer_decay(decay: float) -> optax.GradientTransformation:
    """Multiply each parameter's update by its `layer_scales` factor; stateless, so checkpoints are unchanged."""
    if not 0.0 < decay <= 1.0:
        raise ConfigError(f"optimizer.layer_decay must be in (0, 1], got {decay}")

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        scales = layer_scales(updates, decay)
        return jax.tree.map(lambda u, s: u * s, updates, scales), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
