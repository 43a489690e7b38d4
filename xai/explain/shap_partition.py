"""SHAP values from `shap.PartitionExplainer` with an image masker, driven by the jitted model.

shap's gradient explainers take PyTorch or TensorFlow models only; the Partition
explainer needs nothing but a batched function, so the jitted JAX forward pass
(probabilities, in large batches) is all it gets. Every batch shap sends is padded to
`batch_size`, so the model compiles once, however ragged shap's batches are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shap
from flax import nnx

from xai.explain.inputs import ExplainError, check_targets
from xai.explain.probe import Preprocess, Probe, predict_fn


class PartitionShap:
    """Owen values of each pixel region for each image's target class, (B, H, W) maps (summed over channels).

    `mask_value` is what a hidden region shows: a number (in [0, 1] image units) or one of
    shap's string maskers ("blur(8,8)", "inpaint_telea"), which need OpenCV. `max_evals` 5,000: on
    28x28 images the maps then correlate with 10,000 evaluations' at r 0.97 (min 0.96), 500's only at 0.55 (min 0.45)
    (experiments/shap_convergence.py, experiments/RESULTS.md).
    """

    def __init__(
        self,
        model: nnx.Module,
        *,
        preprocess: Preprocess | None = None,
        max_evals: int = 5000,
        batch_size: int = 500,
        mask_value: float | str = 0.0,
    ):
        self.probe = Probe(model, (), preprocess)
        self.predict = predict_fn(self.probe, batch_size, fixed_batch=True)
        self.max_evals, self.batch_size, self.mask_value = max_evals, batch_size, mask_value

    def values(self, images: Any, targets: Any = None) -> np.ndarray:
        """(B, H, W, C) SHAP values of each image's target probability."""
        images = np.asarray(self.probe.check(images))
        targets = np.asarray(check_targets(targets, len(images), self.probe.num_classes))
        targets = np.where(targets < 0, self.predict(images).argmax(-1), targets)
        mask = self.mask_value if isinstance(self.mask_value, str) else np.full(images.shape[1:], float(self.mask_value))
        try:
            masker = shap.maskers.Image(mask, images.shape[1:])
        except ImportError as err:
            raise ExplainError(
                f"shap's '{self.mask_value}' masker needs OpenCV ({err}); pip install opencv-python-headless or use a number"
            ) from None
        explainer = shap.PartitionExplainer(self.predict, masker)
        out = []
        for image, target in zip(images, targets):
            explanation = explainer(
                image[None], max_evals=self.max_evals, batch_size=self.batch_size, outputs=np.array([target]), silent=True
            )
            out.append(explanation.values[0, ..., 0])
        return np.stack(out)

    def __call__(self, images: Any, targets: Any = None) -> np.ndarray:
        return self.values(images, targets).sum(-1)
