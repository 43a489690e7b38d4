"""A packed store of a data set (`jaxdl-data pack`, `data=packed`): pre-resized images in ArrayRecord shards.

FFCV's idea: read and decode a data set once, write every image with its shorter side at most `max_side`
(re-encoded as JPEG at `quality`, or raw pixels), so that training reads a few KB per image by index and
decodes a small JPEG instead of a full-size photo. The random-resized crop and flip then run on the packed
image in the input workers, exactly as `data=folder` does on the file (the same `ImageDecoder`).

    PACK/pack.json                the class names, format, channels, shards per split with their SHA-256
    PACK/labels.npz               the labels of every split, in record order
    PACK/<split>-NNNNN.array_record   shards of up to `shard_size` records
    PACK/data_errors.txt          files that could not be read at pack time (left out of the pack)
    PACK/shards.jsonl             progress: one line per finished shard, so an interrupted pack resumes

A record is `HEADER` (label, height, width, channels) followed by the JPEG bytes or the raw pixels.
Shards are written by worker processes (`jaxdl.data.workers`) to a temporary name, hashed and renamed;
`pack.json` is written last, so a pack without it is unfinished and `pack` resumes it. When a pack is
opened every shard's SHA-256 is checked (`data.verify=false` skips it): a damaged shard is one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from jaxdl.data.base import Dataset
from jaxdl.data.file_split import FileSplit, _Streamed
from jaxdl.data.images import DECODE_ERRORS, BadFiles, ImageDecoder, _to_channels, configured_decoder
from jaxdl.data.workers import parallel_map, resolve_mode, usable_cores
from jaxdl.data.workers import worker_threads as worker_threads_setting
from jaxdl.errors import ConfigError, DataError

FORMATS = ("jpeg", "raw")
SPLITS = ("train", "val", "test")
HEADER = struct.Struct("<iHHB")  # label, height, width, channels
META, LABELS, PROGRESS, ERRORS = "pack.json", "labels.npz", "shards.jsonl", "data_errors.txt"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shrunk(img: Image.Image, max_side: int) -> Image.Image:
    """`img` with its shorter side at most `max_side` (aspect kept, antialiased)."""
    scale = max_side / min(img.size)
    if scale >= 1:
        return img
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)


def _file_image(path: str, channels: int, max_side: int) -> Image.Image:
    """The file at `path` upright, in the model's channels, shrunk; a JPEG is decoded at the smallest draft scale
    that keeps `max_side` pixels across its shorter side."""
    img = Image.open(path)
    if img.format == "JPEG":
        keep = min(1.0, max_side / min(img.size))
        img.draft("L" if channels == 1 else "RGB", (int(img.width * keep) + 1, int(img.height * keep) + 1))
    img.load()
    img = ImageOps.exif_transpose(img)
    return _shrunk(_to_channels(img, channels), max_side)


def encode(img: Image.Image, label: int, fmt: str, quality: int) -> bytes:
    """One record: `HEADER` and the image as JPEG bytes (`jpeg`) or raw uint8 pixels (`raw`)."""
    pixels = np.asarray(img, np.uint8)
    channels = 1 if pixels.ndim == 2 else pixels.shape[-1]
    head = HEADER.pack(int(label), pixels.shape[0], pixels.shape[1], channels)
    if fmt == "raw":
        return head + pixels.tobytes()
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return head + buffer.getvalue()


def decode_record(record: bytes, fmt: str) -> tuple[int, bytes | np.ndarray]:
    """(label, image) of a record: JPEG bytes, or raw pixels as an (H, W, C) array."""
    label, height, width, channels = HEADER.unpack_from(record)
    payload = record[HEADER.size :]
    if fmt == "raw":
        return label, np.frombuffer(payload, np.uint8).reshape(height, width, channels)
    return label, payload


class PackShard:
    """Worker-process job k: one shard (split, name, first, stop) read from the source, shrunk, encoded, written.

    Returns its progress line: name, SHA-256, labels, bytes, and the bad files it met."""

    def __init__(self, dataset: Dataset, shards: Sequence[tuple[str, str, int, int]], out: Path, options: Mapping[str, Any]):
        self.splits = {name: getattr(dataset, name) for name in SPLITS}
        self.shards, self.out, self.options = list(shards), Path(out), dict(options)

    def _image(self, split: Any, i: int) -> Image.Image:
        channels, max_side = self.options["channels"], self.options["max_side"]
        if isinstance(split, FileSplit):
            return _file_image(str(split.paths[i]), channels, max_side)
        pixels = np.asarray(split.images[i])
        return _shrunk(Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels), max_side)

    def __call__(self, k: int) -> dict:
        from array_record.python.array_record_module import ArrayRecordWriter

        split_name, name, start, stop = self.shards[k]
        split = self.splits[split_name]
        final, partial = self.out / name, self.out / (name + ".partial")
        writer = ArrayRecordWriter(str(partial), "group_size:1")
        labels, bad, size = [], [], 0
        for i in range(start, stop):
            try:
                record = encode(self._image(split, i), split.labels[i], self.options["format"], self.options["quality"])
            except DECODE_ERRORS as err:
                where = split.paths[i] if isinstance(split, FileSplit) else f"{split_name} example {i}"
                bad.append(f"{where}\t{type(err).__name__}: {err}".replace("\n", " "))
                continue
            writer.write(record)
            labels.append(int(split.labels[i]))
            size += len(record)
        writer.close()
        digest = _sha256(partial)
        partial.replace(final)
        return {"shard": name, "sha256": digest, "labels": labels, "bytes": size, "bad": bad}


def _shard_ranges(split_name: str, n: int, shard_size: int) -> list[tuple[str, int, int]]:
    return [(f"{split_name}-{k:05d}.array_record", s, min(s + shard_size, n)) for k, s in enumerate(range(0, n, shard_size))]


def _finished(out: Path) -> dict[str, dict]:
    """The shards an earlier, interrupted pack finished (listed in the progress file and still on disk)."""
    path = out / PROGRESS
    if not path.is_file():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the line being written when it stopped
            continue
        if (out / entry["shard"]).is_file():
            done[entry["shard"]] = entry
    return done


def pack(
    dataset: Dataset,
    out: Path,
    max_side: int = 256,
    quality: int = 90,
    fmt: str = "jpeg",
    workers: int | None = None,
    shard_size: int = 1024,
) -> str:
    """Write `dataset` as a pack at `out` (resuming an interrupted one); returns the summary line."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be jpeg or raw, got '{fmt}'")
    if not 1 <= int(quality) <= 100 or int(max_side) < 1 or int(shard_size) < 1:
        raise ConfigError(
            f"pack needs max_side >= 1, 1 <= quality <= 100, shard_size >= 1 (got {max_side}, {quality}, {shard_size})"
        )
    out.mkdir(parents=True, exist_ok=True)
    if (out / META).is_file():
        raise DataError(f"{out} already holds a finished pack ({META}); pack into a new folder")
    first = dataset.train
    channels = first.decoder.channels if isinstance(first, FileSplit) else int(first.images.shape[-1])
    if not isinstance(first, FileSplit) and first.images.dtype != np.uint8:
        raise DataError(f"a pack holds uint8 images; '{dataset.name}' has {first.images.dtype}")
    options = {"format": fmt, "quality": int(quality), "max_side": int(max_side), "channels": channels}
    done = _finished(out)
    resumed = len(done)
    workers = usable_cores() if workers is None else int(workers)
    todo = [
        (split_name, *shard)
        for split_name in SPLITS
        for shard in _shard_ranges(split_name, len(getattr(dataset, split_name)), int(shard_size))
        if shard[0] not in done
    ]
    if todo:
        shards = parallel_map(np.arange(len(todo)), PackShard(dataset, todo, out, options), min(workers, len(todo)), "process", 2)
        with (out / PROGRESS).open("a") as progress:
            for entry in shards:
                progress.write(json.dumps(entry) + "\n")
                progress.flush()
                done[entry["shard"]] = entry
    return _finish(dataset, out, options, done, int(shard_size), resumed)


