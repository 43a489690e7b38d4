"""Exported files side by side with jaxdl: test accuracy, bytes and CPU latency of float / int8 / channels50 models.

    python experiments/bench_export.py fashion --model lenet5 --run runs/bench_export/lenet5 --epochs 1
    python experiments/bench_export.py fashion --model resnet18 --run runs/bench_export/resnet18 --epochs 1 \
        --label-fraction 0.2
    python experiments/bench_export.py resnet50 --repeats 3

`fashion`: trains the model on Fashion-MNIST (unless `--run` already holds a finished run), compresses it
(`jaxdl-compress compress=int8` and `compress=channels50`), exports all three to ONNX and StableHLO with
`jaxdl-export` (each verified against jaxdl), loads every file back with `jaxdl.load_model` and measures in one
process the whole test split's accuracy and the latency at batch 1 and 64 of jaxdl (jitted), ONNX Runtime and
the reloaded StableHLO, all timed interleaved.
`resnet50`: torchvision's ResNet-50 at 224 px through jaxdl's importer (the pretrained file if `--weights-file`
is given, else random weights: latency only, accuracy n/a), exported to ONNX and StableHLO, an int8 ONNX of
it (ONNX Runtime's quantize_static calibrated on scikit-image's photos: an imported network has no training
set), timed interleaved with jaxdl and PyTorch eager (float32, the same weights) at batch 1 and 64.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("int8", "channels50")


def cli(*args: str) -> None:
    """Run one jaxdl app, stopping the benchmark with its output when it fails."""
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")


def prepare(run: Path, model: str, epochs: int, label_fraction: float) -> dict[str, Path]:
    """The float run, its compressed checkpoints and their exported files."""
    if not (run / "results.json").exists():
        cli(
            "jaxdl.apps.train",
            "data=fashion_mnist",
            f"data.label_fraction={label_fraction}",
            f"model={model}",
            f"trainer.epochs={epochs}",
            "trainer.progress=false",
            f"hydra.run.dir={run}",
        )
    files = {"float": run}
    for recipe in RECIPES:
        checkpoint = run / "compress" / recipe / "checkpoint"
        if not checkpoint.exists():
            finetune = ["compress.finetune.epochs=1"] if recipe == "channels50" else []  # int8 has no fine-tuning
            cli("xai.compress.app", f"run_dir={run}", f"compress={recipe}", *finetune, "latency.repeats=2")
        files[recipe] = checkpoint
    for name, source in list(files.items()):
        for fmt in ("onnx", "stablehlo"):
            out = run / "bench_export" / f"{name}.{fmt}"
            if not out.exists():
                cli("jaxdl.apps.export", f"model={source}", f"format={fmt}", f"out={out}")
            files[f"{name}/{fmt}"] = out
    return files


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def rows_of(forwards: dict, sizes: dict, accuracy: dict, images: np.ndarray, repeats: int, cpu_time: bool) -> list[dict]:
    """One row per forward: accuracy, bytes, median (and fastest) ms at batch 1 and 64, all timed interleaved."""
    import time

    from jaxdl.timing import latencies

    times = latencies(forwards, images, (1, 64), repeats, clock=time.process_time if cpu_time else time.perf_counter)
    rows = []
    for name, (median, fastest) in times.items():
        model, _, runtime = name.partition("/")
        rows.append(
            {
                "model": model,
                "runtime": runtime,
                "bytes": sizes.get(name),
                "test_accuracy": accuracy.get(name),
                **{f"latency_ms_batch_{b}": median[b] for b in median},
                **{f"min_ms_batch_{b}": fastest[b] for b in fastest},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def onnx_runner(path: Path, threads: int):
    from jaxdl.export.onnx import session

    sess = session(path, threads)
    return lambda x: sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x)})[0]


def measure_fashion(files: dict[str, Path], repeats: int, threads: int, cpu_time: bool) -> list[dict]:
    import jax

    import jaxdl
    from jaxdl.data import load_dataset

    test = load_dataset(jaxdl.load_model(files["float"]).cfg.data).test
    forwards, sizes, accuracy = {}, {}, {}
    for name, path in files.items():
        model = jaxdl.load_model(path)
        key = name if "/" in name else f"{name}/jaxdl (XLA, jit)"
        fn = model if "/" in name else jax.jit(model.__call__)
        if name.endswith("/onnx"):  # the file as jaxdl.load_model runs it, on `threads` intra-op threads
            model.run = onnx_runner(path, threads)
        logits = np.concatenate([np.asarray(fn(test.images[i : i + 500])) for i in range(0, len(test), 500)])
        forwards[key], sizes[key] = fn, size_of(path)
        accuracy[key] = float(np.mean(logits.argmax(-1) == test.labels))
    return rows_of(forwards, sizes, accuracy, test.images[:64], repeats, cpu_time)


def measure_resnet50(weights_file: str | None, repeats: int, work: Path, threads: int, cpu_time: bool) -> list[dict]:
    """Imported ResNet-50 at 224 px: jaxdl, ONNX Runtime float and int8, StableHLO and PyTorch eager."""
    import jax
    import torch
    import torchvision

    from jaxdl.artifacts import LoadedModel
    from jaxdl.export import export_model
    from jaxdl.export.samples import sample_photos
    from jaxdl.export.stablehlo import open_stablehlo
    from jaxdl.pretrained import import_model
    from onnxruntime.quantization import QuantType

    from xai.compress.export_int8 import quantize_onnx

    torch.manual_seed(0)  # the files in `work` are reused: the same random weights on every run
    torch_model = torchvision.models.resnet50(weights=None)
    if weights_file:
        torch_model.load_state_dict(torch.load(weights_file, map_location="cpu"))
    torch_model.eval()
    module, card = import_model("torchvision:resnet50", torch_model=torch_model)
    loaded = LoadedModel(module, card, Path("torchvision:resnet50"))
    files = {fmt: work / f"resnet50.{fmt}" for fmt in ("onnx", "stablehlo")}
    for fmt, out in files.items():
        if not out.exists():
            export_model(loaded, fmt, out, latency=False)
    photos = sample_photos(loaded)
    files["int8"] = work / "resnet50_int8.onnx"
    if not files["int8"].exists():
        # uint8 activations (x86 VNNI's U8S8 pairing): int8 ones make ONNX Runtime 1.32's QDQ pass give a
        # Transpose of ResNet-50 mismatched zero-point types (the session refuses the file)
        quantize_onnx(files["onnx"], files["int8"], [p[None] for p in photos], {}, activation_type=QuantType.QUInt8)
    preprocess = jax.jit(loaded.preprocess)

    def torch_eager(x: np.ndarray) -> np.ndarray:  # the same weights; jaxdl's preprocessing, then NCHW float32
        with torch.inference_mode():
            return torch_model(torch.from_numpy(np.asarray(preprocess(x)).transpose(0, 3, 1, 2).copy())).numpy()

    forwards = {
        "float/jaxdl (XLA, jit)": jax.jit(loaded.__call__),
        "float/onnx": onnx_runner(files["onnx"], threads),
        "float/stablehlo": open_stablehlo(files["stablehlo"]),
        "int8/onnx": onnx_runner(files["int8"], threads),
        "float/pytorch eager": torch_eager,
    }
    sizes = {
        "float/onnx": size_of(files["onnx"]),
        "float/stablehlo": size_of(files["stablehlo"]),
        "int8/onnx": size_of(files["int8"]),
    }
    accuracy = {name: None for name in forwards}  # no labelled 224-px test set offline
    if threads:
        torch.set_num_threads(threads)
    return rows_of(forwards, sizes, accuracy, photos, repeats, cpu_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["fashion", "resnet50"])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--label-fraction", type=float, default=1.0)
    parser.add_argument("--weights-file", default=None, help="torchvision ResNet-50 state dict (.pth); default random")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--single-thread", action="store_true", help="every runtime on one thread")
    parser.add_argument("--cpu-time", action="store_true", help="process CPU time per call instead of wall time")
    args = parser.parse_args()
    threads = 1 if args.single_thread else 0
    if args.single_thread:  # before JAX starts its CPU backend
        os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    if args.what == "fashion":
        run = (args.run or REPO / "runs" / "bench_export" / args.model).absolute()
        rows = measure_fashion(prepare(run, args.model, args.epochs, args.label_fraction), args.repeats, threads, args.cpu_time)
        name = args.model
    else:
        work = Path(tempfile.gettempdir()) / "bench_export_resnet50"
        work.mkdir(exist_ok=True)
        rows = measure_resnet50(args.weights_file, args.repeats, work, threads, args.cpu_time)
        name = "resnet50"
    out = args.out or REPO / "experiments" / "results" / f"bench_export_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    settings = {"weights": args.weights_file or "random", "single_thread": args.single_thread, "cpu_time": args.cpu_time}
    out.write_text(json.dumps({"machine": machine, **settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
