"""Activations and gradients of any named layer, without model surgery.

A layer is a submodule path (`conv2`, `hidden.0`, `blocks.3`) or a submodule's
method (`features`). Inside the jitted function the model is merged afresh
from its (graphdef, state) and the target modules of that throwaway copy get a
subclass whose call returns `output + delta`: the gradient with respect to the
zero `delta` is the gradient with respect to the layer's output. The user's
model object is never touched.

One forward and one backward pass give per-image gradients for per-image
targets: a vjp with one-hot cotangents on the pre-softmax logits.

The model's weights are replicated over the core's data mesh and every batch the
model sees is split over it, as in training: LIME's samples, SHAP's evaluations,
Score-CAM's masked inputs and occlusion's occluded copies run on every device.
Batches are padded to a multiple of the device count and the padding dropped.
On a CPU this is on when XLA's thread pools are sized for the devices (`SHARD_ON_CPU`):
with 2 XLA CPU devices (jax 0.10.2) and XLA's default threads a LIME call on 64 images
x 1,000 samples hung (no CPU used, no error); with the threads jaxdl's apps set, LIME and
Integrated Gradients passed 200 of 200 stress runs each under load; see experiments/RESULTS.md.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh

from jaxdl import watchdog
from jaxdl.cpu_devices import THREADS_PER_DEVICE
from jaxdl.parallel import batch_sharded, data_mesh, put_replicated
from xai.explain.inputs import ExplainError, check_images, check_targets

Preprocess = Callable[[jax.Array], jax.Array]


def layer_names(model: nnx.Module) -> list[str]:
    """Every submodule path of `model` that can be a target layer, e.g. ['conv1', 'conv2', 'head']."""
    return [".".join(map(str, path)) for path, _ in nnx.iter_modules(model) if path]


def _resolve(model: nnx.Module, layer: str) -> tuple[tuple, str]:
    """(module path, method name) of a layer name; a bad name lists the valid ones."""
    parts = layer.split(".")
    node: Any = model
    for i, part in enumerate(parts):
        child = node[int(part)] if part.isdigit() else getattr(node, part, None)
        if isinstance(child, nnx.Module):
            node = child
            continue
        if i == len(parts) - 1 and callable(child) and isinstance(node, nnx.Module) and hasattr(type(node), part):
            return tuple(int(p) if p.isdigit() else p for p in parts[:-1]), part
        break
    else:
        return tuple(int(p) if p.isdigit() else p for p in parts), "__call__"
    raise ExplainError(f"model {type(model).__name__} has no layer '{layer}'; valid layers: {', '.join(layer_names(model))}")


def _module_at(model: nnx.Module, path: tuple) -> nnx.Module:
    for part in path:
        model = model[part] if isinstance(part, int) else getattr(model, part)
    return model


def _select(output: Any, index: int | None) -> jax.Array:
    if index is not None:
        return output[index]
    if not isinstance(output, jax.Array):
        raise ExplainError(f"the layer returns a {type(output).__name__}, not an array; pass output_index to pick one element")
    return output


def _install_tap(module: nnx.Module, method: str, tap: Callable[[jax.Array], jax.Array], index: int | None) -> None:
    """Give this one module instance a subclass whose `method` passes its output through `tap`."""
    original = getattr(type(module), method)

    @functools.wraps(original)
    def tapped(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if index is None:
            return tap(out)
        items = list(out)
        items[index] = tap(items[index])
        return type(out)(items)

    module.__class__ = type(f"Tapped{type(module).__name__}", (type(module),), {method: tapped})


# Split explainer batches over several XLA CPU devices (see the module docstring): True / False force it; None
# (the default) splits when XLA's thread pools are sized for the devices (PJRT_NPROC or NPROC at least
# THREADS_PER_DEVICE per device, as jaxdl's apps set them: jaxdl/cpu_devices.py). So sized, LIME and Integrated
# Gradients on 2 devices passed 200 of 200 stress runs each under load (issue 24's rule for a CPU default;
# RESULTS.md); with XLA's own thread count LIME hung on its first run.
SHARD_ON_CPU: bool | None = None


def _cpu_threads_sized(devices: int) -> bool:
    value = os.environ.get("PJRT_NPROC") or os.environ.get("NPROC") or ""
    return value.isdigit() and int(value) >= THREADS_PER_DEVICE * devices


def explain_mesh() -> Mesh:
    """Every device (GPUs, TPUs; CPUs whose XLA threads are sized for them, see SHARD_ON_CPU), else the first alone."""
    shard_cpu = _cpu_threads_sized(jax.device_count()) if SHARD_ON_CPU is None else SHARD_ON_CPU
    if jax.default_backend() != "cpu" or shard_cpu:
        return data_mesh()
    return jax.make_mesh((1,), ("data",), axis_types=(AxisType.Auto,), devices=jax.devices()[:1])


def shard_batch(x: jax.Array, mesh: Mesh) -> jax.Array:
    """`x` with its leading (batch) axis split over the mesh's devices, when it divides evenly (else as is)."""
    devices = mesh.devices.size
    if devices == 1 or x.ndim == 0 or x.shape[0] % devices:
        return x
    return jax.lax.with_sharding_constraint(x, batch_sharded(mesh))


