"""GAN study on Fashion-MNIST: Fréchet distance per epoch, and whether synthetic images help a small labelled set.

    python experiments/gan_study.py [--out runs/gan_study] [--fraction 0.02] [--synthetic 10000]

1. a LeNet-5 classifier on all of Fashion-MNIST: the feature space of the Fréchet distance (`hidden/0`);
2. a conditional DCGAN on all training images, FID to the test set after each epoch;
3. a conditional DCGAN trained only on the small labelled subset (`--fraction` of the labels),
   `--synthetic` labelled samples from it, and LeNet-5 trained on the subset with and without them
   (and, as a label-leaking upper bound, with samples of the GAN of step 2).
Steps whose run directory already has results.json are skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(module: str, overrides: list[str], run_dir: Path) -> dict:
    if not (run_dir / "results.json").exists():
        cmd = [sys.executable, "-m", module, *overrides, "trainer.progress=false", f"hydra.run.dir={run_dir}"]
        print("$", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads((run_dir / "results.json").read_text())


def fids(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [round(r["quality/fid"], 2) for r in records if "quality/fid" in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/gan_study"))
    parser.add_argument("--fraction", type=float, default=0.02)
    parser.add_argument("--synthetic", type=int, default=5000)
    parser.add_argument("--gan-epochs", type=int, default=3)
    parser.add_argument("--small-gan-epochs", type=int, default=15)
    parser.add_argument("--classifier-epochs", type=int, default=15)
    args = parser.parse_args()
    out = args.out.absolute()
    classifier = out / "classifier"
    # the feature space of the recorded Fréchet distances: the experiment file's recipe as it was then
    clf = run(
        "jaxdl.apps.train",
        ["experiment=fashion_mnist_lenet5", "trainer.epochs=1", "model.dropout=0.3", "data.val_fraction=0.1"],
        classifier,
    )
    quality = [f"quality.classifier={classifier}", "quality.layer=hidden/0"]
    full_gan = out / "cdcgan_full"
    run(
        "jaxdl.apps.gan",
        ["data=fashion_mnist", "gan=cdcgan", "gan.width=32", f"trainer.epochs={args.gan_epochs}", *quality],
        full_gan,
    )
    subset = [f"data.label_fraction={args.fraction}"]
    small_gan = out / "cdcgan_subset"
    run(
        "jaxdl.apps.gan",
        ["data=fashion_mnist", "gan=cdcgan", "gan.width=32", f"trainer.epochs={args.small_gan_epochs}", *subset, *quality],
        small_gan,
    )
    common = ["data=fashion_mnist", "model=lenet5", "optimizer=adam", f"trainer.epochs={args.classifier_epochs}", *subset]
    real = run("jaxdl.apps.train", common, out / "small_real")
    rows = [("real only", real)]
    for gan_dir, what in (
        (small_gan, "cDCGAN trained on the same subset"),
        (full_gan, "cDCGAN trained on all 54,000 labelled images: leaks labels, an upper bound"),
    ):
        synthetic = out / f"synthetic_{gan_dir.name}"
        if not (synthetic / "meta.json").exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "jaxdl.apps.gan_sample",
                    f"run_dir={gan_dir}",
                    f"n={args.synthetic}",
                    "test_n=0",
                    f"out={synthetic}",
                ],
                check=True,
            )
        augmented = run(
            "jaxdl.apps.train", [*common, f"data.extra_train_dirs=[{synthetic}]"], out / f"small_real_plus_{gan_dir.name}"
        )
        rows.append((f"real + {args.synthetic} synthetic ({what})", augmented))
    print(f"\nclassifier (feature space): Fashion-MNIST test accuracy {clf['test/accuracy']:.4f}")
    print(f"cDCGAN, all 54,000 training images: FID per epoch {fids(full_gan)}")
    print(f"cDCGAN, {args.fraction:.0%} subset: FID per epoch {fids(small_gan)}")
    print(f"\n| LeNet-5, {args.fraction:.0%} of the labels | test accuracy |\n|---|---|")
    for name, result in rows:
        print(f"| {name} | {result['test/accuracy']:.4f} |")


if __name__ == "__main__":
    main()
