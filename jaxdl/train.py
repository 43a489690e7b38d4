"""`jaxdl-train`: train a registered model on a data source, as the Hydra config says.

    jaxdl-train data=fashion_mnist model=lenet5 optimizer=adam trainer.epochs=5

Re-running a command with the same `hydra.run.dir` resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm import tqdm

from jaxdl import distributed, models, optim, transfer
from jaxdl.checkpoint import RunCheckpoints
from jaxdl.config import CONF_DIR, check_group_overrides
from jaxdl.data import Dataset, load_dataset
from jaxdl.data.pipeline import Loader, Preprocess
from jaxdl.errors import ConfigError, TrainingDiverged, report_user_errors
from jaxdl.evaluate import Evaluation, evaluate
from jaxdl import plots
from jaxdl.parallel import check_batch_size, data_mesh
from jaxdl.run_log import MetricsLog
from jaxdl.steps import TrainState, init_state, make_predict, make_train_step, split_model

log = logging.getLogger("jaxdl")

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def make_preprocess(data_cfg: Any, size: tuple[int, int], mean, std) -> Preprocess:
    augment = data_cfg.get("augment") or {}
    return Preprocess(
        size=size, mean=mean, std=std, resize=data_cfg.get("resize", "auto"),
        crop_padding=int(augment.get("crop_padding", 0)), hflip=bool(augment.get("hflip", False)),
    )


def _check_finite(loss: float, step: int, epoch: int, ckpts: RunCheckpoints) -> None:
    if not math.isfinite(loss):
        kept = ckpts.latest_step()
        where = f"the last good checkpoint (step {kept}) is kept in {ckpts.directory}" if kept is not None else "no checkpoint was written"
        raise TrainingDiverged(
            f"training loss is {loss} at step {step} (epoch {epoch}); {where}; "
            "lower optimizer.learning_rate or set optimizer.grad_clip_norm"
        )


def train_epoch(train_step, state: TrainState, loader: Loader, cfg: Any, epoch: int, ckpts: RunCheckpoints):
    """One pass over the training split; returns the new state and the epoch's train metrics."""
    t = cfg.trainer
    batches = loader.train_batches(t.batch_size, t.seed, epoch)
    total = {"loss_sum": 0.0, "correct": 0, "count": 0}
    pending = []
    bar = tqdm(total=len(loader) // t.batch_size * t.batch_size, desc=f"epoch {epoch}/{t.epochs}",
               unit="img", unit_scale=True, leave=False, disable=None if t.progress and jax.process_index() == 0 else True)
    start = time.perf_counter()
    for i, (images, labels) in enumerate(batches, 1):
        state, metrics = train_step(state, images, labels)
        pending.append(metrics)
        bar.update(t.batch_size)
        if i % t.log_every == 0:
            _accumulate(total, pending)
            _check_finite(total["loss_sum"], int(state.step), epoch, ckpts)
            bar.set_postfix(loss=f"{total['loss_sum'] / total['count']:.4f}", acc=f"{total['correct'] / total['count']:.4f}")
    _accumulate(total, pending)
    seconds = time.perf_counter() - start
    bar.close()
    _check_finite(total["loss_sum"], int(state.step), epoch, ckpts)
    count = max(total["count"], 1)
    return state, {
        "train/loss": total["loss_sum"] / count,
        "train/accuracy": total["correct"] / count,
        "train/samples_per_s": count / seconds,
        "time/epoch_s": seconds,
    }


def _accumulate(total: dict, pending: list) -> None:
    """Fold device-side step metrics into host totals (one device sync for many steps)."""
    for metrics in jax.device_get(pending):
        for key in total:
            total[key] += metrics[key].item()
    pending.clear()


