"""The jitted train and eval steps: pure functions of (graphdef, state), state donated.

The NNX module is split once; inside jit it is merged only at trace time, so the
hot loop runs no NNX Python.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh

from jaxdl.augment import Mix
from jaxdl.image_augment import Augment
from jaxdl.data.pipeline import Preprocess
from jaxdl.parallel import batch_sharded, put_replicated, replicated
from jaxdl.trees import module_at


class TrainState(struct.PyTreeNode):
    """Everything training changes: checkpointing this pytree is enough to resume exactly."""

    step: jax.Array
    params: nnx.State
    model_state: nnx.State  # batch statistics, dropout RNG counters
    opt_state: optax.OptState


def split_model(model: nnx.Module, frozen: Sequence[str] = ()) -> tuple[nnx.GraphDef, nnx.GraphDef, nnx.State, nnx.State]:
    """(train graphdef, eval graphdef, params, other state) of a model.

    The `frozen` layers stay in inference mode while training: their batch norms normalise with,
    and keep, the running statistics they were given (a frozen pretrained backbone stays itself)."""
    model.train()
    for layer in frozen:
        module = module_at(model, layer)
        if module is not None:
            module.eval()
    train_def, params, model_state = nnx.split(model, nnx.Param, ...)
    model.eval()
    eval_def = nnx.graphdef(model)
    return train_def, eval_def, params, model_state


def init_state(params: nnx.State, model_state: nnx.State, tx: optax.GradientTransformation, mesh: Mesh) -> TrainState:
    state = TrainState(jnp.zeros((), jnp.int32), params, model_state, tx.init(params))
    return put_replicated(state, mesh)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy in float32, with optional label smoothing."""
    targets = jax.nn.one_hot(labels, logits.shape[-1])
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def make_train_step(
    train_def: nnx.GraphDef,
    tx: optax.GradientTransformation,
    preprocess: Preprocess,
    mesh: Mesh,
    seed: int,
    label_smoothing: float = 0.0,
    compute_dtype: Any = jnp.float32,
    mix: Mix | None = None,
    augment: Augment | None = None,
) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, dict]]:
    """A jitted `(state, images_u8, labels) -> (state, {loss_sum, correct, count})`.

    `augment` (jaxdl.image_augment: RandAugment, random erasing) changes each normalised image, in float32;
    `mix` (jaxdl.augment: mixup / cutmix) then turns the batch and labels into mixed images and soft targets,
    label smoothing included; both draw from the step's key."""
    augment_key = jax.random.key(seed)

    def step(state: TrainState, images: jax.Array, labels: jax.Array):
        key = jax.random.fold_in(augment_key, state.step)
        x = preprocess(images, key)
        if augment is not None:
            x = augment(jax.random.fold_in(key, 2), x)
        x = x.astype(compute_dtype)
        targets = None
        if mix is not None:
            x, targets = mix(jax.random.fold_in(key, 1), x, labels)

        def loss_fn(params):
            # copy=True: fresh Variables at this trace level, so dropout may advance its RNG count
            model = nnx.merge(train_def, params, state.model_state, copy=True)
            logits = model(x)
            if targets is None:
                loss = cross_entropy(logits, labels, label_smoothing).mean()
            else:
                loss = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()
            return loss, (logits, nnx.state(model, nnx.Not(nnx.Param)))

        (loss, (logits, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss_sum": loss * labels.shape[0],
            "correct": jnp.sum(jnp.argmax(logits, -1) == labels),
            "count": jnp.asarray(labels.shape[0]),
        }
        return TrainState(state.step + 1, params, model_state, opt_state), metrics

    data, rep = batch_sharded(mesh), replicated(mesh)
    return jax.jit(step, in_shardings=(rep, data, data), out_shardings=(rep, rep), donate_argnums=0)


def make_predict(eval_def: nnx.GraphDef, preprocess: Preprocess, mesh: Mesh, compute_dtype: Any = jnp.float32):
    """A jitted `(params, model_state, images_u8) -> float32 logits` in eval mode."""

    def predict(params, model_state, images):
        model = nnx.merge(eval_def, params, model_state)
        return model(preprocess(images).astype(compute_dtype)).astype(jnp.float32)

    data, rep = batch_sharded(mesh), replicated(mesh)
    return jax.jit(predict, in_shardings=(rep, rep, data), out_shardings=data)
