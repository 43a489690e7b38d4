"""`data=folder`: your own images, one sub-folder per class, or a CSV manifest.

    jaxdl-train data=folder data.root=photos             # photos/<class>/*.jpg (val/test carved, stratified)
    jaxdl-train data=folder data.root=photos             # photos/{train,val,test}/<class>/*.jpg when present
    jaxdl-train data=folder data.manifest=labels.csv     # `path,label` lines, paths relative to the CSV

Class names are the folder names (or the manifest's labels), sorted. Every layout mistake
(no classes, one class, an empty class folder, a missing file, an unknown label, a class none of whose
training files decodes) is a one-line error before training. Sets whose decoded pixels fit `data.memory_budget_mb` are decoded once into
memory (the fast path); larger ones, or `data.stream=true`, are streamed through Grain.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxdl.data import dali
from jaxdl.data.base import Dataset, carve
from jaxdl.data.file_split import FileSplit
from jaxdl.data import auto_size
from jaxdl.data.images import ImageDecoder, configured_decoder, detect_channels
from jaxdl.data.stream import decode_all, default_workers
from jaxdl.data.workers import resolve_mode
from jaxdl.data.workers import worker_threads as worker_threads_setting
from jaxdl.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLIT_DIRS = ("train", "val", "test")
STREAM_CHOICES = ("auto", "true", "false")
EMPTY_CLASS_CHOICES = ("error", "drop")


def _image_files(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_classes(root: Path, names: Sequence[str]) -> None:
    if not names:
        raise DataError(
            f"{root} has no class sub-folders; put each class's images in {root}/<class>/ or pass data.manifest=FILE.csv"
        )
    if len(names) == 1:
        raise DataError(f"{root} has one class folder ('{names[0]}'); a classifier needs at least two classes")


# Optional: one class folder name per line, the class order (label k = line k) when data.class_names is not set.
# `jaxdl-data write-folder` writes it, so a tree written from a data set keeps that data set's labels.
CLASS_ORDER_FILE = "classes.txt"


def class_order(root: Path) -> list[str] | None:
    """The class order `root/classes.txt` gives, if there is one."""
    path = root / CLASS_ORDER_FILE
    return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else None


def scan_folder(root: Path, class_names: Sequence[str] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) of every image under `root/<class>/`, sorted by file name, and the class names."""
    dirs = _class_dirs(root)
    names = list(class_names) if class_names else [d.name for d in dirs]
    _check_classes(root, names)
    unknown = [d.name for d in dirs if d.name not in names]
    if unknown:
        raise DataError(f"class folder(s) {', '.join(unknown)} in {root} are not among the training classes ({', '.join(names)})")
    items = []
    for d in dirs:
        files = _image_files(d)
        if not files:
            raise DataError(f"class folder {d} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        items += [(str(f), names.index(d.name), str(f.relative_to(d))) for f in files]
    items.sort(key=lambda item: (item[2], item[1]))  # by file name: a tree written from arrays keeps their order
    return [(path, label) for path, label, _ in items], names


def confined(file: Path, manifest: Path, line: int, allow_outside: bool) -> Path:
    """`file` when it lies in the manifest's folder (or `allow_outside`): a manifest from elsewhere must not
    make training open `../../etc/passwd`."""
    if allow_outside or file.resolve().is_relative_to(manifest.parent.resolve()):
        return file
    raise DataError(
        f"{manifest} line {line}: {file} is outside the manifest's folder {manifest.parent}; "
        "move the file there or pass data.allow_outside=true"
    )


def read_manifest(
    path: Path, class_names: Sequence[str] | None = None, allow_outside: bool = False
) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) of every `path,label` line (a `path,label` header is allowed) and the class names."""
    if not path.is_file():
        raise DataError(f"data.manifest {path} does not exist")
    with path.open(newline="") as f:
        rows = [(n, row) for n, row in enumerate(csv.reader(f), 1) if row and not row[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][1]] == ["path", "label"]:
        rows = rows[1:]
    lines = []
    for n, row in rows:
        if len(row) != 2:
            raise DataError(f"{path} line {n}: expected 'path,label', got {','.join(row)!r}")
        file = Path(row[0].strip()).expanduser()
        file = confined(file if file.is_absolute() else path.parent / file, path, n, allow_outside)
        if not file.is_file():
            raise DataError(f"{path} line {n}: file {file} does not exist")
        lines.append((n, str(file), row[1].strip()))
    names = list(class_names) if class_names else sorted({label for _, _, label in lines})
    for n, _, label in lines:
        if label not in names:
            raise DataError(f"{path} line {n}: label '{label}' is not one of the classes ({', '.join(names)})")
    _check_classes(path, names)
    return [(file, names.index(label)) for _, file, label in lines], names


def check_readable_classes(labels: np.ndarray, names: Sequence[str], bad: int) -> None:
    """Every class keeps training images once the unreadable files are dropped: a class without any would
    train a classifier that never predicts it and still report a clean test accuracy."""
    empty = [name for k, name in enumerate(names) if not np.any(labels == k)]
    if empty:
        raise DataError(
            f"class(es) {', '.join(map(repr, empty))} have no readable training image ({bad} unreadable file(s) "
            "skipped); fix or replace their files, or remove the class folder"
        )


def _first_unreadable(items: list[tuple[str, int]], decoder: ImageDecoder) -> dict[int, tuple[int, str]]:
    """{label: (file count, first file's reason)} of every class none of whose files decodes. Files are tried in
    order and a class stops at its first readable one, so a healthy set costs one decode per class; only a class
    that is all bad is read through (a streamed set would otherwise meet it only while training)."""
    todo: dict[int, list[str]] = {}
    for path, label in items:
        todo.setdefault(label, []).append(path)
    empty = {}
    for label, paths in todo.items():
        reasons = []
        for path in paths:
            image, reason = decoder.try_decode(path)
            if image is not None:
                break
            reasons.append(f"{path}: {reason}")
        else:
            empty[label] = (len(paths), reasons[0])
    return empty


def drop_unreadable_classes(
    splits: dict[str, list[tuple[str, int]]], names: list[str], decoder: ImageDecoder, on_empty_class: str
) -> list[str]:
    """The class names left once every class whose training files are all unreadable is refused (`error`) or, on
    request (`drop`), removed from every split with a warning, the rest relabelled 0..k-1 in order. Changes `splits`."""
    if on_empty_class not in EMPTY_CLASS_CHOICES:
        raise ConfigError(f"data.on_empty_class must be error or drop, got '{on_empty_class}'")
    empty = _first_unreadable(splits["train"], decoder)
    if not empty:
        return names
    said = "; ".join(f"'{names[k]}' ({count} file(s), e.g. {why})" for k, (count, why) in sorted(empty.items()))
    if on_empty_class == "error":
        raise DataError(
            f"class(es) with no readable training image: {said}; fix or replace their files, remove the class "
            "folder, or pass data.on_empty_class=drop to train without them"
        )
    kept = [k for k in range(len(names)) if k not in empty]
    if len(kept) < 2:
        raise DataError(f"class(es) with no readable training image: {said}; a classifier needs two classes that have some")
    new_label = {old: new for new, old in enumerate(kept)}
    for split, items in splits.items():
        splits[split] = [(path, new_label[label]) for path, label in items if label in new_label]
    logging.getLogger(__name__).warning("dropped class(es) with no readable training image (data.on_empty_class=drop): %s", said)
    return [names[k] for k in kept]


def _split(items: list[tuple[str, int]], decoder: ImageDecoder, workers: tuple[int, str, int], backend: str) -> FileSplit:
    paths = np.asarray([p for p, _ in items], dtype=object)
    count, mode, threads = workers
    return FileSplit(paths, np.asarray([label for _, label in items], np.int32), decoder, count, mode, backend, threads)


def _wants_stream(stream: Any, num_files: int, decoder: ImageDecoder, memory_budget_mb: float) -> bool:
    choice = str(stream).lower()
    if choice not in STREAM_CHOICES:
        raise ConfigError(f"data.stream must be auto, true or false, got '{stream}'")
    if choice == "auto":
        return num_files * decoder.size**2 * decoder.channels > memory_budget_mb * 2**20
    return choice == "true"


def load(
    name: str = "folder",
    root: str | None = None,
    manifest: str | None = None,
    class_names: Sequence[str] | None = None,
    image_size: int | str = "auto",
    channels: int | str = "auto",
    eval_crop: float = 1.0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    on_bad_file: str = "skip",
    stream: Any = "auto",
    memory_budget_mb: float = 1024,
    workers: int | None = None,
    worker_mode: str = "auto",
    worker_threads: int | None = None,
    decoder: str = "auto",
    augment: Mapping[str, Any] | None = None,
    allow_outside: bool = False,
    on_empty_class: str = "error",
) -> Dataset:
    """The data set of an image folder tree or a manifest, in memory or streamed as `stream` says."""
    if bool(root) == bool(manifest):
        raise ConfigError("data=folder needs exactly one of data.root=PATH (class sub-folders) or data.manifest=FILE.csv")
    splits: dict[str, list[tuple[str, int]]] = {}
    if manifest:
        splits["train"], names = read_manifest(Path(manifest).expanduser(), class_names, bool(allow_outside))
    else:
        base = Path(root).expanduser()
        if not base.is_dir():
            raise DataError(f"data.root {base} is not a directory")
        class_names = class_names or class_order(base)
        if (base / "train").is_dir():
            splits["train"], names = scan_folder(base / "train", class_names)
            for split in ("val", "test"):
                if (base / split).is_dir():
                    splits[split], _ = scan_folder(base / split, names)
        else:
            splits["train"], names = scan_folder(base, class_names)
    size = auto_size.image_size(image_size)
    augment = auto_size.augment_settings(augment, size)
    train_paths = [p for p, _ in splits["train"]]
    channels = detect_channels(train_paths) if str(channels) == "auto" else int(channels)
    image_decoder = configured_decoder(size, channels, eval_crop, augment, on_bad_file, decoder)
    names = drop_unreadable_classes(splits, names, image_decoder, str(on_empty_class))
    workers = default_workers() if workers is None else int(workers)
    pool = (workers, resolve_mode(worker_mode, workers), worker_threads_setting(worker_threads))
    backend = dali.backend(decoder, train_paths)
    files = {k: _split(v, image_decoder, pool, backend) for k, v in splits.items()}
    train = files["train"]
    if "test" not in files:
        train, files["test"] = carve(train, test_fraction, split_seed)
    if "val" not in files:
        train, files["val"] = carve(train, val_fraction, split_seed + 1)
    result = {"train": train, "val": files["val"], "test": files["test"]}
    if not _wants_stream(stream, sum(map(len, result.values())), image_decoder, memory_budget_mb):
        result = {k: decode_all(v) for k, v in result.items()}
        check_readable_classes(result["train"].labels, names, len(image_decoder.bad_files))
    return Dataset(name, result["train"], result["val"], result["test"], tuple(names), bad_files=image_decoder.bad_files)
