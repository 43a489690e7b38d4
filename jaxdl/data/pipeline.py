"""Input pipeline: uint8 batches on the mesh, preprocessed and augmented inside the jitted step.

Small data sets live on the devices as uint8, so an epoch is a permutation of
indices and a gather: the host never feeds pixels and the step never starves.
Larger ones are gathered on the host and put on the mesh batch by batch.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxdl.data import auto_size
from jaxdl.data.base import Split
from jaxdl.errors import CheckpointError

ON_DEVICE_MAX_BYTES = 512 * 2**20
INPUT_WAIT_WARNING = 0.2  # the fraction of an epoch's step time spent waiting for input that earns a warning


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """Resize, normalise and (in training) augment an NHWC batch (uint8 pixels or float); traced inside jit."""

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "auto"  # auto | pad | bilinear | center_crop
    crop_padding: int = 0
    hflip: bool = False
    # center_crop (ImageNet evaluation, as torchvision's weight transforms): the shorter side is resized
    # to `resize_shorter` with `interpolation` (bilinear | bicubic), then the centre `size` is cut out.
    resize_shorter: int | None = None
    interpolation: str = "bilinear"

    def __call__(self, images: jax.Array, rng: jax.Array | None = None) -> jax.Array:
        x = images.astype(jnp.float32)
        if images.dtype == jnp.uint8:
            x = x / 255.0
        x = self._resize(x)
        x = (x - jnp.asarray(self.mean)) / jnp.asarray(self.std)
        if rng is not None:
            x = self._augment(x, rng)
        return x

    def _resize(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        th, tw = self.size
        if (h, w) == (th, tw):
            return x
        method = self.resize
        if method == "auto":  # pad small differences (28 -> 32, as LeNet did); interpolate the rest
            method = "pad" if 0 <= th - h <= 8 and 0 <= tw - w <= 8 else "bilinear"
        if method == "pad":
            top, left = (th - h) // 2, (tw - w) // 2
            return jnp.pad(x, ((0, 0), (top, th - h - top), (left, tw - w - left), (0, 0)))
        if method == "center_crop":
            rh, rw = shorter_side_size((h, w), self.resize_shorter or min(th, tw))
            x = jax.image.resize(x, (n, rh, rw, c), method=self.interpolation, antialias=True)
            top, left = center_crop_offsets((rh, rw), (th, tw))
            return x[:, top : top + th, left : left + tw]
        return jax.image.resize(x, (n, th, tw, c), method="bilinear", antialias=True)

    def _augment(self, x: jax.Array, rng: jax.Array) -> jax.Array:
        n, h, w, _ = x.shape
        crop_rng, flip_rng = jax.random.split(rng)
        if self.crop_padding:
            p = self.crop_padding
            padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            offsets = jax.random.randint(crop_rng, (n, 2), 0, 2 * p + 1)
            crop = lambda img, off: jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, x.shape[-1]))
            x = jax.vmap(crop)(padded, offsets)
        if self.hflip:
            flip = jax.random.bernoulli(flip_rng, 0.5, (n, 1, 1, 1))
            x = jnp.where(flip, x[:, :, ::-1, :], x)
        return x


def shorter_side_size(size: tuple[int, int], shorter: int) -> tuple[int, int]:
    """(H, W) with the shorter side `shorter` and the aspect kept, truncated as torchvision's `Resize(int)`."""
    h, w = size
    if h <= w:
        return shorter, int(shorter * w / h)
    return int(shorter * h / w), shorter


def center_crop_offsets(size: tuple[int, int], crop: tuple[int, int]) -> tuple[int, int]:
    """(top, left) of a centred `crop`, rounded as torchvision's `CenterCrop`."""
    return int(round((size[0] - crop[0]) / 2.0)), int(round((size[1] - crop[1]) / 2.0))


def make_preprocess(data_cfg: Any, size: tuple[int, int], mean, std, streamed: bool = False) -> Preprocess:
    """The `Preprocess` a data config asks for, with the training set's channel statistics.

    A streamed split is augmented in the input workers (random-resized crop, flip), not here."""
    augment = {} if streamed else auto_size.augment_settings(data_cfg.get("augment"), min(size))
    return Preprocess(
        size=tuple(size),
        mean=tuple(mean),
        std=tuple(std),
        resize=data_cfg.get("resize", "auto"),
        crop_padding=int(augment.get("crop_padding", 0)),
        hflip=bool(augment.get("hflip", False)),
    )


