"""Stress XLA:CPU multi-device execution: count hangs and aborts per setting (issue 24).

    python experiments/stress_cpu_devices.py --devices 1,2,4 --settings default,sync_dispatch \
        --kinds train,lime --runs 40 --budget-s 900 --load 0,2 --out experiments/results/stress_cpu_devices.json

Each setting runs worker processes (`--worker`) that repeat one short job and print a line per finished
run: `train` is a pure-JAX data-parallel LeNet-sized step (replicated weights, batch split over the devices,
so XLA all-reduces the gradients) dispatched `--steps` times without a host sync, then synced (the minimal
reproducer: no jaxdl); `lime` is one xai LIME call and `ig` one Integrated Gradients call, their batches split over
the devices (`probe.SHARD_ON_CPU`). A worker
that prints nothing for `--timeout-s` is killed and counted as a hang; one that exits non-zero (XLA's
"Termination timeout for all reduce" aborts the process) as an abort; a new worker takes over. `--load N`
runs N busy-looping processes beside the workers. The harness stops each setting at `--runs` runs or its
share of `--budget-s`, so its total time is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# What each setting changes: extra XLA_FLAGS and JAX config values (set in the worker before JAX starts).
SETTINGS: dict[str, dict] = {
    "default": {},
    "sync_dispatch": {"config": {"jax_cpu_enable_async_dispatch": False}},
    "no_eigen_threads": {"flags": "--xla_cpu_multi_thread_eigen=false"},
    "no_concurrency_scheduler": {"flags": "--xla_cpu_enable_concurrency_optimized_scheduler=false"},
    "sync_every_1": {"sync_every": 1},
    "gloo": {"config": {"jax_cpu_collectives_implementation": "gloo"}},
    # XLA sizes its intra-op (Eigen) and client thread pools from PJRT_NPROC, else NPROC, when set
    # (DefaultThreadPoolSize): 4 threads per device, as jaxdl/cpu_devices.py sets them (PJRT_NPROC).
    "threads_4x": {"threads_per_device": 4},
    "jaxdl": {"jaxdl": True},  # what the apps set (jaxdl.cpu_devices.set_threads): the default's configuration
}


BURN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"  # busy until the harness is gone


def worker(args: argparse.Namespace) -> None:
    """Repeat one job forever (the parent kills us), printing `ok <seconds>` after each."""
    setting = SETTINGS[args.setting]
    # A deadlocked all-reduce aborts the process after this many seconds (XLA's default: 40).
    flags = f"--xla_force_host_platform_device_count={args.devices} --xla_cpu_collective_call_terminate_timeout_seconds=20"
    os.environ["XLA_FLAGS"] = f"{flags} {setting.get('flags', '')}".strip()
    if "threads_per_device" in setting:
        os.environ["NPROC"] = str(setting["threads_per_device"] * args.devices)
    if setting.get("jaxdl"):
        from jaxdl.cpu_devices import set_threads

        set_threads(args.devices)
    import jax

    for key, value in setting.get("config", {}).items():
        jax.config.update(key, value)
    jobs = {"train": lambda: train_job(args, setting.get("sync_every", args.sync_every)), "lime": lime_job, "ig": ig_job}
    job = jobs[args.kind]()
    seed, parent = 0, os.getppid()
    while os.getppid() == parent:
        start = time.perf_counter()
        job(seed)
        print(f"ok {time.perf_counter() - start:.2f}", flush=True)
        seed += 1


def train_job(args: argparse.Namespace, sync_every: int):
    """A LeNet-5-sized conv net trained data-parallel with plain jit + NamedSharding (no jaxdl)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    batch = 32 * jax.device_count() if args.devices > 1 else 32

    def init(key):
        k = jax.random.split(key, 4)
        return {
            "c1": jax.random.normal(k[0], (5, 5, 1, 6)) * 0.2,
            "c2": jax.random.normal(k[1], (5, 5, 6, 16)) * 0.08,
            "d1": jax.random.normal(k[2], (16 * 4 * 4, 120)) * 0.05,
            "d2": jax.random.normal(k[3], (120, 10)) * 0.1,
        }

    def loss_fn(p, x, y):
        conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        pool = lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = pool(jax.nn.relu(conv(x, p["c1"])))
        h = pool(jax.nn.relu(conv(h, p["c2"])))
        logits = jax.nn.relu(h.reshape(h.shape[0], -1) @ p["d1"]) @ p["d2"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

    @jax.jit
    def step(p, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)  # the batch is split: XLA all-reduces the gradients
        return jax.tree.map(lambda a, g: a - 0.01 * g, p, grads), loss

    x = jax.device_put(jax.random.uniform(jax.random.key(1), (batch, 28, 28, 1)), split)
    y = jax.device_put(jax.random.randint(jax.random.key(2), (batch,), 0, 10), split)

    def job(seed: int) -> None:
        p = jax.device_put(init(jax.random.key(seed)), replicated)
        for i in range(args.steps):
            p, loss = step(p, x, y)
            if (i + 1) % sync_every == 0:
                loss.block_until_ready()
        float(loss)

    return job


def explain_setup():
    """A small conv net and 16 images, with explainer batches split over every CPU device."""
    import numpy as np
    from flax import nnx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.explain_models import SmallConvNet
    from xai.explain import probe

    probe.SHARD_ON_CPU = True
    model = SmallConvNet(nnx.Rngs(0), channels=1, classes=4)
    return model, np.random.default_rng(0).integers(0, 255, (16, 16, 16, 1)).astype(np.uint8)


def lime_job():
    """One LIME call on 16 images x 256 samples with the batches split over the devices."""
    import jax
    import numpy as np

    from xai.explain.lime import LimeImage

    model, images = explain_setup()

    def job(seed: int) -> None:
        result = LimeImage(model, num_samples=256, batch_size=64)(images, np.zeros(16, int), key=seed)
        jax.block_until_ready(np.asarray(result.weights))

    return job


def ig_job():
    """One Integrated Gradients call on 16 images x 32 path points, 64 rows per forward/backward pass split over the devices
    (a fresh explainer per run, so each run also compiles, as a new explain call does)."""
    import numpy as np

    from xai.explain.gradients import IntegratedGradients

    model, images = explain_setup()

    def job(seed: int) -> None:
        np.asarray(IntegratedGradients(model, n_steps=32, internal_batch_size=64, seed=seed)(images, np.zeros(16, int)))

    return job


def run_setting(args, kind: str, devices: int, setting: str, load: int, deadline: float) -> dict:
    """Run workers until `args.runs` runs finished, hung or aborted, or the deadline."""
    runs, hangs, aborts, seconds = 0, 0, 0, []
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(load)]
    try:
        while runs < args.runs and time.time() < deadline:
            cmd = [sys.executable, __file__, "--worker", "--kind", kind, "--devices", str(devices), "--setting", setting]
            cmd += ["--steps", str(args.steps), "--sync-every", str(args.sync_every)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            os.set_blocking(proc.stdout.fileno(), False)
            last, started = time.time(), False
            while runs < args.runs and time.time() < deadline:
                line = proc.stdout.readline()
                if line.startswith("ok"):
                    runs, last, started = runs + 1, time.time(), True
                    seconds.append(float(line.split()[1]))
                    continue
                if proc.poll() is not None:
                    error = proc.stderr.read()
                    if not started and "Traceback" in error:  # Python failed, not XLA
                        raise SystemExit(f"the {kind} worker failed before its first run:\n{error[-2000:]}")
                    if proc.returncode != 0:
                        aborts, runs = aborts + 1, runs + 1
                        print(f"  abort: {error[-400:]!r}", flush=True)
                    break
                # the first run also compiles: allow it the start-up time on top
                if time.time() - last > args.timeout_s * (1 if started else 3):
                    hangs, runs = hangs + 1, runs + 1
                    break
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    finally:
        for b in burners:
            b.kill()
            b.wait()
    seconds.sort()
    median = seconds[len(seconds) // 2] if seconds else None
    return {"kind": kind, "devices": devices, "setting": setting, "load": load, "runs": runs, "hangs": hangs,
            "aborts": aborts, "median_run_s": median}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="train")
    parser.add_argument("--kinds", default="train,lime")
    parser.add_argument("--devices", default="1,2,4")
    parser.add_argument("--setting", default="default")
    parser.add_argument("--settings", default="default")
    parser.add_argument("--load", default="0,1", help="busy-looping processes beside the workers, per setting")
    parser.add_argument("--runs", type=int, default=40, help="runs per setting (at most)")
    parser.add_argument("--steps", type=int, default=100, help="train: steps per run")
    parser.add_argument("--sync-every", type=int, default=10**9, help="train: host sync every N steps (default: only at the end)")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="a run without progress this long is a hang")
    parser.add_argument("--budget-s", type=float, default=900.0, help="total time of the harness")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        args.devices = int(args.devices)
        return worker(args)
    combos = [
        (kind, int(d), s, int(load))
        for kind in args.kinds.split(",")
        for s in args.settings.split(",")
        for load in args.load.split(",")
        for d in args.devices.split(",")
    ]
    start, rows = time.time(), []
    for i, combo in enumerate(combos):
        share = (start + args.budget_s - time.time()) / (len(combos) - i)
        row = run_setting(args, *combo, deadline=time.time() + share)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"argv": sys.argv[1:], "load_average": os.getloadavg(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
