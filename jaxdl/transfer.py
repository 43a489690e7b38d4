"""Transfer learning: start from a trained run's weights, replace the head, freeze layers, slow the backbone.

    jaxdl-train data.classes=[5,6,7,8,9] trainer.init_from=runs/pretrained \
        trainer.freeze=[conv1] optimizer.backbone_lr_scale=0.1

Layers are named by their attribute path in the model (`conv1`, `hidden/0`, `head`);
a name covers every parameter below it. The head (`trainer.head`) is never copied:
the new model's own, freshly initialised head has the new number of classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import jax
import optax
from flax import nnx

from jaxdl.errors import CheckpointError, ConfigError

FROZEN, HEAD, BACKBONE = "frozen", "head", "backbone"


def param_name(path: tuple) -> str:
    """'hidden/0/kernel' for a key path into an `nnx.State` of parameters."""
    keys = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    return "/".join(keys[:-1] if keys and keys[-1] == "value" else keys)


def named_params(params: nnx.State) -> dict[str, jax.Array]:
    return {param_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def layer_names(params: nnx.State) -> list[str]:
    """Every layer that holds parameters, e.g. ['conv1', 'conv2', 'head', 'hidden/0']."""
    return sorted({name.rsplit("/", 1)[0] for name in named_params(params)})


def in_layer(name: str, layer: str | None) -> bool:
    layer = (layer or "").replace(".", "/").strip("/")
    return bool(layer) and (name == layer or name.startswith(layer + "/"))


def init_from_run(model: nnx.Module, run_dir: str | Path, head: str | None) -> None:
    """Copy every parameter except the head's from the best checkpoint of `run_dir` into `model`."""
    from jaxdl.runs import load_run  # runs builds experiments, which call this module

    source = named_params(load_run(run_dir).experiment.state.params)
    target = nnx.state(model, nnx.Param)
    problems = []
    for name, leaf in named_params(target).items():
        if in_layer(name, head):
            continue
        if name not in source:
            problems.append(f"{name} is not in the checkpoint")
        elif source[name].shape != leaf.shape:
            problems.append(f"{name}: checkpoint {source[name].shape} vs model {leaf.shape}")
    if problems:
        raise CheckpointError(
            f"trainer.init_from={run_dir} does not fit this model ({'; '.join(problems[:3])}); "
            f"use the same model, and set trainer.head to the layer that differs (now '{head}')"
        )
    copied = jax.tree_util.tree_map_with_path(
        lambda path, leaf: leaf if in_layer(param_name(path), head) else source[param_name(path)], target
    )
    nnx.update(model, copied)


def param_labels(params: nnx.State, freeze: Sequence[str], head: str | None) -> Any:
    """The tree of 'frozen' / 'head' / 'backbone' labels `optax.multi_transform` partitions by."""
    names = layer_names(params)
    unknown = [layer for layer in freeze if not any(in_layer(n, layer) for n in names)]
    if unknown:
        raise ConfigError(f"trainer.freeze names unknown layers {unknown}; this model's layers: {', '.join(names)}")

    def label(path, _):
        name = param_name(path)
        if any(in_layer(name, layer) for layer in freeze):
            return FROZEN
        return HEAD if in_layer(name, head) else BACKBONE

    return jax.tree_util.tree_map_with_path(label, params)


def partition_optimizer(tx: optax.GradientTransformation, params: nnx.State, freeze: Sequence[str],
                        head: str | None, backbone_lr_scale: float = 1.0) -> optax.GradientTransformation:
    """`tx` on the head, `tx` scaled by `backbone_lr_scale` on the backbone, no update at all on frozen layers.

    Without frozen layers or a scale the optimiser is returned unchanged (and so is its checkpoint layout).
    """
    freeze = [str(layer) for layer in freeze or []]
    if backbone_lr_scale < 0:
        raise ConfigError(f"optimizer.backbone_lr_scale must be >= 0, got {backbone_lr_scale}")
    if not freeze and backbone_lr_scale == 1.0:
        return tx
    backbone = tx if backbone_lr_scale == 1.0 else optax.chain(tx, optax.scale(backbone_lr_scale))
    transforms = {FROZEN: optax.set_to_zero(), HEAD: tx, BACKBONE: backbone}
    return optax.multi_transform(transforms, param_labels(params, freeze, head))
