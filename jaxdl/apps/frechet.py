"""Fréchet distance between two image sets in the feature space of a classifier trained with jaxdl.

The FID of Heusel et al. (2017) uses Inception-v3 features; with no network here we use
the penultimate layer of a jaxdl run trained on the same data (e.g. LeNet-5 on
Fashion-MNIST, layer `hidden/0`). Values are comparable only within one feature space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import linalg

from jaxdl.apps.features import LayerFeatures


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) of two (N, D) feature sets."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(covmean).all():  # singular product: regularise as the reference FID code does
        eps = 1e-6 * np.eye(len(mu_a))
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    distance = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean.real)
    return float(max(distance, 0.0))


class FeatureSpace:
    """One named layer of a trained classifier run, and the statistics of a reference image set in it."""

    def __init__(self, run_dir: str | Path, layer: str):
        from jaxdl.runs import load_run

        run = load_run(run_dir)
        self.features = LayerFeatures(run.model, run.preprocess, layer)
        self.reference: np.ndarray | None = None

    def set_reference(self, images: np.ndarray) -> None:
        self.reference = self.features(images)

    def distance(self, images: np.ndarray) -> float:
        """Fréchet distance of uint8 NHWC `images` to the reference set."""
        if self.reference is None:
            raise ValueError("call set_reference first")
        return frechet_distance(self.features(images), self.reference)
