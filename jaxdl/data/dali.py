"""GPU decoding with NVIDIA DALI (`data.decoder=dali`, extra `dali`): nvJPEG decodes, crops and flips on the GPU.

`DaliLoader` offers `StreamLoader`'s interface (`train_batches`, `eval_batches`, `len`) for a `FileSplit`:
the same epoch order and per-process shard (`StreamLoader.train_order`, `eval_plan`), bad files replaced by
the next spare example and listed, batches as global `jax.Array`s on the mesh. The files are read in Python in
that order (`fn.external_source`) and DALI decodes them: with `device="gpu"` through nvJPEG (DALI's `mixed`
decoder, the hardware JPEG decoders of A100/H100/H200 where it uses them), handed to JAX by DLPack; with
`device="cpu"` through DALI's CPU operators, which is how the tests run it on a machine without a GPU.

A file is checked before DALI sees it (PIL reads its header; a JPEG must end with its EOI marker), because
a file DALI cannot decode fails its whole batch. The position in an epoch (steps and the file cursor) is
checkpointed: order, labels and skipped files resume exactly to the batch; the random crops after a resume
come from DALI's generator seeded with (seed, epoch, step), not from the uninterrupted run's sequence.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl.data.file_split import FileSplit
from jaxdl.data.images import DECODE_ERRORS
from jaxdl.data.pipeline import EpochBatches, check_position, eval_plan
from jaxdl.errors import ConfigError, DataError

EXTRA_HINT = "pip install 'jaxdl[dali]' on a machine with an NVIDIA GPU; data.decoder=auto decodes on the CPU"


def require() -> None:
    """Refuse `data.decoder=dali` where DALI is not installed or no NVIDIA GPU is visible to JAX."""
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        raise ConfigError(f"data.decoder=dali needs NVIDIA DALI, which is not installed: {EXTRA_HINT}") from None
    if not any(device.platform == "gpu" for device in jax.devices()):
        raise ConfigError(f"data.decoder=dali decodes on an NVIDIA GPU and this machine has none: {EXTRA_HINT}")


def available() -> bool:
    """An NVIDIA GPU visible and DALI installed: what `data.decoder=auto` needs to pick DALI (the GPU is
    asked first: importing DALI takes a second that a CPU-only run should not pay)."""
    if not any(device.platform == "gpu" for device in jax.devices()):
        return False
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def backend(choice: str, paths) -> str:
    """`dali` or `host`: who decodes a folder's images for `data.decoder` (auto: DALI on a GPU for JPEG files)."""
    if str(choice).lower() == "dali":
        return "dali"
    jpegs = all(str(p).lower().endswith((".jpg", ".jpeg")) for p in list(paths)[:64])
    return "dali" if str(choice).lower() == "auto" and jpegs and available() else "host"


