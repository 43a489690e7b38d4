"""Write any jaxdl data set as a class-folder tree, and inspect a folder data set before training on it."""

from __future__ import annotations

import collections
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from jaxdl.data.base import Dataset, Split
from jaxdl.data.file_split import FileSplit
from jaxdl.data.folder import CLASS_ORDER_FILE
from jaxdl.errors import ConfigError, DataError

FORMATS = {"png": "PNG", "jpg": "JPEG"}
SPLITS = ("train", "val", "test")


def folder_name(class_name: str) -> str:
    """A class name as a folder name ('T-shirt/top' -> 'T-shirt-top')."""
    return re.sub(r"[/\\:\0]+", "-", class_name).strip() or "_"


def write_folder(dataset: Dataset, out: Path, fmt: str = "png", workers: int = 2) -> dict[str, int]:
    """`out/{train,val,test}/<class>/<index>.<fmt>`, index = position in the split (file names keep the order),
    and `out/classes.txt` (the class order, so labels keep their numbers)."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    names = [folder_name(c) for c in dataset.class_names]
    if len(set(names)) != len(names):
        raise DataError(f"class names {dataset.class_names} collide as folder names {names}")
    out.mkdir(parents=True, exist_ok=True)
    (out / CLASS_ORDER_FILE).write_text("\n".join(names) + "\n")  # labels stay the data set's, not sorted names
    counts = {}
    for split_name in SPLITS:
        split = getattr(dataset, split_name)
        if split.images.dtype != np.uint8 or split.images.shape[-1] not in (1, 3):
            raise DataError(
                f"a folder holds grey or RGB uint8 images; '{dataset.name}' has {split.images.dtype} "
                f"with {split.images.shape[-1]} channel(s)"
            )
        for name in names:
            (out / split_name / name).mkdir(parents=True, exist_ok=True)
        digits = len(str(max(len(split) - 1, 0)))

        def save(i: int, split: Split = split, split_name: str = split_name, digits: int = digits) -> None:
            image = np.asarray(split.images[i])
            pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
            pil.save(
                out / split_name / names[int(split.labels[i])] / f"{i:0{digits}d}.{fmt}",
                FORMATS[fmt],
                **({"quality": 95} if fmt == "jpg" else {}),
            )

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(save, range(len(split))))
        counts[split_name] = len(split)
    return counts


def _size_and_decode(split: FileSplit, i: int) -> tuple[tuple[int, int] | None, np.ndarray | None]:
    path = str(split.paths[i])
    try:
        with Image.open(path) as img:
            size = img.size
    except Exception:  # noqa: BLE001 - the decoder below records why
        size = None
    return size, split.decoder(path)


def inspect_report(dataset: Dataset, workers: int = 2, top_sizes: int = 8) -> str:
    """Class counts per split, the most common image sizes, the unreadable files and the channel mean/std.

    `dataset`'s splits are `FileSplit`s (data=folder with data.stream=true): every file is read."""
    lines = [f"data set '{dataset.name}': {dataset.num_classes} classes, images become {dataset.image_shape}"]
    width = max(len(c) for c in dataset.class_names)
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{s:>7}" for s in SPLITS))
    counts = {s: np.bincount(getattr(dataset, s).labels, minlength=dataset.num_classes) for s in SPLITS}
    for k, name in enumerate(dataset.class_names):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{counts[s][k]:>7}" for s in SPLITS))
    sizes: collections.Counter = collections.Counter()
    train_sum = np.zeros(dataset.image_shape[-1])
    train_sq, train_n = np.zeros_like(train_sum), 0
    for s in SPLITS:
        split = getattr(dataset, s)
        with ThreadPoolExecutor(workers) as pool:
            for size, image in pool.map(lambda i, split=split: _size_and_decode(split, i), range(len(split))):
                if size is not None:
                    sizes[size] += 1
                if s == "train" and image is not None:
                    pixels = image.reshape(-1, image.shape[-1]) / 255.0
                    train_sum += pixels.sum(0)
                    train_sq += (pixels**2).sum(0)
                    train_n += len(pixels)
    lines.append(f"image sizes (width x height: files), {len(sizes)} distinct:")
    lines += [f"  {w} x {h}: {n}" for (w, h), n in sizes.most_common(top_sizes)]
    if len(sizes) > top_sizes:
        lines.append(f"  ... {sum(sizes.values()) - sum(n for _, n in sizes.most_common(top_sizes))} files of other sizes")
    bad = dataset.bad_files.lines() if dataset.bad_files is not None else []
    lines.append(f"unreadable files: {len(bad)}")
    lines += [f"  {line}" for line in bad]
    if train_n:
        mean = train_sum / train_n
        std = np.sqrt(np.maximum(train_sq / train_n - mean**2, 0.0))
        lines.append("channel mean (0..1): " + ", ".join(f"{m:.4f}" for m in mean))
        lines.append("channel std  (0..1): " + ", ".join(f"{v:.4f}" for v in std))
    return "\n".join(lines)
