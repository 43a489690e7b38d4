"""`jaxdl-gan`: train a (conditional) DCGAN with alternating discriminator and generator steps.

    jaxdl-gan data=fashion_mnist gan=cdcgan trainer.epochs=10 quality.classifier=runs/fashion_mnist-lenet5/...

Each step is one discriminator update (real batch vs generated batch) then one
generator update (non-saturating loss), both jitted pure functions of the split
state. Both networks and both optimiser states are one Orbax checkpoint, so a
re-run in the same directory resumes exactly. Every epoch writes a sample grid
(`samples/epoch_NNN.png`, one row per class for a conditional GAN) and, with
`quality.classifier`, the Fréchet distance of generated to real test images in
that classifier's feature space.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh
from omegaconf import DictConfig

from jaxdl import optim
from jaxdl.apps import hydra_app
from jaxdl.data import Dataset, load_dataset
from jaxdl.data.pipeline import Loader
from jaxdl.errors import ConfigError, DataError
from jaxdl.apps.image_grid import save_grid, to_uint8
from jaxdl.rundir import RunDirectory, mean_metrics
from jaxdl.models import InputSpec
from jaxdl.models.dcgan import GAN, build_gan
from jaxdl.parallel import batch_sharded, check_batch_size, data_mesh, replicated
from jaxdl.steps import TrainState, init_state, split_model

log = logging.getLogger("jaxdl")
GENERATE_BATCH = 500  # noise vectors per generator call: bounds device memory at any sample count


class GANState(struct.PyTreeNode):
    """Generator and discriminator, each with its parameters, batch statistics, optimiser state and step."""

    g: TrainState
    d: TrainState


@dataclasses.dataclass
class GANExperiment:
    cfg: DictConfig
    mesh: Mesh
    dataset: Dataset
    gan: GAN
    g_defs: tuple[nnx.GraphDef, nnx.GraphDef]  # (train, eval)
    d_def: nnx.GraphDef
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    state: GANState

    @property
    def conditional(self) -> bool:
        return self.gan.generator.conditional

    @property
    def latent_dim(self) -> int:
        return self.gan.generator.latent_dim


def build_gan_experiment(cfg: DictConfig) -> GANExperiment:
    """Data, both networks, both Adam optimisers and the initial state, from a composed `gan_train` config."""
    t = cfg.trainer
    mesh = data_mesh()
    check_batch_size(t.batch_size, mesh)
    dataset = load_dataset(cfg.data)
    if dataset.train.images.dtype != np.uint8:
        raise DataError(
            f"a GAN generates images: data '{dataset.name}' holds {dataset.train.images.dtype} signals, not uint8 pixels"
        )
    steps_per_epoch = len(dataset.train) // t.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"trainer.batch_size={t.batch_size} is larger than the {len(dataset.train)} training examples")
    h, w, c = dataset.image_shape
    gan = build_gan(cfg.gan, InputSpec((h, w), c, dataset.num_classes), t.seed)
    g_train, g_eval, g_params, g_rest = split_model(gan.generator)
    d_train, _, d_params, d_rest = split_model(gan.discriminator)
    g_tx = optim.build(cfg.optimizer, steps_per_epoch, t.epochs)
    d_tx = optim.build(cfg.optimizer, steps_per_epoch, t.epochs)
    state = GANState(init_state(g_params, g_rest, g_tx, mesh), init_state(d_params, d_rest, d_tx, mesh))
    return GANExperiment(cfg, mesh, dataset, gan, (g_train, g_eval), d_train, g_tx, d_tx, state)


def _to_unit(images: jax.Array) -> jax.Array:
    return images.astype(jnp.float32) / 127.5 - 1.0


def _apply(tx, grads, train: TrainState, params_state: nnx.State) -> TrainState:
    updates, opt_state = tx.update(grads, train.opt_state, train.params)
    return TrainState(train.step + 1, optax.apply_updates(train.params, updates), params_state, opt_state)


def make_gan_steps(exp: GANExperiment) -> tuple[Callable, Callable]:
    """Jitted `d_step(state, images, labels)` and `g_step(state, labels)`, each `-> (state, metrics)`.

    Noise is a function of (seed, network, its step), so a resumed run draws the same noise.
    """
    g_def, d_def, conditional, latent = exp.g_defs[0], exp.d_def, exp.conditional, exp.latent_dim
    key = jax.random.key(exp.cfg.trainer.seed)

    def noise(train: TrainState, salt: int, n: int) -> jax.Array:
        return jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, salt), train.step), (n, latent))

    def d_step(state: GANState, images: jax.Array, labels: jax.Array):
        cond = labels if conditional else None
        fake = nnx.merge(g_def, state.g.params, state.g.model_state)(noise(state.d, 0, labels.shape[0]), cond)
        fake = jax.lax.stop_gradient(fake)

        def loss_fn(params):
            d = nnx.merge(d_def, params, state.d.model_state, copy=True)
            real_logits, fake_logits = d(_to_unit(images), cond), d(fake, cond)
            loss = jax.nn.softplus(-real_logits).mean() + jax.nn.softplus(fake_logits).mean()
            return loss, (real_logits, fake_logits, nnx.state(d, nnx.Not(nnx.Param)))

        (loss, (real_logits, fake_logits, d_rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d.params)
        metrics = {"d_loss": loss, "d_real": jax.nn.sigmoid(real_logits).mean(), "d_fake": jax.nn.sigmoid(fake_logits).mean()}
        return state.replace(d=_apply(exp.d_tx, grads, state.d, d_rest)), metrics

    def g_step(state: GANState, labels: jax.Array):
        cond = labels if conditional else None
        z = noise(state.g, 1, labels.shape[0])

        def loss_fn(params):
            g = nnx.merge(g_def, params, state.g.model_state, copy=True)
            fake_logits = nnx.merge(d_def, state.d.params, state.d.model_state, copy=True)(g(z, cond), cond)
            return jax.nn.softplus(-fake_logits).mean(), nnx.state(g, nnx.Not(nnx.Param))

        (loss, g_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g.params)
        return state.replace(g=_apply(exp.g_tx, grads, state.g, g_rest)), {"g_loss": loss}

    data, rep = batch_sharded(exp.mesh), replicated(exp.mesh)
    return (
        jax.jit(d_step, in_shardings=(rep, data, data), out_shardings=(rep, rep), donate_argnums=0),
        jax.jit(g_step, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=0),
    )


def make_generate(exp: GANExperiment) -> Callable[[GANState, np.ndarray, np.ndarray], np.ndarray]:
    """`(state, z, labels) -> uint8 images` from the generator in eval mode (running batch statistics)."""
    g_eval, conditional = exp.g_defs[1], exp.conditional

    @jax.jit
    def generate(g: TrainState, z, labels):
        return nnx.merge(g_eval, g.params, g.model_state)(z, labels if conditional else None)

    def run(state: GANState, z: np.ndarray, labels: np.ndarray, batch_size: int = GENERATE_BATCH) -> np.ndarray:
        return np.concatenate(
            [to_uint8(generate(state.g, z[i : i + batch_size], labels[i : i + batch_size])) for i in range(0, len(z), batch_size)]
        )

    return run


def grid_inputs(exp: GANExperiment, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed noise for the per-epoch grid: one row per class if conditional, else a square."""
    rows = exp.dataset.num_classes if exp.conditional else columns
    labels = np.repeat(np.arange(rows) % exp.dataset.num_classes, columns).astype(np.int32)
    z = np.random.default_rng(exp.cfg.trainer.seed).standard_normal((rows * columns, exp.latent_dim)).astype(np.float32)
    return z, labels


