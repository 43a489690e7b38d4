"""Pretrain on Fashion-MNIST classes 0-4, fine-tune on 5-9 with 1% of the labels, versus from scratch.

    python experiments/transfer_learning.py [--seeds 0 1 2] [--out runs/transfer]

Prints a Markdown table of test accuracy (the 5,000 test images of classes 5-9) per arm
and label sample; every arm sees exactly the same labelled images for a given seed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SCRATCH = ["trainer.init_from=null", "trainer.freeze=[]", "optimizer.backbone_lr_scale=1.0"]
# (row name, run directory prefix, overrides on top of experiment=transfer_fashion_finetune)
ARMS = [
    ("fine-tune (conv1 frozen, backbone 0.1x LR)", "fine-tune_frozen", []),
    ("fine-tune (nothing frozen, backbone 0.1x LR)", "fine-tune", ["trainer.freeze=[]"]),
    ("linear probe (all but the head frozen)", "linear_probe", ["trainer.freeze=[conv1,conv2,hidden]"]),
    ("from scratch", "from_scratch", SCRATCH),
    ("fine-tune (conv1 frozen, backbone 0.1x LR), 5 epochs", "fine-tune_frozen_5ep", ["trainer.epochs=5"]),
    ("from scratch, 5 epochs", "from_scratch_5ep", [*SCRATCH, "trainer.epochs=5"]),
]


def train(overrides: list[str], run_dir: Path) -> dict:
    if not (run_dir / "results.json").exists():
        cmd = [sys.executable, "-m", "jaxdl.apps.train", *overrides, "trainer.progress=false", f"hydra.run.dir={run_dir}"]
        print("$", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads((run_dir / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/transfer"))
    args = parser.parse_args()
    pretrained = args.out / "fashion_0to4"
    base = train(["experiment=transfer_fashion_pretrain"], pretrained)
    rows = []
    for name, slug, extra in ARMS:
        accs = []
        for seed in args.seeds:
            overrides = [
                "experiment=transfer_fashion_finetune",
                f"trainer.init_from={pretrained}",
                f"data.label_seed={seed}",
                f"trainer.seed={seed}",
                *extra,
            ]
            accs.append(train(overrides, args.out / f"{slug}_seed{seed}")["test/accuracy"])
        rows.append((name, accs))
    print(f"\npretrained on classes 0-4: test accuracy {base['test/accuracy']:.4f}\n")
    print("| classes 5-9, 1% labels | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean |")
    print("|---" * (len(args.seeds) + 2) + "|")
    for name, accs in rows:
        print(f"| {name} | " + " | ".join(f"{a:.4f}" for a in accs) + f" | {sum(accs) / len(accs):.4f} |")


if __name__ == "__main__":
    main()
