"""Faithfulness leaderboard: every explanation method x every zoo model, one table (deletion, insertion, ROAD, sanity).

    python experiments/faithfulness_leaderboard.py [--images 32] [--only lenet5,mlp] [--out runs/leaderboard]

Each model is a short CPU run of the zoo recipe that RESULTS trains (`conf/experiment/*`, few epochs on a
stratified training subset: the budget is in MODELS), trained once into `<out>/<name>/run` and reused after;
then `jaxdl-explain` (in process) on its first `--images` test images with every method that applies to the
model (CAMs need a spatial layer, attention rollout attention), the predicted class as target. The table is
rewritten after every model, so a run stopped early still leaves the rows it measured; rows already in
`<out>/leaderboard.json` are kept (a model run again replaces its own rows).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jaxdl.config import compose_config
from jaxdl.trainer import train_and_evaluate

SHORT = ["trainer.epochs=1", "data.val_fraction=0.02", "trainer.progress=false"]
# name -> (training overrides: the RESULTS recipe on a budget, methods beyond the gradient/perturbation set, explain
# overrides: the MLP has no spatial layer, so it names one only to satisfy the app; no layered method runs on it)
MODELS = {
    "lenet5": (["experiment=fashion_mnist_lenet5", "+data.train_subset=5000", *SHORT], ["gradcam"], []),
    "mlp": (["experiment=fashion_mnist_mlp", "+data.train_subset=5000", *SHORT], [], ["explain.target_layer=hidden.0"]),
    "signals1d_gru": (["experiment=signals1d_gru", "trainer.epochs=3", "trainer.progress=false"], [], []),
    "vit": (["experiment=fashion_mnist_vit", "+data.train_subset=2000", *SHORT], ["attention_rollout"], []),
    "gru": (["experiment=fashion_mnist_gru", "+data.train_subset=2000", *SHORT], [], []),
    # the zoo's cheapest CNN beyond LeNet-5 (12.7 MMACs a forward); 3 epochs: its recipe warms up for a whole epoch
    "squeezenet": (
        ["experiment=fashion_mnist_squeezenet", "+data.train_subset=5000", "trainer.epochs=3", *SHORT[1:]],
        ["gradcam"],
        [],
    ),
}
METHODS = ["integrated_gradients", "saliency", "input_x_gradient", "smoothgrad", "gradient_shap", "occlusion", "lime", "shap"]
# SHAP at a fifth of the default evaluations, for CPU time (RESULTS: r 0.97 needs 5,000); the sanity column is the
# cascade's last step, which `sanity_cascade=false` computes alone (same draw, 1/L of the cost on an L-layer model)
OPTIONS = ["explain.options.shap.max_evals=1000", "explain.metrics.sanity_cascade=false"]
COLUMNS = [
    ("deletion_auc", "deletion ↓"),
    ("insertion_auc", "insertion ↑"),
    ("road_morf", "ROAD MoRF ↓"),
    ("road_lerf", "ROAD LeRF ↑"),
    ("sanity_spearman_final", "sanity Spearman → 0"),
]


def train(name: str, out: Path) -> tuple[Path, float, float]:
    """The model's run directory (trained now unless it exists), its test accuracy and training seconds."""
    run_dir = out / name / "run"
    results = run_dir / "results.json"
    if not results.is_file():
        start = time.perf_counter()
        train_and_evaluate(compose_config("config", MODELS[name][0]), run_dir)
        (out / name / "train_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}")
    accuracy = json.loads(results.read_text())["test/accuracy"]
    return run_dir, accuracy, float((out / name / "train_seconds.txt").read_text())


def explain(name: str, run_dir: Path, images: int, out: Path) -> dict:
    from xai.explain import app

    methods = [*METHODS, *MODELS[name][1]]
    overrides = [f"run_dir={run_dir}", f"explain.methods=[{','.join(methods)}]", f"explain.images.count={images}"]
    overrides += ["explain.metrics.lime_stability_seeds=null", *OPTIONS, *MODELS[name][2]]
    cfg = compose_config("explain_app", overrides)
    start = time.perf_counter()
    summary = app.explain(cfg, out / name / "explain")
    summary["explain_seconds"] = time.perf_counter() - start
    summary["overrides"] = overrides
    return summary


def table(rows: dict) -> str:
    head = "| model (test acc.) | method | " + " | ".join(t for _, t in COLUMNS) + " | maps used |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 3)]
    for model, row in rows.items():
        for method, m in row["metrics"].items():
            cells = [f"{m[k]:.3f}" if isinstance(m.get(k), float) else "" for k, _ in COLUMNS]
            used = f"{m.get('images_used', '')} / {m.get('images_total', '')}"
            lines.append(f"| {model} ({row['accuracy']:.3f}) | {method} | " + " | ".join(cells) + f" | {used} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--only", default=",".join(MODELS))
    parser.add_argument("--out", default="runs/leaderboard")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "leaderboard.json"  # rows of earlier runs into the same --out are kept; a rerun model replaces its own
    rows = json.loads(saved.read_text()) if saved.is_file() else {}
    for name in args.only.split(","):
        run_dir, accuracy, train_seconds = train(name, out)
        summary = explain(name, run_dir, args.images, out)
        rows[name] = {"accuracy": accuracy, "train_seconds": train_seconds, **summary}
        saved.write_text(json.dumps(rows, indent=2, default=str))
        (out / "leaderboard.md").write_text(table(rows) + "\n")
        print(f"{name}: trained {train_seconds:.0f} s, explained {summary['explain_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
