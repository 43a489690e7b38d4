"""Transformer encoders: ViT (Dosovitskiy et al. 2020) for images and a sequence encoder for 1-D data.

Both are a token embedding, a class token, learned position embeddings, pre-norm encoder
`blocks` and a `head` on the class token. `model.attention_weights(x)` returns every
block's softmax attention (N, heads, tokens, tokens) for the explanation tools; it is
recorded only on request, so training state never carries it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdl.errors import ConfigError
from jaxdl.models.drop_path import block_rates, drop_path
from jaxdl.models.layers import check_variant
from jaxdl.models.registry import InputSpec, register
from jaxdl.models.sequences import as_sequence, sequence_shape, valid_steps


def fused_implementation(dtype: Any, mask: jax.Array | None) -> str | None:
    """cuDNN's fused attention where it applies (an NVIDIA GPU, 16-bit q/k/v, no mask), else XLA's (None).

    `jax.nn.dot_product_attention` picks XLA's composition unless asked for "cudnn" explicitly, and
    cuDNN refuses float32 inputs and, in training, a mask with an odd sequence length (ViT's 197)."""
    if mask is not None or jnp.dtype(dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return None
    device = jax.devices()[0]
    return "cudnn" if device.platform == "gpu" and "cuda" in device.client.platform_version.lower() else None


class SelfAttention(nnx.Module):
    """Multi-head self-attention with a fused q/k/v projection and an optional key mask.

    Unless something needs the weights (`record`, for explainers) or attention dropout is active,
    softmax(QK^T/sqrt(d))V is one `jax.nn.dot_product_attention` call (cuDNN's fused kernel on NVIDIA
    GPUs, see `fused_implementation`); `fused = False` forces the explicit path everywhere."""

    def __init__(self, dim: int, heads: int, dropout: float, *, dtype: Any = None, rngs: nnx.Rngs):
        if dim % heads:
            raise ConfigError(f"model.dim={dim} must be divisible by model.heads={heads}")
        self.heads = heads
        self.qkv = nnx.Linear(dim, 3 * dim, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.record = False
        self.fused = True

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        n, t, d = x.shape
        q, k, v = (a[:, :, 0] for a in jnp.split(self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads), 3, axis=2))
        dropping = self.dropout.rate > 0 and not self.dropout.deterministic
        if self.fused and not self.record and not dropping:  # q, k, v in BTNH, the layout cuDNN takes
            keys = None if mask is None else mask[:, None, None, :]
            y = jax.nn.dot_product_attention(q, k, v, mask=keys, implementation=fused_implementation(q.dtype, mask))
            return self.out(y.reshape(n, t, d))
        q, k, v = (a.transpose(0, 2, 1, 3) for a in (q, k, v))  # (N, heads, T, d_head)
        logits = q @ k.swapaxes(-1, -2) / jnp.sqrt(d // self.heads).astype(x.dtype)
        if mask is not None:
            logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(x.dtype)
        if self.record:
            self.sow(nnx.Intermediate, "weights", weights)
            weights = self.perturb("weights", weights)  # inside nnx.capture: the gradient w.r.t. the weights
        y = (self.dropout(weights) @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
        return self.out(y)


class EncoderBlock(nnx.Module):
    """Pre-norm block: x + attention(norm(x)), then x + mlp(norm(x)).

    The MLP's GELU is the tanh approximation unless `exact_gelu` (PyTorch's `nn.GELU()`, which
    imported torchvision / timm ViTs need)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_dim: int,
        dropout: float,
        *,
        exact_gelu: bool = False,
        drop: float = 0.0,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        self.norm1 = nnx.LayerNorm(dim, epsilon=1e-6, dtype=dtype, rngs=rngs)
        self.attention = SelfAttention(dim, heads, dropout, dtype=dtype, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, epsilon=1e-6, dtype=dtype, rngs=rngs)
        self.mlp1 = nnx.Linear(dim, mlp_dim, dtype=dtype, rngs=rngs)
        self.mlp2 = nnx.Linear(mlp_dim, dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.exact_gelu = exact_gelu
        self.drop_path = drop_path(drop, 3, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        x = x + self._dropped(self.dropout(self.attention(self.norm1(x), mask)))
        hidden = jax.nn.gelu(self.mlp1(self.norm2(x)), approximate=not self.exact_gelu)
        return x + self._dropped(self.dropout(self.mlp2(self.dropout(hidden))))

    def _dropped(self, branch: jax.Array) -> jax.Array:
        return branch if self.drop_path is None else self.drop_path(branch)


class PatchEmbedding(nnx.Module):
    """Non-overlapping `patch` x `patch` patches, linearly projected (a strided conv)."""

    def __init__(self, spec: InputSpec, patch: int, dim: int, *, dtype: Any = None, rngs: nnx.Rngs):
        h, w = spec.size
        if h % patch or w % patch:
            raise ConfigError(f"model.patch={patch} must divide the input size {h}x{w}; set model.input_size or model.patch")
        self.num_tokens = (h // patch) * (w // patch)
        self.proj = nnx.Conv(spec.channels, dim, (patch, patch), (patch, patch), padding="VALID", dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.proj(x)
        return x.reshape(x.shape[0], -1, x.shape[-1])


class StepEmbedding(nnx.Module):
    """Each sequence step (an image row or a signal sample) linearly projected to a token."""

    def __init__(self, spec: InputSpec, dim: int, *, dtype: Any = None, rngs: nnx.Rngs):
        self.num_tokens, features = sequence_shape(spec)
        self.proj = nnx.Linear(features, dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.proj(as_sequence(x))


class TransformerClassifier(nnx.Module):
    """`embed` tokens, prepend the class token, add position embeddings, `blocks`, `norm`, `head`."""

    def __init__(
        self,
        embed: PatchEmbedding | StepEmbedding,
        num_classes: int,
        *,
        dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        dropout: float,
        exact_gelu: bool = False,
        drop_path: float = 0.0,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        self.embed = embed
        self.class_token = nnx.Param(jnp.zeros((1, 1, dim)))
        self.position = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, embed.num_tokens + 1, dim)))
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.blocks = nnx.List(
            [
                EncoderBlock(dim, heads, mlp_dim, dropout, exact_gelu=exact_gelu, drop=rate, dtype=dtype, rngs=rngs)
                for rate in block_rates(drop_path, depth)
            ]
        )
        self.norm = nnx.LayerNorm(dim, epsilon=1e-6, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(dim, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
        tokens = self.embed(x)
        n, t, _ = tokens.shape
        cls = jnp.broadcast_to(self.class_token[...], (n, 1, tokens.shape[-1])).astype(tokens.dtype)
        tokens = self.dropout(jnp.concatenate([cls, tokens], axis=1) + self.position[...].astype(tokens.dtype))
        mask = None if lengths is None else jnp.concatenate([jnp.ones((n, 1), bool), valid_steps(lengths, t)], axis=1)
        for block in self.blocks:
            tokens = block(tokens, mask)
        return self.head(self.norm(tokens)[:, 0])

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Inside, every block's attention takes the explicit path and, under `nnx.capture`, sows its weights
        (`nnx.Intermediate` "weights") and adds a `nnx.Perturbation` "weights" (for their gradients)."""
        for block in self.blocks:
            block.attention.record = True
        try:
            yield
        finally:
            for block in self.blocks:
                block.attention.record = False

    def attention_weights(self, x: jax.Array, lengths: jax.Array | None = None) -> list[jax.Array]:
        """Every block's attention probabilities, (N, heads, 1 + tokens, 1 + tokens); token 0 is the class token."""
        with self.recording():
            _, captured = nnx.capture(self, nnx.Intermediate)(x, lengths)
        return [captured["blocks"][i]["attention"]["weights"][0] for i in range(len(self.blocks))]


VIT_PRESETS = {
    "small": dict(patch=4, dim=64, depth=6, heads=4, mlp_dim=128),
    "imagenet": dict(patch=16, dim=768, depth=12, heads=12, mlp_dim=3072),  # ViT-B/16
}


@register("vit")
def vit(
    spec: InputSpec,
    variant: str = "small",
    patch: int | None = None,
    dim: int | None = None,
    depth: int | None = None,
    heads: int | None = None,
    mlp_dim: int | None = None,
    dropout: float = 0.1,
    exact_gelu: bool = False,
    drop_path: float = 0.0,
    dtype: Any = None,
    rngs: nnx.Rngs = None,
) -> TransformerClassifier:
    """Vision Transformer; `variant: imagenet` is ViT-B/16 at 224x224 (86.6M), `small` patch 4, width 64, depth 6.

    `exact_gelu` uses the erf GELU of PyTorch's ViTs instead of the tanh approximation; `drop_path` is the
    last block's stochastic-depth rate (timm's linear rule)."""
    check_variant(variant)
    given = dict(patch=patch, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim)
    cfg = {k: v if v is not None else VIT_PRESETS[variant][k] for k, v in given.items()}
    embed = PatchEmbedding(spec, cfg.pop("patch"), cfg["dim"], dtype=dtype, rngs=rngs)
    return TransformerClassifier(
        embed, spec.num_classes, **cfg, dropout=dropout, exact_gelu=exact_gelu, drop_path=drop_path, dtype=dtype, rngs=rngs
    )


@register("seq_transformer")
def seq_transformer(
    spec: InputSpec,
    dim: int = 64,
    depth: int = 4,
    heads: int = 4,
    mlp_dim: int = 128,
    dropout: float = 0.1,
    dtype: Any = None,
    rngs: nnx.Rngs = None,
) -> TransformerClassifier:
    """Transformer encoder over sequence steps: signal samples, or image rows."""
    embed = StepEmbedding(spec, dim, dtype=dtype, rngs=rngs)
    return TransformerClassifier(
        embed, spec.num_classes, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim, dropout=dropout, dtype=dtype, rngs=rngs
    )