def checkpoint_rank(cfg: DictConfig) -> tuple[str, str]:
    """The metric (and direction) that picks a GAN run's best checkpoint: FID when measured, else the last epoch."""
    return ("quality/fid", "min") if (cfg.get("quality") or {}).get("classifier") else ("epoch", "max")


def quality_space(cfg: DictConfig, dataset: Dataset):
    """The Fréchet-distance feature space with the real test images as reference, or None."""
    q = cfg.get("quality") or {}
    if not q.get("classifier"):
        return None
    from jaxdl.apps.frechet import FeatureSpace

    space = FeatureSpace(q.classifier, q.layer)
    space.set_reference(dataset.test.images[: q.num_samples])
    return space


def train_gan(cfg: DictConfig, run_dir: str | Path) -> dict[str, float]:
    """Train, write a sample grid and (optionally) the Fréchet distance each epoch, checkpoint, resume."""
    t = cfg.trainer
    exp = build_gan_experiment(cfg)
    run = RunDirectory(cfg, run_dir, exp.state, *checkpoint_rank(cfg))
    space = quality_space(cfg, exp.dataset)
    state = run.state
    d_step, g_step = make_gan_steps(exp)
    generate = make_generate(exp)
    grid_z, grid_labels = grid_inputs(exp, t.grid_columns)
    loader = Loader(exp.dataset.train, exp.mesh, cfg.data.get("on_device"))
    log.info(
        "%s on %s: generator %s / discriminator %s parameters, %d training images",
        cfg.gan.name,
        exp.dataset.name,
        *(f"{sum(x.size for x in jax.tree.leaves(s.params)):,}" for s in (state.g, state.d)),
        len(exp.dataset.train),
    )
    summary: dict[str, Any] = {}
    for epoch in range(run.epoch + 1, t.epochs + 1):
        pending = []
        for images, labels in run.progress(loader.train_batches(t.batch_size, t.seed, epoch), len(loader) // t.batch_size, epoch):
            state, d_metrics = d_step(state, images, labels)
            state, g_metrics = g_step(state, labels)
            pending.append({**d_metrics, **g_metrics})
        record = {f"train/{k}": v for k, v in mean_metrics(pending).items()}
        save_grid(generate(state, grid_z, grid_labels), run.dir / "samples" / f"epoch_{epoch:03d}.png", t.grid_columns)
        if space is not None:
            n = cfg.quality.num_samples
            z = np.random.default_rng([t.seed, 1]).standard_normal((n, exp.latent_dim)).astype(np.float32)
            record["quality/fid"] = space.distance(generate(state, z, exp.dataset.test.labels[:n]))
        run.end_epoch(int(state.d.step), epoch, state, record)
        log.info("epoch %d/%d  %s", epoch, t.epochs, "  ".join(f"{k.split('/')[-1]} {v:.4f}" for k, v in record.items()))
        summary = {**record, "epoch": epoch}
    fids = [r["quality/fid"] for r in run.metrics.records if "quality/fid" in r]
    if fids:
        summary["best_quality/fid"] = min(fids)
    run.write_results(summary)
    run.close()
    log.info("run directory %s", run.dir)
    return summary


main = hydra_app("gan_train", train_gan)


if __name__ == "__main__":
    main()