def write_evaluation(run_dir: Path, evaluation: Evaluation, images: np.ndarray, class_names) -> dict:
    """Confusion matrix (CSV + PNG), per-class accuracy and the misclassified grid under `eval/`."""
    out = run_dir / "eval"
    out.mkdir(exist_ok=True)
    n = len(class_names)
    matrix = evaluation.confusion_matrix(n)
    header = "true\\predicted," + ",".join(class_names)
    rows = [f"{name}," + ",".join(map(str, row)) for name, row in zip(class_names, matrix)]
    (out / "confusion_matrix.csv").write_text("\n".join([header, *rows]) + "\n")
    plots.confusion_matrix(matrix, class_names, out / "confusion_matrix.png")
    per_class = evaluation.per_class_accuracy(n)
    (out / "per_class_accuracy.csv").write_text(
        "class,accuracy\n" + "".join(f"{c},{a:.6f}\n" for c, a in zip(class_names, per_class))
    )
    plots.misclassified_grid(images, evaluation.labels, evaluation.predictions, class_names, out / "misclassified.png")
    return {f"test/accuracy/{c}": float(a) for c, a in zip(class_names, per_class)}


@dataclasses.dataclass
class Experiment:
    """Everything a config builds before training: data, input pipeline, model, optimiser, initial state."""

    cfg: DictConfig
    mesh: Mesh
    dataset: Dataset
    spec: models.InputSpec
    preprocess: Preprocess
    model: nnx.Module
    tx: optax.GradientTransformation
    train_def: nnx.GraphDef
    eval_def: nnx.GraphDef
    state: TrainState
    compute_dtype: Any

    @property
    def num_params(self) -> int:
        return sum(x.size for x in jax.tree.leaves(self.state.params))

    def with_model(self, model: nnx.Module) -> "Experiment":
        """The same experiment training `model` instead (a pruned, rebuilt or quantization-aware one).

        The state gets its own copies of the arrays: training donates them, and `model` may share
        them with another model (an `nnx.clone` shares arrays) that must stay usable."""
        train_def, eval_def, params, model_state = split_model(model)
        params, model_state = jax.tree.map(lambda x: x.copy(), (params, model_state))
        state = init_state(params, model_state, self.tx, self.mesh)
        return dataclasses.replace(self, model=model, train_def=train_def, eval_def=eval_def, state=state)


def build_experiment(cfg: DictConfig) -> Experiment:
    """Build data, model and optimiser from a composed config (shared by training, explain and compress)."""
    t = cfg.trainer
    if t.compute_dtype not in DTYPES:
        raise ConfigError(f"trainer.compute_dtype must be one of {', '.join(DTYPES)}, got '{t.compute_dtype}'")
    mesh = data_mesh()
    check_batch_size(t.batch_size, mesh)
    dataset = load_dataset(cfg.data)
    spec = models.InputSpec(models.input_size(cfg.model, dataset.image_shape[:2]), dataset.image_shape[2], dataset.num_classes)
    preprocess = make_preprocess(cfg.data, spec.size, *dataset.channel_stats())
    steps_per_epoch = len(dataset.train) // t.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"trainer.batch_size={t.batch_size} is larger than the {len(dataset.train)} training examples")
    compute_dtype = DTYPES[t.compute_dtype]
    if t.get("init_from"):  # a source pruned by jaxdl-compress has fewer channels: build its shape
        from jaxdl.runs import run_config

        with open_dict(cfg):
            cfg.model.channels = run_config(t.init_from).model.get("channels")
    model = models.build(cfg.model, spec, t.seed, compute_dtype)
    if t.get("init_from"):
        transfer.init_from_run(model, t.init_from, t.get("head"))
    tx = transfer.partition_optimizer(
        optim.build(cfg.optimizer, steps_per_epoch, t.epochs), nnx.state(model, nnx.Param),
        t.get("freeze") or [], t.get("head"), float(cfg.optimizer.get("backbone_lr_scale", 1.0)),
    )
    train_def, eval_def, params, model_state = split_model(model)
    state = init_state(params, model_state, tx, mesh)
    return Experiment(cfg, mesh, dataset, spec, preprocess, model, tx, train_def, eval_def, state, compute_dtype)


