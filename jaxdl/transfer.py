"""Transfer learning: start from a trained run's weights, replace the head, freeze layers, slow the backbone.

    jaxdl-train data.classes=[5,6,7,8,9] trainer.init_from=runs/pretrained \
        trainer.freeze=[conv1] optimizer.backbone_lr_scale=0.1

Layers are named by their dotted path in the model (`conv1`, `hidden.0`, `head`);
a name covers every parameter below it. The head (`trainer.head`) is never copied:
the new model's own, freshly initialised head has the new number of classes.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

import jax
import optax
from flax import nnx

from jaxdl.artifacts import LoadedModel, load_model
from jaxdl.data.pipeline import Preprocess
from jaxdl.errors import CheckpointError, ConfigError
from jaxdl.trees import in_layer, layer_path, map_named, named_leaves, path_name

log = logging.getLogger("jaxdl")

FROZEN, HEAD, BACKBONE = "frozen", "head", "backbone"


def layer_names(params: nnx.State) -> list[str]:
    """Every layer that holds parameters, e.g. ['conv1', 'conv2', 'head', 'hidden.0']."""
    return sorted({name.rsplit(".", 1)[0] for name in named_leaves(params)})


def load_source(path: str | Path) -> LoadedModel:
    """The model `trainer.init_from` names: a run, an exported/imported model or a compressed checkpoint."""
    return load_model(path)


def copy_weights(model: nnx.Module, source: LoadedModel, head: str | None, freeze: Sequence[str] = ()) -> None:
    """Copy every parameter and batch statistic except the head's from `source` into `model`, and say so."""
    donor = source.extras.get("float_model", source.model)  # a quantized source trains from its float twin
    have = named_leaves(nnx.state(donor))
    target = nnx.state(model)
    problems = []
    for name, leaf in named_leaves(target).items():
        if in_layer(name, head) or not hasattr(leaf, "shape") or name.endswith((".count", ".key")):
            continue
        if name not in have:
            problems.append(f"{name} is not in the source")
        elif have[name].shape != leaf.shape:
            problems.append(f"{name}: source {have[name].shape} vs model {leaf.shape}")
    if problems:
        raise CheckpointError(
            f"trainer.init_from={source.path} does not fit this model ({'; '.join(problems[:3])}); "
            f"use the same model, and set trainer.head to the layer that differs (now '{head}')"
        )
    copied = map_named(lambda name, leaf: leaf if in_layer(name, head) or name not in have else have[name], target)
    nnx.update(model, copied)
    log.info(
        "init_from %s (step %s): copied %d arrays; head '%s' freshly initialised; frozen: %s",
        source.path,
        source.step,
        sum(1 for n in named_leaves(target) if n in have and not in_layer(n, head)),
        layer_path(head),
        ", ".join(layer_path(f) for f in freeze) or "none",
    )


def param_labels(params: nnx.State, freeze: Sequence[str], head: str | None) -> Any:
    """The tree of 'frozen' / 'head' / 'backbone' labels `optax.multi_transform` partitions by."""
    names = layer_names(params)
    unknown = [layer for layer in freeze if not any(in_layer(n, layer) for n in names)]
    if unknown:
        raise ConfigError(f"trainer.freeze names unknown layers {unknown}; this model's layers: {', '.join(names)}")

    def label(path, _):
        name = path_name(path)
        if any(in_layer(name, layer) for layer in freeze):
            return FROZEN
        return HEAD if in_layer(name, head) else BACKBONE

    return jax.tree_util.tree_map_with_path(label, params)


def partition_optimizer(
    tx: optax.GradientTransformation, params: nnx.State, freeze: Sequence[str], head: str | None, backbone_lr_scale: float = 1.0
) -> optax.GradientTransformation:
    """`tx` on the head, `tx` scaled by `backbone_lr_scale` on the backbone, no update at all on frozen layers.

    Without frozen layers or a scale the optimiser is returned unchanged (and so is its checkpoint layout).
    """
    freeze = [layer_path(layer) for layer in freeze or []]
    if backbone_lr_scale < 0:
        raise ConfigError(f"optimizer.backbone_lr_scale must be >= 0, got {backbone_lr_scale}")
    if not freeze and backbone_lr_scale == 1.0:
        return tx
    backbone = tx if backbone_lr_scale == 1.0 else optax.chain(tx, optax.scale(backbone_lr_scale))
    transforms = {FROZEN: optax.set_to_zero(), HEAD: tx, BACKBONE: backbone}
    return optax.multi_transform(transforms, param_labels(params, freeze, head))


NORMALISATIONS = ("source", "data")


def source_normalisation(preprocess: Preprocess, source: LoadedModel, choice: str = "source") -> Preprocess:
    """The fine-tuning input pipeline: the data's resizing and augmentation with the mean/std the source's
    weights expect (`trainer.init_normalisation=source`, e.g. ImageNet's for an imported network) or the
    training data's own (`data`)."""
    if choice not in NORMALISATIONS:
        raise ConfigError(f"trainer.init_normalisation must be one of {', '.join(NORMALISATIONS)}, got '{choice}'")
    theirs = source.preprocess
    if choice == "data" or len(theirs.mean) != len(preprocess.mean):
        return preprocess
    log.info(
        "init_from %s: inputs normalised as the source's were (mean %s, std %s)",
        source.path,
        [round(m, 4) for m in theirs.mean],
        [round(s, 4) for s in theirs.std],
    )
    return dataclasses.replace(preprocess, mean=tuple(theirs.mean), std=tuple(theirs.std))
