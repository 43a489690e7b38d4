"""Training a classifier: build the experiment a config describes, train, validate, checkpoint, test.

    summary = train_and_evaluate(cfg, "runs/my-run")     # what `jaxdl-train` does (jaxdl/apps/train.py)

Re-running in the same run directory resumes from its last good checkpoint (jaxdl/rundir.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from omegaconf import DictConfig, open_dict
from tqdm import tqdm

from jaxdl import distributed, early_stopping, ema, models, optim, plots, tracking, transfer, watchdog
from jaxdl.artifacts import DTYPES, card_from_config
from jaxdl.data import Dataset, auto_size, load_dataset
from jaxdl.data.images import BadFiles
from jaxdl.data.pipeline import EpochBatches, Loader, Preprocess, input_wait_warning, make_preprocess
from jaxdl.data.stream import loader_for
from jaxdl.errors import ConfigError
from jaxdl.evaluate import Evaluation, evaluate, write_tables
from jaxdl.parallel import check_batch_size, data_mesh
from jaxdl.profiling import TracedSteps
from jaxdl.rundir import RunDirectory, check_best
from jaxdl.validate import check_settings
from jaxdl.augment import batch_mix
from jaxdl.augment_settings import check as check_augment
from jaxdl.image_augment import image_augment
from jaxdl.steps import TrainState, init_state, make_predict, make_train_step, split_model
from jaxdl.summary import write_summary

log = logging.getLogger("jaxdl")

# Steps dispatched ahead of the host at most, whatever trainer.log_every says: bounds the queued work, and
# with 100+ unsynchronised steps over 2 XLA CPU devices the gradient all-reduce was seen to deadlock (RESULTS.md).
MAX_STEPS_AHEAD = 20

# What the classifier records each epoch (`trainer.best_metric` must be one of them).
EPOCH_METRICS = ("train/loss", "train/accuracy", "train/samples_per_s", "time/epoch_s", "val/loss", "val/accuracy")


def train_epoch(
    train_step, state: TrainState, loader: Loader, cfg: Any, epoch: int, run: RunDirectory, num_classes: int
) -> tuple[TrainState, dict[str, float]]:
    """One pass over the training split; returns the new state and the epoch's train metrics.

    With `trainer.checkpoint_every_steps` a checkpoint is also saved inside the epoch, holding where the
    input stands; a run resumed from one goes on at the same example with the epoch's running totals."""
    t = cfg.trainer
    resumed = _resumed_in(run, epoch, t.batch_size)
    batches = loader.train_batches(t.batch_size, t.seed, epoch, resumed and resumed["position"])
    total = dict(resumed["totals"]) if resumed else {"loss_sum": 0.0, "correct": 0, "count": 0}
    seconds_before = resumed["seconds"] if resumed else 0.0
    every = t.get("checkpoint_every_steps")
    first_step = int(state.step) - batches.step  # the global step at the start of this epoch
    pending = []
    bar = tqdm(
        total=len(batches) * t.batch_size,
        initial=batches.step * t.batch_size,
        desc=f"epoch {epoch}/{t.epochs}",
        unit="img",
        unit_scale=True,
        leave=False,
        disable=None if t.progress and jax.process_index() == 0 else True,
    )
    start = time.perf_counter()
    for images, labels in watchdog.beating(batches):  # a step that makes no progress ends the run (jaxdl/watchdog.py)
        state, metrics = train_step(state, images, labels)
        pending.append(metrics)
        bar.update(t.batch_size)
        if len(pending) >= MAX_STEPS_AHEAD:
            _accumulate(total, pending)
        if batches.step % t.log_every == 0:
            _accumulate(total, pending)
            run.check_loss(total["loss_sum"] / total["count"], first_step + batches.step, epoch, num_classes)
            bar.set_postfix(loss=f"{total['loss_sum'] / total['count']:.4f}", acc=f"{total['correct'] / total['count']:.4f}")
            if run.trackers is not None:  # per-step curves: the epoch's running means so far
                running = {"loss": total["loss_sum"] / total["count"], "accuracy": total["correct"] / total["count"]}
                run.trackers.log_metrics(first_step + batches.step, {f"train_steps/{k}": v for k, v in running.items()})
        if every and (first_step + batches.step) % every == 0 and batches.step < len(batches):  # the epoch end saves anyway
            _accumulate(total, pending)
            seconds = seconds_before + time.perf_counter() - start
            position = {"epoch": epoch, "batch_size": t.batch_size, "processes": _gather_states(batches)}
            run.save_mid_epoch(first_step + batches.step, state, position, {"totals": total, "seconds": seconds})
    _accumulate(total, pending)
    input_wait = batches.waited / max(time.perf_counter() - start, 1e-9)  # of this process's part of the epoch
    seconds = seconds_before + time.perf_counter() - start
    bar.close()
    count = max(total["count"], 1)
    run.check_loss(total["loss_sum"] / count, int(state.step), epoch, num_classes)
    return state, {
        "train/loss": total["loss_sum"] / count,
        "train/accuracy": total["correct"] / count,
        "train/samples_per_s": count / seconds,
        "time/epoch_s": seconds,
        "time/input_wait": input_wait,
    }


