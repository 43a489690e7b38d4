"""Real trained weights through jaxdl-import: a torchvision network trained on Fashion-MNIST in PyTorch, imported,
and both evaluated on the 10,000 test images (accuracy of each, share of identical predictions, largest logit gap).

    python experiments/pretrained_fashion_import.py --arch resnet18 --epochs 1
    python experiments/pretrained_fashion_import.py --arch squeezenet1_1 --epochs 1

The network is torchvision's `<arch>(num_classes=10)` with its first conv taking one channel (the
images are grayscale) at Fashion-MNIST's own 28x28; the import reads the saved `.pth` offline
(`file=`), so this is exactly what a user with a trained PyTorch checkpoint does. Needs the torch
extra and `apt-get install dataset-fashion-mnist`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

from jaxdl.apps.predict import logits_fn
from jaxdl.artifacts import load_model, save_model
from jaxdl.data.idx import read_idx
from jaxdl.pretrained import import_model

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(FASHION / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(FASHION / f"{split}-labels-idx1-ubyte.gz")
    return images[..., None], labels.astype(np.int64)


def one_channel(arch: str) -> torch.nn.Module:
    """torchvision's `arch` for 10 classes with a grayscale first conv (same kernel, stride and padding)."""
    model = torchvision.models.get_model(arch, num_classes=10)
    if arch.startswith("resnet"):
        model.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    else:  # squeezenet1_1: features[0] is Conv2d(3, 64, 3, stride 2)
        model.features[0] = torch.nn.Conv2d(1, 64, 3, 2)
    return model


def to_tensor(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std


def train_torch(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    mean: float,
    std: float,
    epochs: int,
    batch: int = 128,
    seed: int = 0,
) -> float:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images)).numpy()
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            loss = torch.nn.functional.cross_entropy(model(to_tensor(images[idx], mean, std)), torch.from_numpy(labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (i // batch) % 50 == 0:
                print(
                    f"step {i // batch}/{len(order) // batch} loss {loss.item():.3f} {time.perf_counter() - start:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
    return time.perf_counter() - start


def torch_logits(model: torch.nn.Module, images: np.ndarray, mean: float, std: float) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(to_tensor(images[i : i + 500], mean, std)).numpy() for i in range(0, len(images), 500)])


def jaxdl_logits(path: Path, images: np.ndarray) -> np.ndarray:
    logits = logits_fn(load_model(path))
    return np.concatenate([logits(images[i : i + 500]) for i in range(0, len(images), 500)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18", choices=["resnet18", "squeezenet1_1"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-examples", type=int, default=60000, help="the first N training images (all: 60000)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_x, train_y = (a[: args.train_examples] for a in fashion("train"))
    test_x, test_y = fashion("t10k")
    mean, std = float(train_x.mean() / 255), float(train_x.std() / 255)
    model = one_channel(args.arch)
    seconds = train_torch(model, train_x, train_y, mean, std, args.epochs)
    theirs = torch_logits(model, test_x, mean, std)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(model.state_dict(), Path(tmp) / "trained.pth")
        module, card = import_model(
            f"torchvision:{args.arch}",
            file=str(Path(tmp) / "trained.pth"),
            input_size=28,
            mean=[mean],
            std=[std],
            class_names=list(CLASSES),
        )
        save_model(Path(tmp) / "imported", module, card)
        ours = jaxdl_logits(Path(tmp) / "imported", test_x)
    pred_t, pred_j = theirs.argmax(1), ours.argmax(1)
    print(
        json.dumps(
            {
                "arch": args.arch,
                "epochs": args.epochs,
                "train_examples": len(train_x),
                "torch_train_seconds": round(seconds, 1),
                "torch_test_accuracy": float((pred_t == test_y).mean()),
                "jaxdl_test_accuracy": float((pred_j == test_y).mean()),
                "identical_predictions": float((pred_t == pred_j).mean()),
                "max_abs_logit_gap": float(np.abs(ours - theirs).max()),
                "max_abs_logit": float(np.abs(theirs).max()),
            }
        )
    )


if __name__ == "__main__":
    main()