def epoch_order(num_examples: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """The (steps, batch) index matrix of one epoch: a function of (seed, epoch) only, so resume replays it."""
    rng = np.random.default_rng([seed, epoch])
    steps = num_examples // batch_size
    return rng.permutation(num_examples)[: steps * batch_size].reshape(steps, batch_size).astype(np.int32)


class EpochBatches(Iterator[tuple[jax.Array, jax.Array]]):
    """One epoch's training batches that know where they stand, so a mid-epoch checkpoint can store it.

    `get_state()` is JSON: the steps taken and, for a streamed split, its Grain iterator's state and `layout`
    (what that state's indices count, e.g. examples per Grain element).
    `waited`: seconds the consumer spent blocked on the next batch (steps are dispatched asynchronously, so a
    training loop waits here only when the input is slower than the accelerator)."""

    def __init__(
        self,
        batches: Iterator,
        step: int,
        steps: int,
        source_state: Callable[[], Any] | None = None,
        layout: dict | None = None,
    ):
        self._batches = batches
        self.step, self.steps = step, steps
        self._source_state = source_state
        self._layout = layout or {}
        self.waited = 0.0

    def __len__(self) -> int:
        return self.steps

    def __next__(self) -> tuple[jax.Array, jax.Array]:
        start = time.perf_counter()
        try:
            batch = next(self._batches)
        finally:
            self.waited += time.perf_counter() - start
        self.step += 1
        return batch

    def get_state(self) -> dict:
        state = {"step": self.step, **self._layout}
        if self._source_state is not None:
            state["grain"] = self._source_state()
        return state


def input_wait_warning(fraction: float) -> str | None:
    """The once-a-run warning for an epoch that spent `fraction` of its step time waiting for input, if it earns one."""
    if fraction <= INPUT_WAIT_WARNING:
        return None
    return (
        f"the accelerator waited for input {fraction:.0%} of the step time (input_wait on the epoch lines); "
        "feed it faster: more decoding workers (data.workers=N, data.worker_mode=process), a packed store "
        "(jaxdl-data pack ... out=PACK, then data=packed data.path=PACK), or GPU decoding (data.decoder=dali)"
    )


def check_position(position: dict | None, steps: int) -> int:
    """The step a stored epoch position resumes at (0 without one)."""
    start = int(position["step"]) if position else 0
    if not 0 <= start <= steps:
        raise CheckpointError(f"a stored input position is at step {start} of an epoch of {steps} steps; it is damaged")
    return start


class Loader:
    """Batches of one split, sharded over the mesh's `data` axis.

    With several processes (multi-host) each process keeps only its shard of the
    split (every `process_count`-th example), feeds its slice of every global batch
    from the host, and `jax.make_array_from_process_local_data` assembles the
    global arrays; one process is the special case of a single shard.
    """

    def __init__(self, split: Split, mesh: Mesh, on_device: bool | None = None):
        self.num_examples = len(split)
        self.process_index, self.process_count = jax.process_index(), jax.process_count()
        if self.process_count > 1:
            split = split.subset(np.arange(self.process_index, len(split), self.process_count))
            on_device = False  # each process feeds its own rows; no device holds the whole split
        self.split = split
        self.mesh = mesh
        self.batch_sharding = NamedSharding(mesh, P("data"))
        if on_device is None:
            on_device = split.images.nbytes <= ON_DEVICE_MAX_BYTES
        self.on_device = on_device
        if on_device:
            replicated = NamedSharding(mesh, P())
            self._images = jax.device_put(split.images, replicated)
            self._labels = jax.device_put(split.labels, replicated)
            self._gather = jax.jit(lambda xs, ys, idx: (xs[idx], ys[idx]), out_shardings=self.batch_sharding)

    def __len__(self) -> int:
        return self.num_examples

    def batch(self, indices: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """This process's examples at `indices` as its part of a global (images, labels) batch sharded on `data`."""
        if self.on_device:
            idx = jax.device_put(indices, self.batch_sharding)
            return self._gather(self._images, self._labels, idx)
        images, labels = self.split.images[indices], self.split.labels[indices]
        return (
            jax.make_array_from_process_local_data(self.batch_sharding, images),
            jax.make_array_from_process_local_data(self.batch_sharding, labels),
        )

    def train_batches(self, batch_size: int, seed: int, epoch: int, position: dict | None = None) -> EpochBatches:
        """Global batches of `batch_size`; every process draws the same number from its equal-sized shard.

        `position`: an `EpochBatches.get_state()` of this epoch, to go on after the steps it had taken."""
        shard_size = self.num_examples // self.process_count
        order = epoch_order(shard_size, batch_size // self.process_count, seed, epoch)
        start = check_position(position, len(order))
        return EpochBatches(map(self.batch, order[start:]), start, len(order))

    def eval_batches(self, batch_size: int) -> Iterator[tuple[jax.Array, jax.Array, np.ndarray]]:
        """Every example once: (images, labels, ids), `ids` the split index of each global row, -1 for padding."""
        for local, ids in eval_plan(self.num_examples, self.process_index, self.process_count, batch_size):
            images, labels = self.batch(local)
            yield images, labels, ids


def eval_plan(
    num_examples: int, process_index: int, process_count: int, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per global evaluation batch: (positions in this process's shard, split index of every global row).

    Process p holds examples p, p + count, ...; short shards are padded with their first example,
    whose rows get id -1 (not counted)."""
    local_batch = batch_size // process_count
    shard_sizes = [len(range(p, num_examples, process_count)) for p in range(process_count)]
    for start in range(0, shard_sizes[0], local_batch):
        positions = start + np.arange(local_batch)
        ids = np.concatenate([np.where(positions < n, p + process_count * positions, -1) for p, n in enumerate(shard_sizes)])
        yield np.where(positions < shard_sizes[process_index], positions, 0).astype(np.int32), ids