def _gather_states(batches: EpochBatches) -> list[dict]:
    """The input position of every process (each streams its own shard), in process order."""
    return [json.loads(text) for text in distributed.gather_text(json.dumps(batches.get_state()))]


def _resumed_in(run: RunDirectory, epoch: int, batch_size: int) -> dict | None:
    """This process's stored input position and the running totals, when the run resumed inside `epoch`."""
    mid = run.mid_epoch
    if mid is None or mid["data"]["epoch"] != epoch:
        return None
    data = mid["data"]
    if data["batch_size"] != batch_size or len(data["processes"]) != jax.process_count():
        raise ConfigError(
            f"the checkpoint in {run.ckpts.directory} was saved inside epoch {epoch} with trainer.batch_size="
            f"{data['batch_size']} on {len(data['processes'])} process(es); resume with the same"
        )
    return {"position": data["processes"][jax.process_index()], "totals": mid["totals"], "seconds": mid["seconds"]}


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
    matrix, per_class = write_tables(evaluation, class_names, out)
    plots.confusion_matrix(matrix, class_names, out / "confusion_matrix.png")
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

    def card(self, **provenance: Any):
        """The model card of this experiment's model (what `jaxdl.load_model` needs besides weights)."""
        return card_from_config(
            self.cfg,
            self.spec,
            self.preprocess,
            self.dataset.class_names,
            str(self.dataset.train.images.dtype),
            source="jaxdl-train",
            **provenance,
        )

    def with_model(self, model: nnx.Module) -> "Experiment":
        """The same experiment training `model` instead (a pruned, rebuilt or quantization-aware one).

        The state gets its own copies of the arrays: training donates them, and `model` may share
        them with another model (an `nnx.clone` shares arrays) that must stay usable."""
        train_def, eval_def, params, model_state = split_model(model, self.cfg.trainer.get("freeze") or [])
        params, model_state = jax.tree.map(lambda x: x.copy(), (params, model_state))
        state = init_state(params, model_state, self.tx, self.mesh)
        return dataclasses.replace(self, model=model, train_def=train_def, eval_def=eval_def, state=state)


def check_trainer(t: Any) -> None:
    """One-line errors for trainer settings that would crash later or train nothing."""
    if t.compute_dtype not in DTYPES:
        raise ConfigError(f"trainer.compute_dtype must be one of {', '.join(DTYPES)}, got '{t.compute_dtype}'")
    whole = lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= 1
    for key in ("epochs", "batch_size", "eval_batch_size", "keep_checkpoints", "log_every"):
        if not whole(t.get(key)):
            raise ConfigError(f"trainer.{key} must be a positive whole number, got {t.get(key)!r}")
    every = t.get("checkpoint_every_steps")
    if every is not None and not whole(every):
        raise ConfigError(f"trainer.checkpoint_every_steps must be a positive whole number or null, got {every!r}")
    if not whole(t.get("grad_accum_steps", 1)):
        raise ConfigError(f"trainer.grad_accum_steps must be a positive whole number, got {t.get('grad_accum_steps')!r}")
    ema.check(t)
    early_stopping.check(t, EPOCH_METRICS)


