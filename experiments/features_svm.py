"""Feature extraction on Fashion-MNIST: an RBF SVM on raw pixels vs on learned features.

    python experiments/features_svm.py --classifier runs/gan_study/classifier [--out runs/features] [--max-train 5000]

Trains a convolutional and a sparse autoencoder (skipped when their results.json exists), then
fits the same SVM (5,000 training images, all 10,000 test images) on raw pixels, on each
encoder's code and on named layers of the LeNet-5 classifier run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from jaxdl.apps.features import FeatureOptions, extract_and_classify, subsample, svm_accuracy
from jaxdl.runs import load_run


def train_autoencoder(name: str, out: Path, epochs: int) -> Path:
    run_dir = out / f"autoencoder_{name}"
    if not (run_dir / "results.json").exists():
        cmd = [
            sys.executable,
            "-m",
            "jaxdl.apps.autoencoder",
            "data=fashion_mnist",
            f"autoencoder={name}",
            f"trainer.epochs={epochs}",
            "trainer.progress=false",
            f"hydra.run.dir={run_dir}",
        ]
        print("$", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classifier", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/features"))
    parser.add_argument("--max-train", type=int, default=5000)
    parser.add_argument("--ae-epochs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    dataset = load_run(args.classifier).dataset
    chosen = subsample(len(dataset.train), args.max_train, 0)
    flat = lambda images: images.reshape(len(images), -1).astype(np.float32) / 255.0
    rows.append(
        (
            "raw pixels",
            784,
            svm_accuracy(
                flat(dataset.train.images[chosen]), dataset.train.labels[chosen], flat(dataset.test.images), dataset.test.labels
            ),
        )
    )
    sources = [(train_autoencoder(name, args.out, args.ae_epochs), "encoder") for name in ("conv", "sparse")]
    sources += [(args.classifier, "conv2"), (args.classifier, "hidden/0")]
    for run_dir, layer in sources:
        result = extract_and_classify(FeatureOptions(run_dir=str(run_dir), layer=layer, max_train=args.max_train))
        rows.append((f"{run_dir.name} / {layer}", result["dimensions"], result["test/svm_accuracy"]))
    for run_dir, _ in sources[:2]:
        summary = json.loads((run_dir / "results.json").read_text())
        print(
            f"{run_dir.name}: test reconstruction MSE {summary['test/mse']:.5f}, active code units {summary['test/code_active']:.2f}"
        )
    print(f"\n| features (SVM, RBF, C=1, {len(chosen)} train images) | dimensions | test accuracy |\n|---|---|---|")
    for name, dims, acc in rows:
        print(f"| {name} | {dims} | {acc:.4f} |")


if __name__ == "__main__":
    main()
