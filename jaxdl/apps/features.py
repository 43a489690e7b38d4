"""Activations of any named layer of a trained model, and a scikit-learn SVM trained on them.

    jaxdl-features run_dir=runs/fashion_mnist-lenet5/2026-... layer=hidden.0

Layers are named by their dotted path (`conv2`, `hidden.0`, `encoder`); the
activation is the layer's output, flattened per example.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from typing import Any, Callable, Iterator

import jax
import numpy as np
from flax import nnx
from omegaconf import MISSING

from jaxdl.apps.cli import parse_options
from jaxdl.errors import ConfigError, report_user_errors
from jaxdl.trees import module_at, module_names


FEATURE_BATCH = 500  # images per forward pass: bounds device memory for any split size


def find_layer(model: nnx.Module, name: str) -> nnx.Module:
    layer = module_at(model, name)
    if layer is None:
        raise ConfigError(f"the model has no layer '{name}'; its layers: {', '.join(module_names(model))}")
    return layer


@contextlib.contextmanager
def recording(layer: nnx.Module) -> Iterator[list]:
    """Record every output of `layer` while the context is open (its class is swapped for a recording subclass)."""
    outputs: list = []
    original = type(layer)

    def call(self, *args, **kwargs):
        out = original.__call__(self, *args, **kwargs)
        outputs.append(out)
        return out

    layer.__class__ = type(f"Recording{original.__name__}", (original,), {"__call__": call})
    try:
        yield outputs
    finally:
        layer.__class__ = original


class LayerFeatures:
    """A jitted `images -> activations of one named layer` of a model in eval mode, applied batch by batch."""

    def __init__(self, model: nnx.Module, preprocess: Callable, layer: str):
        model.eval()
        find_layer(model, layer)  # fail early on a bad name
        graphdef, state = nnx.split(model)
        self.layer, self.state = layer, state

        def activations(state, images):
            merged = nnx.merge(graphdef, state)
            with recording(find_layer(merged, layer)) as outputs:
                merged(preprocess(images))
            if not outputs:
                raise ConfigError(f"layer '{layer}' is not used by the model's forward pass")
            return outputs[-1].reshape(images.shape[0], -1).astype(np.float32)

        self._activations = jax.jit(activations)

    def __call__(self, images: np.ndarray, batch_size: int = FEATURE_BATCH) -> np.ndarray:
        return np.concatenate(
            [np.asarray(self._activations(self.state, images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
        )


def load_model_run(run_dir: str) -> tuple[nnx.Module, Callable, Any]:
    """(model, preprocess, data set) of a classifier run or an autoencoder run, best checkpoint."""
    from jaxdl.apps.autoencoder import is_autoencoder_run, load_autoencoder_run
    from jaxdl.runs import load_run

    run = load_autoencoder_run(run_dir) if is_autoencoder_run(run_dir) else load_run(run_dir)
    return run.model, run.preprocess, run.dataset


def svm_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, kernel: str = "rbf", c: float = 1.0
) -> float:
    """Test accuracy of a standardised-feature SVM fitted on the training features."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    clf = make_pipeline(StandardScaler(), SVC(kernel=kernel, C=c))
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


def subsample(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Up to `limit` of `n` indices, random but reproducible (an RBF SVM is quadratic in its training set)."""
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


@dataclasses.dataclass
class FeatureOptions:
    run_dir: str = MISSING  # a jaxdl-train or jaxdl-autoencoder run directory
    layer: str = MISSING  # e.g. hidden.0, conv2, encoder
    max_train: int = 5000  # SVM training examples (subsampled from the train split)
    kernel: str = "rbf"
    c: float = 1.0
    seed: int = 0


def extract_and_classify(options: FeatureOptions) -> dict:
    """Features of `layer` on train and test of the run's data set -> SVM -> test accuracy."""
    model, preprocess, dataset = load_model_run(options.run_dir)
    features = LayerFeatures(model, preprocess, options.layer)
    chosen = subsample(len(dataset.train), options.max_train, options.seed)
    train_x = features(dataset.train.images[chosen])
    test_x = features(dataset.test.images)
    accuracy = svm_accuracy(train_x, dataset.train.labels[chosen], test_x, dataset.test.labels, options.kernel, options.c)
    return {
        "run_dir": options.run_dir,
        "layer": options.layer,
        "dimensions": int(train_x.shape[1]),
        "train_examples": int(len(chosen)),
        "test_examples": int(len(test_x)),
        "kernel": options.kernel,
        "c": options.c,
        "test/svm_accuracy": accuracy,
    }


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    result = extract_and_classify(parse_options(FeatureOptions, sys.argv[1:] if argv is None else argv))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
