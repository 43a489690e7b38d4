"""Wall time of one 16-run LeNet-5 sweep on digits: Hydra's basic launcher vs submitit_local, 2 jobs at once.

    python experiments/sweep_launchers.py [--out runs/sweep_launchers] [--epochs 2]

The basic launcher runs the jobs one after another in the sweep's own process (JAX is
imported once); submitit_local starts every job as its own process, two at a time
(`hydra.sweeper.max_batch_size=2`). Both sweeps are the same 4 learning rates x 4 seeds.
Prints and writes `timings.json`, plus each sweep's comparison, under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRID = ["optimizer.learning_rate=1e-3,3e-3,1e-2,3e-2", "trainer.seed=0,1,2,3"]
LAUNCHERS = {
    "basic": [],
    "submitit_local_2": ["hydra/launcher=local", "hydra.sweeper.max_batch_size=2"],
}


def run_sweep(name: str, extra: list[str], out: Path, epochs: int) -> dict:
    sweep_dir = out / name
    args = [
        sys.executable,
        "-m",
        "jaxdl.apps.train",
        "--multirun",
        f"hydra.sweep.dir={sweep_dir}",
        "data=digits",
        "model=lenet5",
        f"trainer.epochs={epochs}",
        "trainer.progress=false",
        *GRID,
        *extra,
    ]
    start = time.perf_counter()
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (out / f"{name}.log").write_text(result.stdout + result.stderr)
    statuses = [json.loads(p.read_text())["status"] for p in sorted(sweep_dir.glob("*/status.json"))]
    return {
        "launcher": name,
        "wall_s": round(wall, 1),
        "returncode": result.returncode,
        "runs": len(statuses),
        "completed": statuses.count("completed"),
        "command": " ".join(args[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "sweep_launchers")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    timings = [run_sweep(name, extra, args.out, args.epochs) for name, extra in LAUNCHERS.items()]
    basic = timings[0]["wall_s"]
    for t in timings:
        t["vs_basic"] = round(t["wall_s"] / basic, 2)
        print(f"{t['launcher']:>18}: {t['wall_s']:7.1f} s  ({t['vs_basic']:.2f}x basic)  {t['completed']}/{t['runs']} completed")
    machine = {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()}
    (args.out / "timings.json").write_text(json.dumps({"machine": machine, "timings": timings}, indent=2) + "\n")


if __name__ == "__main__":
    main()
