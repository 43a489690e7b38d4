"""Load a compressed checkpoint back as a model artifact (registered with the core as the `compressed` format).

loaded = jaxdl.load_model("runs/.../compress/int8/checkpoint")
logits = loaded(images_uint8)              # the quantized model, preprocessing included
loaded.extras["float_model"]               # its dequantized float twin (trainable)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax.numpy as jnp
from flax import nnx
from omegaconf import OmegaConf

from jaxdl.artifacts import LoadedModel, run_card, run_config
from jaxdl.errors import CheckpointError
from xai.compress.quantize import dequantized, post_training, rules_from_config
from xai.compress.storage import find_compressed, load_state_into, read_manifest, read_tensors


def quantize_rules(recipe: Any) -> list | None:
    quantize = (recipe or {}).get("quantize") or {}
    return rules_from_config(quantize["rules"]) if quantize.get("rules") else None


def load_compressed(path: str | Path, which: str | int = "best") -> LoadedModel:
    """Rebuild the model from the stored card and recipe, then load and verify the stored tensors."""
    directory = find_compressed(path)
    if directory is None:
        raise CheckpointError(
            f"{path} is not a compressed checkpoint (no compressed.json); pass the directory jaxdl-compress wrote"
        )
    manifest = read_manifest(directory)
    for name in ("config.yaml", "recipe.yaml"):
        if not (directory / name).is_file():
            raise CheckpointError(
                f"compressed checkpoint {directory} lacks {name}; copy the whole directory jaxdl-compress wrote"
            )
    cfg = run_config(directory)
    recipe = OmegaConf.to_container(OmegaConf.load(directory / "recipe.yaml"), resolve=True)
    card = run_card(directory, cfg)
    float_model = card.build()
    rules = quantize_rules(recipe)
    model = float_model
    if rules:
        model = post_training(nnx.clone(float_model), rules, jnp.zeros((1, *card.spec.size, card.spec.channels), jnp.float32))
    load_state_into(model, read_tensors(directory, manifest), directory)
    if rules:
        dequantized(model, float_model)
    model.eval()
    float_model.eval()
    step = manifest.get("source", {}).get("step")
    return LoadedModel(
        model,
        card,
        directory,
        None if step is None else int(step),
        cfg,
        {"float_model": float_model, "recipe": recipe, "manifest": manifest},
    )