def readable(data: bytes) -> str:
    """Why DALI could not decode these bytes ("" if it can, as far as a header and the JPEG end marker tell)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            kind = img.format
    except DECODE_ERRORS as err:
        return f"{type(err).__name__}: {err}".replace("\n", " ")
    if kind == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return "OSError: truncated JPEG (no end-of-image marker)"
    return ""


class _Files:
    """Good files of `stream` in order, `batch` at a time from `cursor`: (bytes, labels), bad ones recorded."""

    def __init__(self, split: FileSplit, stream: np.ndarray, batch: int, cursor: int):
        self.split, self.stream, self.batch, self.cursor = split, stream, batch, cursor

    def next_batch(self) -> tuple[list[np.ndarray], np.ndarray]:
        data, labels = [], []
        while len(data) < self.batch:
            if self.cursor >= len(self.stream):
                raise DataError("too many unreadable training files for DALI; see data_errors.txt")
            i = int(self.stream[self.cursor])
            self.cursor += 1
            path = str(self.split.paths[i])
            try:
                raw = Path(path).read_bytes()
            except OSError as err:
                raw, reason = b"", f"{type(err).__name__}: {err}"
            else:
                reason = readable(raw)
            if reason:
                self.split.decoder.bad_files.record(path, reason)
                continue
            data.append(np.frombuffer(raw, np.uint8))
            labels.append(self.split.labels[i])
        return data, np.asarray(labels, np.int32)


def _pipeline(size: int, channels: int, batch: int, device: str, seed: int, train: bool, decoder, threads: int = 2):
    """A DALI pipeline: encoded files in, (batch, size, size, channels) uint8 and int32 labels out."""
    from nvidia.dali import fn, pipeline_def, types

    on_gpu = device == "gpu"

    # Fed batch by batch (`feed_input`, then `run`), so the file cursor a checkpoint stores is exact: no run-ahead.
    @pipeline_def(
        batch_size=batch,
        num_threads=threads,
        device_id=0 if on_gpu else None,
        seed=seed,
        prefetch_queue_depth=1,
        exec_pipelined=False,
        exec_async=False,
    )
    def pipe():
        files, labels = fn.external_source(name="files"), fn.external_source(name="labels")
        colour = types.GRAY if channels == 1 else types.RGB
        if train and decoder.crop_scale is not None:
            images = fn.decoders.image_random_crop(
                files,
                device="mixed" if on_gpu else "cpu",
                output_type=colour,
                random_area=tuple(decoder.crop_scale),
                random_aspect_ratio=tuple(decoder.crop_ratio),
            )
            images = fn.resize(images, size=(size, size))
        else:
            images = fn.decoders.image(files, device="mixed" if on_gpu else "cpu", output_type=colour)
            images = fn.resize(images, resize_shorter=size / decoder.eval_crop)
            images = fn.crop(images, crop=(size, size))
        if train and decoder.hflip:
            images = fn.flip(images, horizontal=fn.random.coin_flip())
        return images, labels

    built = pipe()
    built.build()
    return built


class DaliLoader:
    """Batches of a `FileSplit` decoded by DALI, sharded over the mesh's `data` axis (see the module notes)."""

    def __init__(self, split: FileSplit, mesh: Mesh, device: str = "gpu"):
        from jaxdl.data.stream import StreamLoader  # the same order and shards as the host pipeline

        self.split, self.device = split, device
        self.stream = StreamLoader(split, mesh)
        self.num_examples = len(split)
        self.batch_sharding = NamedSharding(mesh, P("data"))

    def __len__(self) -> int:
        return self.num_examples

    def _global(self, images, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
        if self.device == "gpu":
            from nvidia.dali.plugin.jax.integration import _to_jax_array

            local = _to_jax_array(images.as_tensor(), True)  # a copy: DALI reuses its output buffers
        else:
            local = np.array(images.as_tensor(), copy=True)  # DALI reuses its output buffers on the next run
        if local.ndim == 3:
            local = local[..., None]
        return (
            jax.make_array_from_process_local_data(self.batch_sharding, local),
            jax.make_array_from_process_local_data(self.batch_sharding, labels),
        )

    def _run(self, pipe, data: list[np.ndarray], labels: np.ndarray):
        pipe.feed_input("files", data)
        pipe.feed_input("labels", list(labels))
        images, _ = pipe.run()
        return self._global(images, labels)

    def train_batches(self, batch_size: int, seed: int, epoch: int, position: dict | None = None) -> EpochBatches:
        """As `StreamLoader.train_batches`; `position` also holds the file cursor, so skipped files stay skipped."""
        local_batch = batch_size // self.stream.process_count
        order, spare = self.stream.train_order(batch_size, seed, epoch)
        steps = len(order) // local_batch
        start = check_position(position, steps)
        files = _Files(self.split, np.concatenate([order, spare]), local_batch, int(position["cursor"]) if start else 0)
        dali_seed = int(np.random.default_rng([seed, epoch, start]).integers(2**31))
        pipe = _pipeline(
            self.split.decoder.size, self.split.decoder.channels, local_batch, self.device, dali_seed, True, self.split.decoder
        )

        def batches() -> Iterator[tuple[jax.Array, jax.Array]]:
            for _ in range(start, steps):
                yield self._run(pipe, *files.next_batch())

        epoch_batches = EpochBatches(batches(), start, steps)
        epoch_batches.get_state = lambda: {"step": epoch_batches.step, "cursor": files.cursor}
        return epoch_batches

    def eval_batches(self, batch_size: int) -> Iterator[tuple[jax.Array, jax.Array, np.ndarray]]:
        """Every example once, as `StreamLoader.eval_batches`; an unreadable file is zeros with label -1."""
        stream = self.stream
        plan = list(eval_plan(self.num_examples, stream.process_index, stream.process_count, batch_size))
        if not plan:
            return
        decoder = self.split.decoder
        pipe = _pipeline(decoder.size, decoder.channels, len(plan[0][0]), self.device, 0, False, decoder)
        shard = stream.shard if len(stream.shard) else np.zeros(1, np.int64)
        for local, ids in plan:
            data, labels, bad = [], [], []
            for row, i in enumerate(shard[local]):
                path = str(self.split.paths[i])
                try:
                    raw = Path(path).read_bytes()
                    reason = readable(raw)
                except OSError as err:
                    raw, reason = b"", f"{type(err).__name__}: {err}"
                if reason:
                    decoder.bad_files.record(path, reason)
                    bad.append(row)
                    raw = None
                data.append(raw)
                labels.append(-1 if reason else self.split.labels[i])
            good = next((np.frombuffer(d, np.uint8) for d in data if d is not None), None)
            if good is None:
                images = np.zeros((len(data), decoder.size, decoder.size, decoder.channels), np.uint8)
                yield (*stream._global(images, np.asarray(labels, np.int32)), ids)
                continue
            encoded = [good if d is None else np.frombuffer(d, np.uint8) for d in data]
            images, batch_labels = self._run(pipe, encoded, np.asarray(labels, np.int32))
            if bad:
                images = images.at[np.asarray(bad)].set(0)
            yield images, batch_labels, ids