def build_experiment(cfg: DictConfig, dataset: Dataset | None = None) -> Experiment:
    """Build data, model and optimiser from a composed config (`dataset`: one already loaded from `cfg.data`)."""
    t = cfg.trainer
    check_settings(cfg)
    check_trainer(t)
    check_best(t.best_metric, t.best_mode, EPOCH_METRICS)
    mesh = data_mesh()
    check_batch_size(t.batch_size, mesh)
    check_batch_size(t.eval_batch_size, mesh, "trainer.eval_batch_size")
    source = transfer.load_source(t.init_from) if t.get("init_from") else None
    auto_size.follow_model(cfg, source.card.spec if source is not None else None)  # data.image_size/channels=auto
    dataset = dataset or load_dataset(cfg.data)
    spec = models.InputSpec(models.input_size(cfg.model, dataset.image_shape[:2]), dataset.image_shape[2], dataset.num_classes)
    preprocess = make_preprocess(
        cfg.data, spec.size, *dataset.channel_stats(), streamed=getattr(dataset.train, "augments_in_workers", False)
    )
    check_augment(cfg.data.get("augment"), spec.channels)
    steps_per_epoch = len(dataset.train) // t.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"trainer.batch_size={t.batch_size} is larger than the {len(dataset.train)} training examples")
    compute_dtype = DTYPES[t.compute_dtype]
    if source is not None and source.card.model.get("channels"):  # a pruned source has fewer channels: build its shape
        with open_dict(cfg):
            cfg.model.channels = source.card.model["channels"]
    model = models.build(cfg.model, spec, t.seed, compute_dtype)
    if source is not None:
        transfer.copy_weights(model, source, t.get("head"), t.get("freeze") or [])
        preprocess = transfer.source_normalisation(preprocess, source, t.get("init_normalisation", "source"))
    accumulation = t.get("grad_accum_steps", 1)
    tx = transfer.partition_optimizer(
        optim.build(cfg.optimizer, max(steps_per_epoch // max(accumulation, 1), 1), t.epochs),
        nnx.state(model, nnx.Param),
        t.get("freeze") or [],
        t.get("head"),
        float(cfg.optimizer.get("backbone_lr_scale", 1.0)),
    )
    if t.get("ema_decay") is not None:
        tx = ema.with_ema(tx, float(t.ema_decay))
    tx = optim.accumulate(tx, accumulation)
    train_def, eval_def, params, model_state = split_model(model, t.get("freeze") or [])
    state = init_state(params, model_state, tx, mesh)
    return Experiment(cfg, mesh, dataset, spec, preprocess, model, tx, train_def, eval_def, state, compute_dtype)


def train_and_evaluate(
    cfg: DictConfig, run_dir: str | Path, experiment: Experiment | None = None, on_open: Callable[[], Any] | None = None
) -> dict[str, float]:
    """Train, validate each epoch, checkpoint, and evaluate the best checkpoint on the test split.

    A prebuilt `experiment` (e.g. a pruned model to fine-tune) is trained instead of building one
    from `cfg`; it is left holding the best checkpoint's state. `on_open` runs once the run
    directory has passed its checks (the job marks itself running there)."""
    distributed.initialize(cfg.trainer)
    t = cfg.trainer
    exp = experiment or build_experiment(cfg)
    weights = {"weights": t.eval_weights, "ema_decay": t.ema_decay} if t.get("ema_decay") is not None else {}
    run = RunDirectory(cfg, run_dir, exp.state, t.best_metric, t.best_mode, card=exp.card(**weights), on_open=on_open)
    try:
        summary = _train(exp, run)
    except BaseException:
        run.close("FAILED")
        raise
    run.close()
    return summary


def _report_bad_files(dataset: Dataset, run: RunDirectory) -> str:
    """Write `data_errors.txt` (every unreadable file and why) and say the count in the epoch line.

    Each process meets the bad files of its own shard: process 0 gathers every process's list, and keeps
    those a resumed run's earlier part listed (it may not read them again)."""
    if dataset.bad_files is None:
        return ""
    texts = distributed.gather_text(dataset.bad_files.text())
    listed = run.dir / "data_errors.txt"
    if run.main and listed.exists():
        texts.append(listed.read_text())
    found = BadFiles.from_lines(line for text in texts for line in text.splitlines())
    if not found:
        return ""
    if run.main:
        found.write(listed)
    return f" | {len(found)} unreadable file(s) skipped, listed in data_errors.txt"


def _train(exp: Experiment, run: RunDirectory) -> dict[str, float]:
    cfg, t = exp.cfg, exp.cfg.trainer
    mesh, dataset, state, compute_dtype = exp.mesh, exp.dataset, run.state, exp.compute_dtype
    on_device = cfg.data.get("on_device")
    train_loader, val_loader, test_loader = (loader_for(s, mesh, on_device) for s in (dataset.train, dataset.val, dataset.test))
    log.info(
        "%s on %s: %s parameters, %d train / %d val / %d test examples, %d device(s)",
        cfg.model.name,
        dataset.name,
        f"{exp.num_params:,}",
        len(dataset.train),
        len(dataset.val),
        len(dataset.test),
        mesh.size,
    )
    mix = batch_mix(cfg.data.augment, dataset.num_classes, t.label_smoothing)
    augment = image_augment(cfg.data.augment, exp.preprocess.mean, exp.preprocess.std, exp.spec.channels)
    train_step = make_train_step(
        exp.train_def, exp.tx, exp.preprocess, mesh, t.seed, t.label_smoothing, compute_dtype, mix, augment
    )
    predict = make_predict(exp.eval_def, exp.preprocess, mesh, compute_dtype)
    if t.get("profile") and run.main:
        train_step = TracedSteps(train_step, run.dir / "profile", count=int(t.get("profile_steps", 5)))
        log.info("profiling training steps 3-%d into %s", 2 + train_step.count, train_step.trace_dir)
    input_warned = False
    stopping = early_stopping.settings(t)
    stopped = early_stopping.decide(stopping, run.metrics.records)  # a resumed run that had stopped stays stopped
    for epoch in range(run.epoch + 1, t.epochs + 1):
        if stopped:
            break
        state, record = train_epoch(train_step, state, train_loader, cfg, epoch, run, dataset.num_classes)
        params = ema.eval_params(t, state)
        record.update(evaluate(predict, params, state.model_state, val_loader, t.eval_batch_size).metrics("val"))
        run.end_epoch(int(state.step), epoch, state, record)
        log.info(
            "epoch %d/%d  train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.0f img/s, input_wait %.0f%%%s",
            epoch,
            t.epochs,
            record["train/loss"],
            record["train/accuracy"],
            record["val/loss"],
            record["val/accuracy"],
            record["train/samples_per_s"],
            100 * record["time/input_wait"],
            _report_bad_files(dataset, run),
        )
        warning = None if input_warned else input_wait_warning(record["time/input_wait"])
        if warning:
            log.warning(warning)
            input_warned = True
        if t.get("live_plot") and run.main:  # curves.png (and the trackers' copy) current after every epoch
            plots.learning_curves(run.metrics.records, run.dir / "curves.png")
            if run.trackers is not None:
                run.trackers.log_images(int(state.step), {"curves": run.dir / "curves.png"})
        stopped = early_stopping.decide(stopping, run.metrics.records)
        if stopped:
            log.info("early stopping after epoch %d: %s", stopped["epoch"], stopped["reason"])
    if isinstance(train_step, TracedSteps):
        train_step.finish()

    best = run.ckpts.select_step("best")
    if best != int(state.step):
        state, _ = run.ckpts.restore(best, state)
    exp.state = state
    test = evaluate(predict, ema.eval_params(t, state), state.model_state, test_loader, t.eval_batch_size)
    summary = {**test.metrics("test"), "best_step": best, "epochs": run.epoch, "parameters": exp.num_params}
    if stopped:
        summary["stopped_early"] = stopped
    run.metrics.write(int(state.step), epoch=run.epoch, **test.metrics("test"))
    best_val = [r for r in run.metrics.records if r["step"] == best and t.best_metric in r]
    if best_val:
        summary[f"best_{t.best_metric}"] = best_val[0][t.best_metric]
    if run.main:
        summary.update(write_evaluation(run.dir, test, dataset.test.subset(test.ids).images, dataset.class_names))
        plots.learning_curves(run.metrics.records, run.dir / "curves.png")
        run.write_results(summary)
        write_summary(run.dir, run.metrics.records, summary)
        if run.trackers is not None:
            run.trackers.log_images(int(state.step), tracking.figures(run.dir))
            run.trackers.log_artifacts(tracking.run_artifacts(run.dir, best))
    log.info(
        "test accuracy %.4f (loss %.4f), best checkpoint step %s; run directory %s%s",
        test.accuracy,
        test.loss,
        best,
        run.dir,
        _report_bad_files(dataset, run),
    )
    return summary
