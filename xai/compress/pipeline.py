"""Apply a recipe (`conf/compress/*.yaml`) to a trained run: channels -> prune -> fine-tune -> quantize.

Fine-tuning is the spine's own training (`train_and_evaluate`) on the pruned or
quantization-aware model, with masks in the optimizer state (`optimizer.pruning`),
so it checkpoints and resumes like any run (in `<out>/finetune`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import jax.numpy as jnp
from flax import nnx
from omegaconf import DictConfig, open_dict

from jaxdl.errors import ConfigError
from jaxdl.runs import TrainedRun
from jaxdl.trainer import build_experiment, train_and_evaluate
from xai.compress.channels import apply_plan, groups_of, select_channels, widths
from xai.compress.pruning import prune_now, sparsity_of, spec_from_config
from xai.compress.quantize import post_training, quantization_aware, rules_from_config

log = logging.getLogger("jaxdl.compress")

RECIPE_KEYS = ("name", "description", "channels", "prune", "finetune", "quantize")


def check_recipe(recipe: Mapping[str, Any]) -> None:
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(
            f"compress recipe has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(RECIPE_KEYS)}"
        )
    if not any(recipe.get(k) for k in ("channels", "prune", "quantize")):
        raise ConfigError("compress recipe does nothing: set channels, prune or quantize")


def finetune(
    cfg: DictConfig,
    model: nnx.Module,
    options: Mapping[str, Any],
    run_dir: Path,
    pruning: Mapping[str, Any] | None = None,
    wrap: Callable[[nnx.Module], nnx.Module] | None = None,
) -> nnx.Module:
    """Train `model` (or `wrap(model)`) further with the run's own recipe; returns the trained module."""
    ft_cfg = copy.deepcopy(cfg)
    with open_dict(ft_cfg):
        ft_cfg.trainer.epochs = int(options.get("epochs", 1))
        ft_cfg.trainer.batch_size = int(options.get("batch_size") or cfg.trainer.batch_size)
        ft_cfg.optimizer.learning_rate = float(options.get("learning_rate", cfg.optimizer.learning_rate))
        ft_cfg.optimizer.schedule = {"name": "constant"}
        ft_cfg.optimizer.pruning = dict(pruning) if pruning else None
        ft_cfg.trainer.init_from = None
    exp = build_experiment(ft_cfg).with_model(wrap(model) if wrap else model)
    train_and_evaluate(ft_cfg, run_dir, experiment=exp)
    nnx.update(exp.model, exp.state.params, exp.state.model_state)
    exp.model.eval()
    return exp.model


def compress(
    run: TrainedRun, recipe: Mapping[str, Any], out_dir: Path, calibration: jnp.ndarray
) -> tuple[DictConfig, nnx.Module]:
    """(config that rebuilds the compressed shape, compressed model) for `run`'s float model."""
    check_recipe(recipe)
    cfg = copy.deepcopy(run.cfg)
    with open_dict(cfg):
        cfg.trainer.init_from = None
    model = nnx.clone(run.experiment.model)
    model.eval()
    channels, prune, ft, quantize = (recipe.get(k) for k in ("channels", "prune", "finetune", "quantize"))
    if channels:
        groups = groups_of(cfg.model.name, model)
        plan = select_channels(
            model,
            groups,
            float(channels["fraction"]),
            channels.get("criterion", "l1"),
            channels.get("skip") or (),
            int(channels.get("multiple", 1)),
        )
        apply_plan(model, groups, plan)
        with open_dict(cfg):
            cfg.model.channels = widths(model, groups)
        log.info("channels kept: %s", dict(cfg.model.channels))
    if prune and not ft:
        spec = spec_from_config({**prune, "schedule": "one_shot"}, 1, 1)
        _, params, _ = nnx.split(model, nnx.Param, ...)
        nnx.update(model, prune_now(params, spec))
    if ft:
        model = finetune(cfg, model, ft, out_dir / "finetune", pruning=prune)
    if prune:
        _, params, _ = nnx.split(model, nnx.Param, ...)
        log.info("sparsity of prunable weights: %.4f (target %s)", sparsity_of(params), prune["sparsity"])
    if quantize:
        rules = rules_from_config(quantize.get("rules") or [])
        qat = quantize.get("qat")
        if qat:
            trained = finetune(cfg, model, qat, out_dir / "qat", wrap=lambda m: quantization_aware(m, rules, calibration[:2]))
            nnx.update(model, nnx.state(trained, nnx.Param))
        model = post_training(model, rules, calibration)
    return cfg, model
