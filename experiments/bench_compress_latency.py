"""Re-measure CPU latency of a run's float model and its compressed checkpoints, all interleaved in one process.

    python experiments/bench_compress_latency.py RUN [RUN/compress/int8 RUN/compress/channels50 ...] --repeats 100
    python experiments/bench_compress_latency.py ... --single-thread   # one XLA CPU thread

Prints median and fastest-call milliseconds at batch 1 and 256 and the speedups over the
float model. On a shared machine the fastest call is the least disturbed estimate, and one
thread avoids waiting on a core that another job holds.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("compressed", nargs="*")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--single-thread", action="store_true")
    args = parser.parse_args()
    if args.single_thread:  # must be set before JAX starts its CPU backend
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )
    from jaxdl.runs import load_run
    from xai.compress.report import jitted_forward, latencies

    runs = {"float32": load_run(args.run_dir), **{path.rstrip("/").split("/")[-1]: load_run(path) for path in args.compressed}}
    forwards = {name: jitted_forward(run.model, run.preprocess) for name, run in runs.items()}
    times = latencies(forwards, runs["float32"].dataset.test.images, args.batch_sizes, args.repeats)
    base_median, base_min = times["float32"]
    print("| model | " + " | ".join(f"ms @ {b} (median / min) | speedup @ {b} (median / min)" for b in args.batch_sizes) + " |")
    print("| --- |" + " --- | --- |" * len(args.batch_sizes))
    for name, (median, fastest) in times.items():
        cells = [
            f"{median[b]:.2f} / {fastest[b]:.2f} | {base_median[b] / median[b]:.2f}x / {base_min[b] / fastest[b]:.2f}x"
            for b in args.batch_sizes
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
