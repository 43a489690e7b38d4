"""Can int8 ONNX beat jaxdl's float model by 1.5x at batch 64? ONNX Runtime's quantization and session settings tried.

    python experiments/bench_export_ort.py --run /tmp/bench_export/lenet5 --out experiments/results/bench_export_ort.json

Exports the run's float model to ONNX (verified), quantizes it with ONNX Runtime's `quantize_static` under each
variant below (calibrated on the run's training images), and times every variant interleaved with jaxdl's jitted
float model (the target's baseline) at batch 1 and 64 in one process, with the test accuracy of each file.
`--profile` adds ONNX Runtime's per-operator profile of the default int8 file at batch 64 (where the time goes).
`--single-thread --cpu-time`: every runtime on one thread (XLA's Eigen pool off, ONNX Runtime intra-op 1 unless
the variant sets threads) and the process's CPU time per call instead of wall time: the cost of a call,
robust to a machine crowded by other work (wall-clock medians there measure the waiting).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

# (name, quantize_static options or None for the float file, session options)
VARIANTS = [
    ("float ONNX", None, {}),
    ("int8 QDQ S8S8 per-channel (jaxdl's default)", {}, {}),
    ("  + graph optimisation BASIC", {}, {"level": "ORT_ENABLE_BASIC"}),
    ("  + graph optimisation EXTENDED", {}, {"level": "ORT_ENABLE_EXTENDED"}),
    ("  + intra-op threads 1", {}, {"intra": 1}),
    ("  + intra-op threads 2", {}, {"intra": 2}),
    ("  + parallel execution, inter-op 2", {}, {"parallel": True, "inter": 2}),
    ("int8 QDQ U8S8 (uint8 activations, VNNI's pairing)", {"activation_type": "QUInt8"}, {}),
    ("int8 QDQ U8S8, asymmetric activations", {"activation_type": "QUInt8", "extra_options": {"ActivationSymmetric": False}}, {}),
    ("int8 QDQ S8S8 per-tensor weights", {"per_channel": False}, {}),
    ("int8 QDQ U8S8 reduce_range", {"activation_type": "QUInt8", "reduce_range": True}, {}),
    ("int8 QOperator U8S8 (QLinearConv, QLinearMatMul)", {"quant_format": "QOperator", "activation_type": "QUInt8"}, {}),
    ("int8 QOperator S8S8", {"quant_format": "QOperator"}, {}),
    ("int8 QDQ U8S8, every op quantized", {"activation_type": "QUInt8", "op_types_to_quantize": None}, {}),
]


def quant_options(spec: dict) -> dict:
    from onnxruntime.quantization import QuantFormat, QuantType

    options = dict(spec)
    if "activation_type" in options:
        options["activation_type"] = getattr(QuantType, options["activation_type"])
    if "quant_format" in options:
        options["quant_format"] = getattr(QuantFormat, options["quant_format"])
    return options


def session(path: Path, level: str = "ORT_ENABLE_ALL", intra: int = 0, inter: int = 0, parallel: bool = False, profile=False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads, options.inter_op_num_threads = intra, inter
    options.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_profiling = profile
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runner(sess):
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: np.ascontiguousarray(x)})[0]


def profile(path: Path, x: np.ndarray, calls: int = 20) -> list[tuple[str, float]]:
    """Share of ONNX Runtime's kernel time per operator type over `calls` runs of `x`."""
    sess = session(path, profile=True)
    run = runner(sess)
    for _ in range(calls):
        run(x)
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    per_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    total = sum(per_op.values())
    return [(op, round(100 * us / total, 1)) for op, us in per_op.most_common(8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished jaxdl-train run directory")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--calibration", type=int, default=256)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--single-thread", action="store_true")
    parser.add_argument("--cpu-time", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/bench_export_ort.json"))
    args = parser.parse_args()
    if args.single_thread:  # before JAX starts its CPU backend
        os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"

    import jax

    import jaxdl
    from jaxdl.data import load_dataset
    from jaxdl.export import export_model
    from jaxdl.timing import latencies
    from xai.compress.export_int8 import quantize_onnx

    loaded = jaxdl.load_model(args.run)
    data = load_dataset(loaded.cfg.data)
    work = Path(tempfile.mkdtemp(prefix="bench_export_ort_"))
    float_file = work / "float.onnx"
    export_model(loaded, "onnx", float_file, latency=False)
    batches = [img[None] for img in data.train.images[: args.calibration]]
    forwards, accuracy, files, failed = {"jaxdl float (XLA, jit)": jax.jit(loaded.__call__)}, {}, {}, {}
    for i, (name, spec, sess_options) in enumerate(VARIANTS):
        path = float_file
        try:
            if spec is not None:
                path = work / f"int8_{i}.onnx"
                if not path.exists():
                    quantize_onnx(float_file, path, batches, {}, **quant_options(spec))
            threads = {"intra": 1} if args.single_thread else {}
            forwards[name] = runner(session(path, **{**threads, **sess_options}))
            forwards[name](data.test.images[:2])
            files[name] = path
        except Exception as err:  # noqa: BLE001 - a variant ONNX Runtime cannot build or run is a result too
            forwards.pop(name, None)
            failed[name] = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            print(json.dumps({"variant": name, "failed": failed[name]}), flush=True)
    test = data.test
    for name, fn in forwards.items():
        logits = np.concatenate([np.asarray(fn(test.images[i : i + 500])) for i in range(0, len(test), 500)])
        accuracy[name] = float(np.mean(logits.argmax(-1) == test.labels))
    clock = time.process_time if args.cpu_time else time.perf_counter
    times = latencies(forwards, test.images[:64], (1, 64), args.repeats, clock=clock)
    base = times["jaxdl float (XLA, jit)"][0]
    rows = []
    for name in forwards:
        median, fastest = times[name]
        rows.append(
            {
                "variant": name,
                "test_accuracy": accuracy[name],
                "bytes": files[name].stat().st_size if name in files else None,
                **{f"ms_batch_{b}": median[b] for b in median},
                **{f"min_ms_batch_{b}": fastest[b] for b in fastest},
                **{f"speedup_vs_jaxdl_float_batch_{b}": base[b] / median[b] for b in median},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    machine = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    clock_name = "process CPU time" if args.cpu_time else "wall"
    result = {
        "machine": machine,
        "run": str(args.run),
        "clock": clock_name,
        "single_thread": args.single_thread,
        "rows": rows,
        "failed": failed,
    }
    if args.profile:
        result["profile_int8_batch_64"] = profile(files[VARIANTS[1][0]], test.images[:64])
        result["profile_float_batch_64"] = profile(float_file, test.images[:64])
        print(json.dumps({k: v for k, v in result.items() if k.startswith("profile")}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
