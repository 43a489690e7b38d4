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


def misclassified_grid(
    images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str], path: Path, limit: int = 36
) -> int:
    """A grid of up to `limit` misclassified images titled 'true -> predicted'; returns how many."""
    plt = _pyplot()
    wrong = np.flatnonzero(labels != predictions)[:limit]
    cols = max(1, min(6, len(wrong)))
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        image = images[i]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
        ax.set_title(f"{plain(class_names[labels[i]])} -> {plain(class_names[predictions[i]])}", fontsize=8, color="red")
    if not len(wrong):
        axes.flat[0].text(0.5, 0.5, "no misclassified images", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(wrong)
