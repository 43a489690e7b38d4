"""A run's results do not depend on how many XLA CPU devices split its batch (`trainer.cpu_devices`).

The same 40-step digits/LeNet-5 run with 1, 2 and 4 devices, each in its own process (the device
count is fixed when JAX starts). Measured spread on this machine: metrics agree to 1.1e-7 relative,
weights to 1.6e-5 absolute (Adam's normalised update magnifies the last-bit differences of the
gradient's reduction order); the bounds below are a few times that.
"""

from __future__ import annotations

import json

import jax
import numpy as np
from flax import nnx

from jaxdl.artifacts import load_model
from tests.conftest import run_cli

METRICS_RTOL = 1e-6
WEIGHTS_ATOL = 1e-4
DEVICES = (1, 2, 4)


def train(run_dir, devices: int, env: dict) -> list[dict]:
    result = run_cli(
        "-m",
        "jaxdl.apps.train",
        "trainer.epochs=1",
        "trainer.batch_size=32",
        "trainer.eval_batch_size=128",
        "trainer.progress=false",
        f"trainer.cpu_devices={devices}",
        f"hydra.run.dir={run_dir}",
        env={**env, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{devices} device(s)" in result.stdout + result.stderr
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_metrics_and_weights_agree_across_cpu_device_counts(tmp_path, compile_cache_env):
    metrics = {n: train(tmp_path / f"d{n}", n, compile_cache_env) for n in DEVICES}
    weights = {n: jax.tree.leaves(nnx.state(load_model(tmp_path / f"d{n}", "last").model, nnx.Param)) for n in DEVICES}
    one = metrics[1]
    keys = [k for k in one[0] if "loss" in k or "accuracy" in k]
    assert keys and len(one) >= 2
    for n in DEVICES[1:]:
        assert [row["step"] for row in metrics[n]] == [row["step"] for row in one]
        for row, ref in zip(metrics[n], one):
            for key in (k for k in ref if "loss" in k or "accuracy" in k):
                assert abs(row[key] - ref[key]) <= METRICS_RTOL * abs(ref[key]), (n, key, row[key], ref[key])
        worst = max(float(np.max(np.abs(a - b))) for a, b in zip(weights[n], weights[1]))
        assert worst < WEIGHTS_ATOL, (n, worst)
