"""Where one Integrated Gradients pass on ResNet-50 (224 px) spends its time: jaxdl (XLA:CPU) against captum (PyTorch).

    python experiments/profile_ig_resnet50.py [--rows 16] [--threads 2] [--out FILE]
    XLA_FLAGS=--xla_cpu_use_xnnpack=true python experiments/profile_ig_resnet50.py ...

One IG chunk is one forward and one input-gradient pass of `--rows` images (path points x images). Both sides
run the same chunk: jaxdl's `IntegratedGradients` (its whole jitted scan, 1 chunk) under `jax.profiler`, its XLA
thunks summed by kind (forward conv, input-gradient conv, the lhs-dilated convs of strided layers' gradients,
fusions, copies/transposes) from the compiled HLO's op metadata; captum's `attribute` under `torch.profiler`,
aten ops summed by self time. Also: how many convolutions the compiled IG step holds (the weights' gradients
must be dead code: ResNet-50 has 53 convs, so ~53 forward + ~53 input-gradient convs and no more).
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import tempfile
import time

import jax
import numpy as np
import torch
from captum.attr import IntegratedGradients as CaptumIG

from jaxdl.data.pipeline import Preprocess
from jaxdl.pretrained import import_model, source_metadata
from jaxdl.pretrained.verify import random_torch_model
from xai.explain.gradients import IntegratedGradients

from bench_throughput import report


def hlo_kinds(hlo: str) -> dict[str, str]:
    """Instruction name -> kind, from the optimized HLO text and each instruction's op_name metadata."""
    kinds = {}
    for line in hlo.splitlines():
        m = re.match(r"\s*(?:ROOT )?(%?[\w.\-]+) = \S+ (\w[\w\-]*)\(", line)
        if not m:
            continue
        name, opcode = m.group(1).lstrip("%"), m.group(2)
        op_name = (re.search(r'op_name="([^"]*)"', line) or [None, ""])[1]
        backward = "transpose(" in op_name
        if opcode == "convolution" or "convolution" in name:
            kind = "conv lhs-dilated (strided conv's input gradient)" if "lhs_dilate" in line else None
            kind = kind or ("conv input gradient" if backward else "conv forward")
        elif opcode in ("copy", "transpose") or "transpose" in name or "copy" in name:
            kind = "copy / transpose"
        elif opcode == "fusion":
            kind = "fusion (backward)" if backward else "fusion (forward)"
        else:
            kind = f"{opcode} ({'backward' if backward else 'forward'})"
        kinds[name] = kind
    return kinds


def jax_profile(ig: IntegratedGradients, prepared, repeats: int) -> dict:
    compiled = ig._jitted.lower(ig.probe.state, *prepared).compile()
    hlo = compiled.as_text()
    kinds = hlo_kinds(hlo)
    convs = collections.Counter(k for k in kinds.values() if k.startswith("conv"))
    call = lambda: jax.block_until_ready(compiled(ig.probe.state, *prepared))
    call()
    trace = tempfile.mkdtemp(prefix="ig_trace_")
    jax.profiler.start_trace(trace)
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    wall = (time.perf_counter() - start) / repeats
    jax.profiler.stop_trace()
    data = jax.profiler.ProfileData.from_file(sorted(glob.glob(f"{trace}/**/*.xplane.pb", recursive=True))[-1])
    per_kind, per_op = collections.Counter(), collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            for event in line.events:
                if event.name.startswith("ThunkExecutor") or event.name not in kinds:
                    continue
                per_kind[kinds[event.name]] += event.duration_ns / 1e9 / repeats
                per_op[event.name] += event.duration_ns / 1e9 / repeats
    return {
        "wall_s": wall,
        "hlo_convolutions": dict(convs),
        "thunk_seconds_by_kind": {k: round(v, 3) for k, v in per_kind.most_common()},
        "top_thunks_s": {k: round(v, 3) for k, v in per_op.most_common(12)},
    }


def torch_profile(captum, x, targets, steps: int, rows: int, repeats: int) -> dict:
    call = lambda: captum.attribute(x, target=targets, n_steps=steps, internal_batch_size=rows)
    call()
    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            call()
    wall = (time.perf_counter() - start) / repeats
    ops = {e.key: e.self_cpu_time_total / 1e6 / repeats for e in prof.key_averages()}
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:12]
    return {"wall_s_profiled": wall, "top_ops_self_s": {k: round(v, 3) for k, v in top}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16, help="rows per pass: 2 images x rows/2 path points, one chunk")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", choices=("jaxdl", "captum"), default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = "torchvision:resnet50"
    torch_model = random_torch_model(source)
    module, _ = import_model(source, torch_model=torch_model, input_size=args.size)
    meta = source_metadata(source)
    batch, steps = 2, args.rows // 2
    images = np.random.default_rng(0).uniform(size=(batch, args.size, args.size, 3)).astype(np.float32)
    targets = np.arange(batch) * 7
    result = {"rows": args.rows, "torch_threads": args.threads, "xla_flags": os.environ.get("XLA_FLAGS", "")}
    if args.only != "captum":
        preprocess = Preprocess((args.size, args.size), tuple(meta["mean"]), tuple(meta["std"]))
        ig = IntegratedGradients(module, preprocess=preprocess, n_steps=steps, internal_batch_size=args.rows)
        result["jaxdl"] = jax_profile(ig, ig.prepare(images, targets), args.repeats)
    if args.only != "jaxdl":
        mean, std = torch.tensor(meta["mean"]).view(1, -1, 1, 1), torch.tensor(meta["std"]).view(1, -1, 1, 1)
        captum = CaptumIG(lambda x: torch_model((x - mean) / std))
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        result["captum"] = torch_profile(captum, x, targets.tolist(), steps, args.rows, args.repeats)
    report(result, args.out)


if __name__ == "__main__":
    main()
