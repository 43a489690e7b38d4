"""torchvision's and timm's ViT key names for the zoo ViT.

Both fuse q, k and v into one (3 * dim, dim) projection whose rows are (q | k | v) x heads x
head dim, the zoo's layout once transposed; both prepend a class token and add learned
position embeddings in the same token order (class token first, then patches row by row).
"""

from __future__ import annotations

from flax import nnx


def torchvision_names(model: nnx.Module) -> dict[str, str]:
    names = {
        "class_token": "class_token",
        "position": "encoder.pos_embedding",
        "embed.proj": "conv_proj",
        "norm": "encoder.ln",
        "head": "heads.head",
    }
    for i in range(len(model.blocks)):
        jax, torch = f"blocks.{i}", f"encoder.layers.encoder_layer_{i}"
        names.update(
            {
                f"{jax}.norm1": f"{torch}.ln_1",
                f"{jax}.norm2": f"{torch}.ln_2",
                f"{jax}.attention.qkv.kernel": f"{torch}.self_attention.in_proj_weight",
                f"{jax}.attention.qkv.bias": f"{torch}.self_attention.in_proj_bias",
                f"{jax}.attention.out": f"{torch}.self_attention.out_proj",
                f"{jax}.mlp1": f"{torch}.mlp.0",
                f"{jax}.mlp2": f"{torch}.mlp.3",
            }
        )
    return names


def timm_names(model: nnx.Module) -> dict[str, str]:
    names = {
        "class_token": "cls_token",
        "position": "pos_embed",
        "embed.proj": "patch_embed.proj",
        "norm": "norm",
        "head": "head",
    }
    for i in range(len(model.blocks)):
        jax, torch = f"blocks.{i}", f"blocks.{i}"
        names.update(
            {
                f"{jax}.norm1": f"{torch}.norm1",
                f"{jax}.norm2": f"{torch}.norm2",
                f"{jax}.attention.qkv": f"{torch}.attn.qkv",
                f"{jax}.attention.out": f"{torch}.attn.proj",
                f"{jax}.mlp1": f"{torch}.mlp.fc1",
                f"{jax}.mlp2": f"{torch}.mlp.fc2",
            }
        )
    return names
