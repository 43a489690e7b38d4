"""Load a compressed checkpoint back into runnable models, as `jaxdl.runs.load_run` does for a run.

    run = load_compressed("runs/.../compress/int8/checkpoint")
    logits = run.model(run.preprocess(run.dataset.test.images[:8]))   # the quantized model
    run.experiment.model                                             # dequantized float twin (trainable)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax.numpy as jnp
from flax import nnx
from omegaconf import OmegaConf

from jaxdl.errors import CheckpointError
from jaxdl.runs import TrainedRun
from jaxdl.train import build_experiment
from xai.compress.quantize import dequantized, post_training, rules_from_config
from xai.compress.storage import find_compressed, load_state_into, read_manifest, read_tensors


@dataclasses.dataclass
class CompressedRun(TrainedRun):
    """A TrainedRun whose `model` is the compressed (possibly quantized) model; `experiment.model`
    is its float twin with the same structure and dequantized weights, for fine-tuning."""

    compressed_model: nnx.Module = None
    recipe: dict = dataclasses.field(default_factory=dict)
    manifest: dict = dataclasses.field(default_factory=dict)

    @property
    def model(self) -> nnx.Module:
        return self.compressed_model


def quantize_rules(recipe: Any) -> list | None:
    quantize = (recipe or {}).get("quantize") or {}
    return rules_from_config(quantize["rules"]) if quantize.get("rules") else None


def load_compressed(path: str | Path) -> CompressedRun:
    """Rebuild the model from the stored config and recipe, then load and verify the stored tensors."""
    directory = find_compressed(path)
    if directory is None:
        raise CheckpointError(f"{path} is not a compressed checkpoint (no compressed.json); pass the directory jaxdl-compress wrote")
    manifest = read_manifest(directory)
    cfg = OmegaConf.load(directory / "config.yaml")
    cfg.trainer.init_from = None
    recipe = OmegaConf.to_container(OmegaConf.load(directory / "recipe.yaml"), resolve=True)
    experiment = build_experiment(cfg)
    float_model = experiment.model
    float_model.eval()
    rules = quantize_rules(recipe)
    model = float_model
    if rules:
        spec = experiment.spec
        model = post_training(nnx.clone(float_model), rules, jnp.zeros((1, *spec.size, spec.channels), jnp.float32))
    load_state_into(model, read_tensors(directory, manifest), directory)
    if rules:
        dequantized(model, float_model)
    model.eval()
    experiment = experiment.with_model(float_model)
    float_model.eval()
    return CompressedRun(directory, int(manifest.get("source", {}).get("step", 0)), experiment, model, recipe, manifest)
