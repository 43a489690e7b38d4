"""`jaxdl-autoencoder`: train a convolutional (or sparse) autoencoder; its encoder is a feature extractor.

    jaxdl-autoencoder data=fashion_mnist autoencoder=sparse trainer.epochs=5
    jaxdl-features run_dir=RUN_DIR layer=encoder        # code -> SVM accuracy

Loss: mean squared reconstruction error of pixels in [0, 1], plus `sparsity` x the
mean absolute code activation. Each epoch writes `reconstructions/epoch_NNN.png`
(validation images on top, reconstructions below); the end, `reconstructions.png`
of test images and `results.json` with the test error.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from omegaconf import DictConfig

from jaxdl import optim, watchdog
from jaxdl.apps import hydra_app
from jaxdl.data import Dataset, load_dataset
from jaxdl.data.pipeline import Loader, Preprocess
from jaxdl.errors import ConfigError
from jaxdl.apps.image_grid import save_grid
from jaxdl.artifacts import run_config
from jaxdl.rundir import RunDirectory, mean_metrics, restore_finished
from jaxdl.models import InputSpec
from jaxdl.models.autoencoder import build_autoencoder
from jaxdl.parallel import batch_sharded, check_batch_size, data_mesh, replicated
from jaxdl.steps import TrainState, init_state, split_model

log = logging.getLogger("jaxdl")
BEST = ("val/mse", "min")


@dataclasses.dataclass
class AutoencoderRun:
    """What feature extraction and evaluation need: the model, its input scaling, the data and the state."""

    cfg: DictConfig
    mesh: Mesh
    dataset: Dataset
    model: nnx.Module
    preprocess: Preprocess
    tx: optax.GradientTransformation
    train_def: nnx.GraphDef
    eval_def: nnx.GraphDef
    state: TrainState


def build_autoencoder_run(cfg: DictConfig) -> AutoencoderRun:
    t = cfg.trainer
    mesh = data_mesh()
    check_batch_size(t.batch_size, mesh)
    dataset = load_dataset(cfg.data)
    steps_per_epoch = len(dataset.train) // t.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"trainer.batch_size={t.batch_size} is larger than the {len(dataset.train)} training examples")
    h, w, c = dataset.image_shape
    model = build_autoencoder(cfg.autoencoder, InputSpec((h, w), c, dataset.num_classes), t.seed)
    preprocess = Preprocess(size=(h, w), mean=(0.0,) * c, std=(1.0,) * c)  # pixels in [0, 1], the decoder's range
    tx = optim.build(cfg.optimizer, steps_per_epoch, t.epochs)
    train_def, eval_def, params, rest = split_model(model)
    return AutoencoderRun(cfg, mesh, dataset, model, preprocess, tx, train_def, eval_def, init_state(params, rest, tx, mesh))


def make_steps(run: AutoencoderRun) -> tuple[Callable, Callable]:
    """Jitted `train_step(state, images) -> (state, metrics)` and `reconstruct(params, rest, images) -> (recon, code)`."""
    sparsity = float(run.cfg.autoencoder.get("sparsity") or 0.0)
    preprocess = run.preprocess

    def train_step(state: TrainState, images: jax.Array):
        x = preprocess(images)

        def loss_fn(params):
            model = nnx.merge(run.train_def, params, state.model_state, copy=True)
            code = model.encoder(x)
            mse = jnp.mean((model.decoder(code) - x) ** 2)
            l1 = jnp.mean(jnp.abs(code))
            return mse + sparsity * l1, (mse, l1, jnp.mean(code > 0), nnx.state(model, nnx.Not(nnx.Param)))

        (loss, (mse, l1, active, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = run.tx.update(grads, state.opt_state, state.params)
        metrics = {"loss": loss, "mse": mse, "code_l1": l1, "code_active": active}
        return TrainState(state.step + 1, optax.apply_updates(state.params, updates), rest, opt_state), metrics

    def reconstruct(params, rest, images):
        model = nnx.merge(run.eval_def, params, rest)
        code = model.encoder(preprocess(images))
        return model.decoder(code), code

    data, rep = batch_sharded(run.mesh), replicated(run.mesh)
    return (
        jax.jit(train_step, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=0),
        jax.jit(reconstruct, in_shardings=(rep, rep, data), out_shardings=(data, data)),
    )


def reconstruction_error(reconstruct, state: TrainState, loader: Loader, batch_size: int) -> dict[str, float]:
    """Mean squared error and fraction of active code units over a whole split."""
    sq, active, count = 0.0, 0.0, 0
    for images, _, ids in watchdog.beating(loader.eval_batches(batch_size)):
        keep = ids >= 0  # padding rows are -1
        recon, code = jax.device_get(reconstruct(state.params, state.model_state, images))
        x = np.asarray(images, np.float32)[keep] / 255.0
        sq += float(np.sum(np.mean((recon[keep] - x) ** 2, axis=(1, 2, 3))))
        active += float(np.sum(np.mean(code[keep] > 0, axis=1)))
        count += int(keep.sum())
    return {"mse": sq / count, "code_active": active / count}


def save_reconstructions(reconstruct, state: TrainState, images: np.ndarray, path: Path, columns: int = 8) -> None:
    """Originals (top row) above their reconstructions (bottom row)."""
    recon, _ = reconstruct(state.params, state.model_state, images[:columns])
    recon = np.clip(np.round(np.asarray(recon) * 255), 0, 255).astype(np.uint8)
    save_grid(np.concatenate([images[:columns], recon]), path, columns)


def train_autoencoder(cfg: DictConfig, run_dir: str | Path) -> dict[str, float]:
    t = cfg.trainer
    exp = build_autoencoder_run(cfg)
    run = RunDirectory(cfg, run_dir, exp.state, *BEST)
    state = run.state
    train_step, reconstruct = make_steps(exp)
    on_device = cfg.data.get("on_device")
    train, val, test = (Loader(s, exp.mesh, on_device) for s in (exp.dataset.train, exp.dataset.val, exp.dataset.test))
    log.info(
        "autoencoder %s on %s: %s parameters",
        cfg.autoencoder.name,
        exp.dataset.name,
        f"{sum(x.size for x in jax.tree.leaves(state.params)):,}",
    )
    for epoch in range(run.epoch + 1, t.epochs + 1):
        pending = []
        for images, _ in run.progress(train.train_batches(t.batch_size, t.seed, epoch), len(train) // t.batch_size, epoch):
            state, metrics = train_step(state, images)
            pending.append(metrics)
        record = {f"train/{k}": v for k, v in mean_metrics(pending).items()}
        record.update({f"val/{k}": v for k, v in reconstruction_error(reconstruct, state, val, t.eval_batch_size).items()})
        save_reconstructions(reconstruct, state, exp.dataset.val.images, run.dir / "reconstructions" / f"epoch_{epoch:03d}.png")
        run.end_epoch(int(state.step), epoch, state, record)
        log.info(
            "epoch %d/%d  train mse %.5f  code L1 %.4f | val mse %.5f  active code units %.2f",
            epoch,
            t.epochs,
            record["train/mse"],
            record["train/code_l1"],
            record["val/mse"],
            record["val/code_active"],
        )
    best = run.ckpts.select_step("best")
    if best != int(state.step):
        state, _ = run.ckpts.restore(best, state)
    summary = {f"test/{k}": v for k, v in reconstruction_error(reconstruct, state, test, t.eval_batch_size).items()}
    summary["best_step"] = best
    save_reconstructions(reconstruct, state, exp.dataset.test.images, run.dir / "reconstructions.png")
    run.write_results(summary)
    run.close()
    log.info("test reconstruction mse %.5f; run directory %s", summary["test/mse"], run.dir)
    return summary


def is_autoencoder_run(run_dir: str | Path) -> bool:
    path = Path(run_dir) / "config.yaml"
    return path.exists() and "autoencoder" in run_config(Path(run_dir))


def load_autoencoder_run(run_dir: str | Path, which: str | int = "best") -> AutoencoderRun:
    """A `jaxdl-autoencoder` run with its best checkpoint loaded into `model` (eval mode)."""
    run = build_autoencoder_run(run_config(Path(run_dir)))
    run.state, _ = restore_finished(run_dir, run.state, *BEST, which=which)
    nnx.update(run.model, run.state.params, run.state.model_state)
    run.model.eval()
    return run


main = hydra_app("autoencoder_train", train_autoencoder)


if __name__ == "__main__":
    main()
