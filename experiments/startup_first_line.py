"""Start-up of `jaxdl-train`: seconds to its first output line and to the line that reports the built model.

    python experiments/startup_first_line.py [REPO]   # REPO: a checkout to time (default: this one)

Runs `python -m jaxdl.apps.train trainer.epochs=1` (digits, LeNet-5) in a fresh temporary run directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    root = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root, "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "jaxdl.apps.train", "trainer.epochs=1", "trainer.progress=false"]
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*command, f"hydra.run.dir={run_dir}"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        first = model = None
        for line in proc.stdout:
            now = time.perf_counter() - start
            first = first or (now, line.strip()[:70])
            if model is None and " parameters, " in line:
                model = now
        proc.wait()
    print(
        f"{root}: first line {first[0]:.2f} s ({first[1]!r}), model line {model:.2f} s, exit {time.perf_counter() - start:.2f} s"
    )


if __name__ == "__main__":
    main()
