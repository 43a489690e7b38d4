"""Exported files side by side with jaxdl: test accuracy, bytes and CPU latency of float / int8 models.

    python experiments/bench_export.py --run runs/bench_export/lenet5 --out experiments/results/bench_export.json

Trains LeNet-5 on Fashion-MNIST for `--epochs` (unless `--run` already holds a finished run), compresses
it to int8 (`jaxdl-compress compress=int8`), exports the float run and the int8 checkpoint to ONNX and
StableHLO with `jaxdl-export` (each verified against jaxdl), then loads every file back with
`jaxdl.load_model` and measures, in one process, the whole test split's accuracy and the median latency
at batch 1 and 64 of: jaxdl (jitted), ONNX Runtime and the reloaded StableHLO.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> None:
    """Run one jaxdl app, stopping the benchmark with its output when it fails."""
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")


def prepare(run: Path, epochs: int) -> dict[str, Path]:
    """The float run, its int8 checkpoint and their four exported files."""
    if not (run / "results.json").exists():
        cli(
            "jaxdl.apps.train",
            "data=fashion_mnist",
            "model=lenet5",
            f"trainer.epochs={epochs}",
            "trainer.progress=false",
            f"hydra.run.dir={run}",
        )
    int8 = run / "compress" / "int8" / "checkpoint"
    if not int8.exists():
        cli("xai.compress.app", f"run_dir={run}", "compress=int8")
    files = {"float": run, "int8": int8}
    for name, model in [("float", run), ("int8", int8)]:
        for fmt, suffix in [("onnx", "onnx"), ("stablehlo", "stablehlo")]:
            out = run / "bench_export" / f"{name}.{suffix}"
            if not out.exists():
                cli("jaxdl.apps.export", f"model={model}", f"format={fmt}", f"out={out}")
            files[f"{name}/{fmt}"] = out
    return files


def measure(files: dict[str, Path], repeats: int) -> list[dict]:
    import jax

    import jaxdl
    from jaxdl.data import load_dataset
    from jaxdl.export.verify import latency_ms

    test = load_dataset(jaxdl.load_model(files["float"]).cfg.data).test
    rows = []
    for name, path in files.items():
        model = jaxdl.load_model(path)
        runtime = name.split("/")[1] if "/" in name else "jaxdl (XLA, jit)"
        fn = jax.jit(model.__call__) if name in ("float", "int8") else model
        logits = np.concatenate([np.asarray(fn(test.images[i : i + 500])) for i in range(0, len(test), 500)])
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
        rows.append(
            {
                "model": name.split("/")[0],
                "runtime": runtime,
                "file": str(path),
                "bytes": size,
                "test_accuracy": float(np.mean(logits.argmax(-1) == test.labels)),
                "latency_ms_batch_1": latency_ms(fn, test.images[:1], repeats),
                "latency_ms_batch_64": latency_ms(fn, test.images[:64], repeats),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "bench_export" / "lenet5")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "bench_export.json")
    args = parser.parse_args()
    rows = measure(prepare(args.run.absolute(), args.epochs), args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