def _finish(dataset: Dataset, out: Path, options: dict, done: dict[str, dict], shard_size: int, resumed: int) -> str:
    meta = {"version": 1, **options, "class_names": list(dataset.class_names), "splits": {}, "sha256": {}}
    labels, bad = {}, BadFiles()
    if dataset.bad_files is not None:  # what the source met before packing (e.g. detecting channels)
        for line in dataset.bad_files.lines():
            bad.record(*line.split("\t", 1))
    total_bytes = 0
    for split_name in SPLITS:
        names = [name for name, _, _ in _shard_ranges(split_name, len(getattr(dataset, split_name)), shard_size)]
        entries = [done[name] for name in names]
        meta["splits"][split_name] = {"shards": names, "counts": [len(e["labels"]) for e in entries]}
        meta["sha256"].update({e["shard"]: e["sha256"] for e in entries})
        labels[split_name] = np.asarray([y for e in entries for y in e["labels"]], np.int32)
        total_bytes += sum(e["bytes"] for e in entries)
        for e in entries:
            for line in e["bad"]:
                bad.record(*line.split("\t", 1))
    images = sum(len(v) for v in labels.values())
    meta["bytes_per_image"] = total_bytes / max(images, 1)
    np.savez(out / LABELS, **labels)
    bad.write(out / ERRORS)
    (out / META).write_text(json.dumps(meta, indent=1))
    again = f" ({resumed} shards from an interrupted pack kept)" if resumed else ""
    return (
        f"packed {images} images ({', '.join(f'{len(v)} {k}' for k, v in labels.items())}) into {out}: "
        f"{len(meta['sha256'])} shards, {meta['bytes_per_image'] / 1024:.1f} KiB per image, "
        f"{len(bad)} unreadable files listed in {out / ERRORS}{again}"
    )


class _Records:
    """Random access to a split's shards, opened on first use (in each worker process, not pickled)."""

    def __init__(self, paths: Sequence[str]):
        self.paths, self._source = list(paths), None

    def __getstate__(self) -> dict:
        return {"paths": self.paths}

    def __setstate__(self, state: dict) -> None:
        self.paths, self._source = state["paths"], None

    def __getitem__(self, i: int) -> bytes:
        if self._source is None:
            import grain

            self._source = grain.sources.ArrayRecordDataSource(self.paths)
        return self._source[i]


