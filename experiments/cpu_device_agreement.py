"""How far 1 and 2 XLA CPU devices disagree: the same 40-step digits/LeNet-5 run over several seeds (issue 28).

    python experiments/cpu_device_agreement.py --seeds 10 --out experiments/results/cpu_device_agreement.json

Each (seed, device count) is one `jaxdl-train` process (the count is fixed when JAX starts), run as
tests/test_cpu_devices.py runs it. Reports, per seed, the largest relative difference of any logged loss, the
largest absolute difference of any accuracy and of any weight between the counts, and the worst over all seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jaxdl.artifacts import load_model

REPO = Path(__file__).resolve().parents[1]


def train(run_dir: Path, seed: int, devices: int, env: dict) -> list[dict]:
    overrides = ["trainer.epochs=1", "trainer.batch_size=32", "trainer.eval_batch_size=128", "trainer.progress=false"]
    overrides += [f"trainer.seed={seed}", f"trainer.cpu_devices={devices}", f"hydra.run.dir={run_dir}"]
    done = subprocess.run(
        [sys.executable, "-m", "jaxdl.apps.train", *overrides], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def differences(one: list[dict], other: list[dict]) -> dict[str, float]:
    """The largest relative difference of any logged loss, and absolute of any accuracy (a fraction)."""
    worst = {"loss_rel": 0.0, "accuracy_abs": 0.0}
    for a, b in zip(one, other):
        for key in (k for k in a if "loss" in k):
            worst["loss_rel"] = max(worst["loss_rel"], abs(b[key] - a[key]) / abs(a[key]))
        for key in (k for k in a if "accuracy" in k):
            worst["accuracy_abs"] = max(worst["accuracy_abs"], abs(b[key] - a[key]))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--devices", type=int, default=2, help="compared with 1 device")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agreement-"))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "JAX_COMPILATION_CACHE_DIR": str(tmp / "cache")}
    rows = []
    for seed in range(args.seeds):
        runs = {n: tmp / f"s{seed}-d{n}" for n in (1, args.devices)}
        metrics = {n: train(run, seed, n, env) for n, run in runs.items()}
        weights = {n: jax.tree.leaves(nnx.state(load_model(run, "last").model, nnx.Param)) for n, run in runs.items()}
        worst_weight = max(float(np.max(np.abs(a - b))) for a, b in zip(weights[args.devices], weights[1]))
        rows.append({"seed": seed, **differences(metrics[1], metrics[args.devices]), "weights_abs": worst_weight})
        print(json.dumps(rows[-1]), flush=True)
    summary = {key: max(r[key] for r in rows) for key in ("loss_rel", "accuracy_abs", "weights_abs")}
    print(json.dumps({"worst": summary}))
    if args.out:
        args.out.write_text(json.dumps({"devices": args.devices, "rows": rows, "worst": summary}, indent=1))


if __name__ == "__main__":
    main()
