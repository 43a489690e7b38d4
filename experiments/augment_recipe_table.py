"""The table of `experiments/augment_recipe.sh`: each arm's test accuracy over its seeds, mean ± sample std.

Two figures per run, both on the full test split: the best checkpoint (picked on validation accuracy: what
`results.json` holds) and the last epoch's weights (no early stopping: what overfitting costs shows here).
The best checkpoint is evaluated again here too, and must agree with `results.json`.

    python experiments/augment_recipe_table.py OUT     (OUT holds <arm>_s<seed>/ run directories)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

import numpy as np

from jaxdl.apps.predict import logits_fn
from jaxdl.runs import load_run

RUN = re.compile(r"(?P<arm>.+)_s(?P<seed>\d+)$")
COLUMNS = ("arm", "seeds", "last epoch: test accuracy", "**mean ± std**", "best checkpoint: test accuracy", "**mean ± std**")
COLUMNS += ("last train acc", "last val acc")


def accuracy_on(run_dir: Path, which: str, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    """Accuracy of the run's `which` checkpoint (EMA weights where the run evaluated them) on `images`."""
    logits = logits_fn(load_run(run_dir, which).loaded)
    predicted = np.concatenate([logits(images[i : i + batch]).argmax(-1) for i in range(0, len(images), batch)])
    return float((predicted == labels).mean())


def last_epoch(run_dir: Path) -> dict:
    """The last epoch's record of metrics.jsonl (train and validation accuracy)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "val/accuracy" in r][-1]


def rows(out: Path) -> dict[str, list[dict]]:
    runs = sorted((p for p in out.iterdir() if RUN.match(p.name) and (p / "results.json").exists()), key=lambda p: p.name)
    test = load_run(runs[0]).dataset.test  # the same split for every run
    arms: dict[str, list[dict]] = {}
    for run_dir in runs:
        results = json.loads((run_dir / "results.json").read_text())
        best = accuracy_on(run_dir, "best", test.images, test.labels)
        if abs(best - results["test/accuracy"]) > 2e-4:
            said = results["test/accuracy"]
            raise SystemExit(f"error: {run_dir}: the best checkpoint gives {best:.4f} here, results.json says {said}")
        epoch = last_epoch(run_dir)
        arms.setdefault(RUN.match(run_dir.name)["arm"], []).append(
            {
                "seed": int(RUN.match(run_dir.name)["seed"]),
                "best": results["test/accuracy"],
                "last": accuracy_on(run_dir, "last", test.images, test.labels),
                "best_val": results["best_val/accuracy"],
                "last_train": epoch["train/accuracy"],
                "last_val": epoch["val/accuracy"],
            }
        )
    return arms


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    arms = rows(parser.parse_args().out)
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    for arm, runs in arms.items():
        last, best = [r["last"] for r in runs], [r["best"] for r in runs]
        print(
            f"| {arm} | {len(runs)} | {', '.join(f'{v:.4f}' for v in last)} | **{mean_std(last)}** | "
            f"{', '.join(f'{v:.4f}' for v in best)} | **{mean_std(best)}** | "
            f"{statistics.mean(r['last_train'] for r in runs):.4f} | {statistics.mean(r['last_val'] for r in runs):.4f} |"
        )
    print(json.dumps(arms))


if __name__ == "__main__":
    main()
