"""PNG figures of a run: learning curves, confusion matrix, misclassified examples."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _max_n_locator(*args, **kwargs):
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(*args, **kwargs)


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported when the first figure is drawn (1-2 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(records: Sequence[dict], path: Path) -> None:
    """Loss and accuracy per epoch, train vs validation."""
    plt = _pyplot()
    epochs = [r for r in records if "val/accuracy" in r]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split in ("train", "val"):
            points = [(r["epoch"], r[f"{split}/{metric}"]) for r in epochs if f"{split}/{metric}" in r]
            if points:
                ax.plot(*zip(*points), marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(_max_n_locator(integer=True))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plain(text: str) -> str:
    """`text` shown as written: matplotlib reads `$...$` as mathtext (a name like `$x^$` would fail to draw)."""
    return str(text).replace("$", r"\$")


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Counts of true (rows) vs predicted (columns) classes."""
    plt = _pyplot()
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 1.0 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), [plain(c) for c in class_names], rotation=90)
    ax.set_yticks(range(n), [plain(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if matrix[i, j] > threshold else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _tile(image: np.ndarray) -> np.ndarray:
    """One image as RGB floats in [0, 1], as `imshow` shows it: a single channel stretched to its own range,
    colour as uint8 (0-255) or floats (clipped to [0, 1])."""
    pixels = np.asarray(image, np.float32)
    if pixels.shape[-1] == 1:
        low, high = pixels.min(), pixels.max()
        return np.repeat((pixels - low) / (high - low if high > low else 1.0), 3, axis=-1)
    return pixels / 255.0 if np.asarray(image).dtype == np.uint8 else np.clip(pixels, 0.0, 1.0)


def misclassified_grid(
    images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str], path: Path, limit: int = 36
) -> int:
    """A grid of up to `limit` misclassified images titled 'true -> predicted'; returns how many.

    Drawn as one montage in one axes: a subplot per image made this figure a second of every run's end.
    """
    plt = _pyplot()
    wrong = np.flatnonzero(labels != predictions)[:limit]
    cols = max(1, min(6, len(wrong)))
    rows = max(1, -(-len(wrong) // cols))
    fig = plt.figure(figsize=(2 * cols, 2.2 * rows))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    if not len(wrong):
        ax.text(0.5, 0.5, "no misclassified images", ha="center", transform=ax.transAxes)
    else:
        height, width = images.shape[1:3]
        cell_h, cell_w = round(height * 1.25), round(width * 1.1)  # room above each image for its title
        montage = np.ones((rows * cell_h, cols * cell_w, 3), np.float32)
        for k, i in enumerate(wrong):
            top, left = (k // cols) * cell_h + cell_h - height, (k % cols) * cell_w + (cell_w - width) // 2
            montage[top : top + height, left : left + width] = _tile(images[i])
            title = f"{plain(class_names[labels[i]])} -> {plain(class_names[predictions[i]])}"
            ax.text(left + width / 2, top - 0.5, title, ha="center", va="bottom", fontsize=8, color="red", clip_on=True)
        ax.imshow(montage, interpolation="nearest", aspect="auto")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(wrong)
