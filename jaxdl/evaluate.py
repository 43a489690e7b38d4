"""Evaluation of a classifier on one split: loss, accuracy, per-class accuracy, confusion matrix."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxdl import watchdog
from jaxdl.data.pipeline import Loader
from jaxdl.steps import cross_entropy


@dataclasses.dataclass
class Evaluation:
    """Predictions on a split and the metrics derived from them."""

    labels: np.ndarray
    logits: np.ndarray
    ids: np.ndarray | None = None  # split index of every row (unreadable files are left out)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(-1)

    @property
    def loss(self) -> float:
        return float(np.mean(np.asarray(cross_entropy(self.logits, self.labels))))

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))

    def confusion_matrix(self, num_classes: int) -> np.ndarray:
        """Rows are true classes, columns predicted classes."""
        matrix = np.zeros((num_classes, num_classes), np.int64)
        np.add.at(matrix, (self.labels, self.predictions), 1)
        return matrix

    def per_class_accuracy(self, num_classes: int) -> np.ndarray:
        matrix = self.confusion_matrix(num_classes)
        return np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)

    def metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}/loss": self.loss, f"{prefix}/accuracy": self.accuracy}


def _to_host(x: jax.Array) -> np.ndarray:
    """The whole global array on this host, also when other processes hold parts of it."""
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def evaluate(predict, params, model_state, loader: Loader, batch_size: int) -> Evaluation:
    """Run `predict` over every example of `loader` once; results are in split order on every process.

    Padding rows (id -1) and unreadable files (label -1) are left out."""
    logits, labels, ids = [], [], []
    for images, batch_labels, batch_ids in watchdog.beating(loader.eval_batches(batch_size)):
        out = predict(params, model_state, images)
        host_labels = _to_host(batch_labels)
        keep = (batch_ids >= 0) & (host_labels >= 0)
        logits.append(_to_host(out)[keep])
        labels.append(host_labels[keep])
        ids.append(batch_ids[keep])
    ids = np.concatenate(ids)
    order = np.argsort(ids)
    return Evaluation(np.concatenate(labels)[order], np.concatenate(logits)[order], ids[order])


def write_tables(evaluation: Evaluation, class_names: Sequence[str], out: Path) -> tuple[np.ndarray, np.ndarray]:
    """`confusion_matrix.csv` and `per_class_accuracy.csv` in `out` (the csv module quotes a class name holding a
    comma or a quote); returns the matrix and the per-class accuracy."""
    n = len(class_names)
    matrix, per_class = evaluation.confusion_matrix(n), evaluation.per_class_accuracy(n)
    with open(out / "confusion_matrix.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["true\\predicted", *class_names])
        writer.writerows([name, *map(int, row)] for name, row in zip(class_names, matrix))
    with open(out / "per_class_accuracy.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["class", "accuracy"])
        writer.writerows([name, f"{a:.6f}"] for name, a in zip(class_names, per_class))
    return matrix, per_class