def pad_to_multiple(x: jax.Array, multiple: int) -> jax.Array:
    """`x` with copies of its first row appended until its length is a multiple of `multiple`."""
    extra = -len(x) % multiple
    return jnp.concatenate([x, jnp.repeat(x[:1], extra, axis=0)]) if extra else x


@dataclasses.dataclass(frozen=True)
class Forward:
    """The pure model function `(state, images, deltas) -> (logits, activations)` for a set of layers."""

    graphdef: nnx.GraphDef
    taps: tuple[tuple[tuple, str], ...]
    preprocess: Preprocess | None
    output_index: int | None
    mesh: Mesh

    def __call__(self, state: nnx.State, images: jax.Array, deltas: Sequence[jax.Array] | None, calls: list | None = None):
        model = nnx.merge(self.graphdef, state)
        acts: list = [None] * len(self.taps)
        for i, (path, method) in enumerate(self.taps):

            def tap(out, i=i):
                if calls is not None:  # discovering layers: record every call, arrays or not
                    calls.append(i)
                    acts[i] = out
                    return out
                out = _select(out, None)
                out = out if deltas is None else out + deltas[i].astype(out.dtype)
                acts[i] = out
                return out

            _install_tap(_module_at(model, path), method, tap, self.output_index)
        images = shard_batch(images, self.mesh)
        x = images if self.preprocess is None else self.preprocess(images)
        logits = model(x).astype(jnp.float32)
        missing = [i for i, a in enumerate(acts) if a is None]
        if missing and calls is None:
            raise ExplainError(f"layer(s) {missing} were not called in the model's forward pass; pick a layer the model uses")
        return logits, acts