@dataclasses.dataclass(frozen=True)
class PackedSplit(_Streamed):
    """Records `indices` of a pack's split, decoded and augmented by `decoder` like the files of `data=folder`."""

    records: _Records
    indices: np.ndarray
    labels: np.ndarray
    fmt: str
    decoder: ImageDecoder
    workers: int = 2
    worker_mode: str = "thread"
    worker_threads: int = 0
    augments_in_workers = True

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.decoder.size, self.decoder.size, self.decoder.channels)

    def try_load(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray | None, str]:
        _, image = decode_record(self.records[int(self.indices[i])], self.fmt)
        pixels, reason = self.decoder.try_decode(image, rng)
        return pixels, "" if pixels is not None else f"record {int(self.indices[i])} of {self.records.paths[0]}\t{reason}"

    def load(self, i: int, rng: np.random.Generator | None = None) -> np.ndarray | None:
        pixels, line = self.try_load(i, rng)
        self.record_bad((line,) if pixels is None else ())
        return pixels

    def record_bad(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            self.decoder.bad_files.record(*line.split("\t", 1))

    def subset(self, indices: np.ndarray) -> PackedSplit:
        return dataclasses.replace(self, indices=self.indices[indices], labels=self.labels[indices])


def read_meta(path: Path, verify: bool = True) -> dict:
    """The pack's `pack.json`; with `verify`, every shard's SHA-256 checked against it."""
    meta_path = path / META
    if not meta_path.is_file():
        hint = " (an unfinished pack: run jaxdl-data pack again to finish it)" if (path / PROGRESS).is_file() else ""
        raise DataError(f"{path} is not a jaxdl pack: no {META}{hint}; write one with jaxdl-data pack out={path}")
    meta = json.loads(meta_path.read_text())
    for name, digest in meta["sha256"].items():
        shard = path / name
        if not shard.is_file():
            raise DataError(f"pack {path}: shard {name} is missing; pack the data set again")
        if verify and _sha256(shard) != digest:
            raise DataError(f"pack {path}: shard {name} is damaged (its SHA-256 differs from {META}); pack the data set again")
    return meta


def load(
    name: str = "packed",
    path: str | None = None,
    image_size: int = 224,
    channels: int | str = "auto",
    eval_crop: float = 1.0,
    on_bad_file: str = "skip",
    workers: int | None = None,
    worker_mode: str = "auto",
    worker_threads: int | None = None,
    decoder: str = "auto",
    verify: bool = True,
    augment: Mapping[str, Any] | None = None,
) -> Dataset:
    """The train, val and test splits of the pack at `path`, streamed and augmented as `data=folder` streams files."""
    if not path:
        raise ConfigError("data=packed needs data.path=PACK (a folder written by jaxdl-data pack)")
    root = Path(path).expanduser()
    meta = read_meta(root, verify)
    channels = int(meta["channels"]) if str(channels) == "auto" else int(channels)
    image_decoder = configured_decoder(image_size, channels, eval_crop, augment or {}, on_bad_file, decoder)
    workers = usable_cores() if workers is None else int(workers)
    mode, threads = resolve_mode(worker_mode, workers), worker_threads_setting(worker_threads)
    with np.load(root / LABELS) as stored:
        labels = {k: stored[k] for k in SPLITS}
    splits = {}
    for split_name in SPLITS:
        records = _Records([str(root / shard) for shard in meta["splits"][split_name]["shards"]])
        n = len(labels[split_name])
        splits[split_name] = PackedSplit(
            records, np.arange(n), labels[split_name], meta["format"], image_decoder, workers, mode, threads
        )
    return Dataset(
        name, splits["train"], splits["val"], splits["test"], tuple(meta["class_names"]), bad_files=image_decoder.bad_files
    )


def inspect_report(path: Path) -> str:
    """What a pack holds: format, sizes, class counts per split, bytes per image, files left out; shards verified."""
    meta = read_meta(path, verify=True)
    with np.load(path / LABELS) as stored:
        counts = {k: np.bincount(stored[k], minlength=len(meta["class_names"])) for k in SPLITS}
    errors = path / ERRORS
    bad = errors.read_text().splitlines() if errors.is_file() else []
    lines = [
        f"pack {path}: {meta['format']} images, {meta['channels']} channel(s), shorter side <= {meta['max_side']} px"
        + (f", quality {meta['quality']}" if meta["format"] == "jpeg" else ""),
        f"{len(meta['sha256'])} shards, SHA-256 verified; {meta['bytes_per_image'] / 1024:.1f} KiB per image",
    ]
    width = max(len(c) for c in meta["class_names"])
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{s:>7}" for s in SPLITS))
    for k, name in enumerate(meta["class_names"]):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{counts[s][k]:>7}" for s in SPLITS))
    lines.append(f"files left out at pack time (unreadable): {len(bad)}")
    lines += [f"  {line}" for line in bad]
    return "\n".join(lines)