def train_and_evaluate(cfg: DictConfig, run_dir: str | Path, experiment: Experiment | None = None) -> dict[str, float]:
    """Train, validate each epoch, checkpoint, and evaluate the best checkpoint on the test split.

    A prebuilt `experiment` (e.g. a pruned model to fine-tune) is trained instead of building one
    from `cfg`; it is left holding the best checkpoint's state."""
    for noisy in ("absl", "jax._src.xla_bridge"):  # Orbax logs every file it writes; JAX every missing backend
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    distributed.initialize(cfg.trainer)
    main = distributed.is_main_process()
    distributed.log_to_own_file(jax.process_index())
    t = cfg.trainer
    exp = experiment or build_experiment(cfg)
    if main:  # written after the build: trainer.init_from may have set model.channels
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    mesh, dataset, state, compute_dtype = exp.mesh, exp.dataset, exp.state, exp.compute_dtype
    on_device = cfg.data.get("on_device")
    train_loader, val_loader, test_loader = (Loader(s, mesh, on_device) for s in (dataset.train, dataset.val, dataset.test))
    log.info("%s on %s: %s parameters, %d train / %d val / %d test examples, %d device(s)",
             cfg.model.name, dataset.name, f"{exp.num_params:,}", len(dataset.train), len(dataset.val), len(dataset.test), mesh.size)

    ckpts = RunCheckpoints(run_dir / "checkpoints", keep_last=t.keep_checkpoints, best_metric=t.best_metric, best_mode=t.best_mode)
    epoch = 0
    latest = ckpts.latest_step() if t.resume else None
    if latest is not None:
        state, meta = ckpts.restore(latest, state)
        epoch = int(meta["epoch"])
        log.info("resumed from %s at epoch %d (step %d)", ckpts.directory, epoch, latest)
    metrics_log = MetricsLog(run_dir, resume_step=int(state.step), write_files=main)

    train_step = make_train_step(exp.train_def, exp.tx, exp.preprocess, mesh, t.seed, t.label_smoothing, compute_dtype)
    predict = make_predict(exp.eval_def, exp.preprocess, mesh, compute_dtype)
    for epoch in range(epoch + 1, t.epochs + 1):
        state, record = train_epoch(train_step, state, train_loader, cfg, epoch, ckpts)
        record.update(evaluate(predict, state.params, state.model_state, val_loader, t.eval_batch_size).metrics("val"))
        step = int(state.step)
        metrics_log.write(step, epoch=epoch, **record)
        log.info("epoch %d/%d  train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.0f img/s",
                 epoch, t.epochs, record["train/loss"], record["train/accuracy"], record["val/loss"],
                 record["val/accuracy"], record["train/samples_per_s"])
        ckpts.save(step, state, meta={"epoch": epoch}, metrics=record)

    best = ckpts.best_step()
    if best is not None and best != int(state.step):
        state, _ = ckpts.restore(best, state)
    exp.state = state
    test = evaluate(predict, state.params, state.model_state, test_loader, t.eval_batch_size)
    summary = {**test.metrics("test"), "best_step": best, "epochs": t.epochs, "parameters": exp.num_params}
    metrics_log.write(int(state.step), epoch=t.epochs, **test.metrics("test"))
    best_val = [r for r in metrics_log.records if r["step"] == best and t.best_metric in r]
    if best_val:
        summary[f"best_{t.best_metric}"] = best_val[0][t.best_metric]
    if main:
        summary.update(write_evaluation(run_dir, test, dataset.test.images, dataset.class_names))
        plots.learning_curves(metrics_log.records, run_dir / "curves.png")
        (run_dir / "results.json").write_text(json.dumps(summary, indent=2))
    metrics_log.close()
    ckpts.close()
    log.info("test accuracy %.4f (loss %.4f), best checkpoint step %s; run directory %s",
             test.accuracy, test.loss, best, run_dir)
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    """The Hydra task: returns `trainer.objective` so sweepers (grid, Optuna) can optimise it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from jaxdl.job import run_job

    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    return report_user_errors(run_job)(cfg, hydra_cfg.runtime.output_dir, in_sweep)


@report_user_errors
def main() -> None:
    check_group_overrides(sys.argv[1:])
    _hydra_main()


if __name__ == "__main__":
    main()