class Probe:
    """Jitted logits, activations and gradients of named layers of an NNX classifier.

    `preprocess` maps the explained images (float NHWC in [0, 1]) to the model's input,
    so maps live in the image space the user sees.
    """

    def __init__(
        self,
        model: nnx.Module,
        layers: str | Sequence[str] = (),
        preprocess: Preprocess | None = None,
        output_index: int | None = None,
        num_classes: int | None = None,
    ):
        self.layers = (layers,) if isinstance(layers, str) else tuple(layers)
        taps = tuple(_resolve(model, name) for name in self.layers)
        self.mesh = explain_mesh()
        graphdef, state = nnx.split(model)
        self.state = put_replicated(state, self.mesh)
        self.fn = Forward(graphdef, taps, preprocess, output_index, self.mesh)
        self.num_classes = num_classes
        self._shapes: dict[tuple[int, ...], list] = {}  # images.shape -> layer output shapes
        self._logits = jax.jit(lambda state, x: self.fn(state, x, None)[0])
        self._acts = jax.jit(lambda state, x: self.fn(state, x, None))
        self._grads = jax.jit(self._activations_and_grads, static_argnames="score")

    def check(self, images: Any) -> jax.Array:
        """Validated float images; an image shape the model cannot take is a one-line error."""
        images = check_images(images)
        if images.shape not in self._shapes:  # trace once per batch shape, not once per call
            try:
                logits, acts = jax.eval_shape(self._acts, self.state, images)
            except (TypeError, ValueError) as err:
                raise ExplainError(
                    f"the model cannot take images of shape {tuple(images.shape[1:])} (H, W, C): {str(err).splitlines()[0]}"
                ) from None
            self._shapes[images.shape] = acts
            self.num_classes = self.num_classes or int(logits.shape[-1])
        return images

    def calls(self, images: Any) -> list[tuple[str, tuple[int, ...]]]:
        """(layer, output shape) of the probed layers the forward pass calls, in the order it first calls them."""
        order: list = []
        _, acts = jax.eval_shape(lambda state, x: self.fn(state, x, None, order), self.state, check_images(images))
        return [(self.layers[i], tuple(getattr(acts[i], "shape", ()))) for i in dict.fromkeys(order)]

    @property
    def devices(self) -> int:
        """How many devices a batch is split over."""
        return self.mesh.devices.size

    def logits(self, images: Any, batch_size: int | None = None) -> jax.Array:
        """Logits of a batch, in chunks of `batch_size` to bound memory, each split over the devices."""
        images = self.check(images)
        step = len(images) if batch_size is None else max(1, batch_size)
        chunks = [images[i : i + step] for i in range(0, len(images), step)]
        out = []
        for chunk in chunks:
            watchdog.beat()  # an explain batch: progress for the stall watchdog (jaxdl/watchdog.py)
            out.append(self._logits(self.state, pad_to_multiple(chunk, self.devices))[: len(chunk)])
        return out[0] if len(out) == 1 else jnp.concatenate(out)

    def activations(self, images: Any) -> tuple[jax.Array, list[jax.Array]]:
        return self._acts(self.state, self.check(images))

    def activations_and_grads(self, images: Any, targets: Any, score: str = "logit"):
        """(logits, activations, gradients of each image's target score w.r.t. each layer output).

        A target of -1 (or `targets=None`) means the model's predicted class.
        """
        images = self.check(images)
        targets = check_targets(targets, len(images), self.num_classes)
        return self._grads(self.state, images, targets, score=score)

    def _activations_and_grads(self, state, images, targets, score: str = "logit"):
        """Pure version of `activations_and_grads`, to be called inside a larger jitted function."""
        zeros = [jnp.zeros(s.shape, s.dtype) for s in self._shapes[images.shape]]  # known from `check`

        def scores(deltas, state):  # the state is a primal so the merged model lives in the vjp's trace
            logits, acts = self.fn(state, images, deltas)
            out = {"logit": logits, "softmax": jax.nn.softmax(logits), "log_softmax": jax.nn.log_softmax(logits)}[score]
            return out, (logits, acts)

        _, vjp, (logits, acts) = jax.vjp(scores, zeros, state, has_aux=True)
        targets = resolve_targets(targets, logits)
        grads, _ = vjp(jax.nn.one_hot(targets, logits.shape[-1], dtype=logits.dtype))  # state cotangent: dead code
        return logits, acts, grads


def map_chunks(fn: Callable[[nnx.State, Any], Any], state: nnx.State, xs: Any, chunk: int, multiple: int = 1) -> Any:
    """`fn(state, xs[i:i + chunk])` over the leading axis of the pytree `xs`, as one `lax.scan`, concatenated.

    The state rides along as the scan's carry, so a model merged inside `fn` lives in the
    scan's own trace: modules that update RNG counts while running (nnx.RNN) require that.
    `multiple`: the chunk is rounded up to a multiple of it (the device count, so every chunk splits evenly).
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    chunk = -(-max(1, min(chunk, n)) // multiple) * multiple
    padded = -(-n // chunk) * chunk
    pad = lambda x: jnp.concatenate([x, jnp.repeat(x[:1], padded - n, axis=0)]) if padded > n else x
    chunks = jax.tree.map(lambda x: pad(x).reshape(padded // chunk, chunk, *x.shape[1:]), xs)
    _, out = jax.lax.scan(lambda st, x: (st, fn(st, x)), state, chunks)
    return jax.tree.map(lambda y: y.reshape(padded, *y.shape[2:])[:n], out)


def resolve_targets(targets: jax.Array, logits: jax.Array) -> jax.Array:
    """Targets with -1 replaced by the predicted class (traceable)."""
    return jnp.where(targets < 0, jnp.argmax(logits, -1), targets)


def predict_fn(
    probe: Probe, batch_size: int = 1024, softmax: bool = True, fixed_batch: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy `images -> probabilities` function for the reference packages (lime, shap).

    Batches are padded to a power of two (at most `batch_size`), so the ragged batch sizes
    those packages send compile a handful of times, not once per size; `fixed_batch=True`
    pads every call to a multiple of `batch_size`, so the model compiles exactly once.
    """

    def predict(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        n = len(images)
        if fixed_batch or n > batch_size:
            padded = -(-n // batch_size) * batch_size
        else:
            padded = min(1 << max(n - 1, 0).bit_length(), batch_size)
        images = np.concatenate([images, np.repeat(images[:1], padded - n, axis=0)])
        logits = probe.logits(images, batch_size)[:n]
        return np.asarray(jax.nn.softmax(logits) if softmax else logits)

    return predict
