"""Evaluation of a classifier on one split: loss, accuracy, per-class accuracy, confusion matrix."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxdl.data.pipeline import Loader
from jaxdl.steps import cross_entropy


@dataclasses.dataclass
class Evaluation:
    """Predictions on a split and the metrics derived from them."""

    labels: np.ndarray
    logits: np.ndarray

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


def evaluate(predict, params, model_state, loader: Loader, batch_size: int) -> Evaluation:
    """Run `predict` over every example of `loader` once."""
    logits, labels = [], []
    for images, batch_labels, valid in loader.eval_batches(batch_size):
        out = predict(params, model_state, images)
        logits.append(np.asarray(jax.device_get(out))[:valid])
        labels.append(np.asarray(jax.device_get(batch_labels))[:valid])
    return Evaluation(np.concatenate(labels), np.concatenate(logits))
