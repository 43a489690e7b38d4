"""Issue 22 on a GPU: the share of ResNet-50 / ViT-B/16 step time lost to input, per way of feeding the step.

    python experiments/bench_input_gpu.py --jpegs /tmp/bench_jpegs --pack /tmp/bench_pack --out runs/input_gpu.json
    python experiments/bench_input_gpu.py --smoke --jpegs ... --pack ...   # CPU rehearsal: batch 2, one step each

One process, one model at a time (224 px, bf16 compute, the trainer's `make_train_step`), batch 256: images/s
from device-resident synthetic uint8 batches, then from (a) the JPEG folder decoded in worker processes
(`data.worker_mode=process`, one per core), (b) the pack of the same JPEGs (`jaxdl-data pack`, max_side 256),
(c) the JPEG folder decoded by DALI on the GPU (`data.decoder=dali`; skipped with the reason where DALI cannot
run). `lost` = 1 - fed / device-resident. Folders and packs loop over their epochs if the run needs more
images than they hold. Make the inputs with `python experiments/bench_scale.py --make-jpegs DIR --count 4096`
and `jaxdl-data pack data=folder data.root=DIR out=PACK`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_scale import IMAGENET_MEAN, IMAGENET_STD, NETS, endless_batches, net_config, timed_rounds  # noqa: E402

FEEDS = {
    "folder_processes": lambda a: ["data=folder", f"data.root={a.jpegs}", "data.stream=true", "data.worker_mode=process"],
    "pack": lambda a: ["data=packed", f"data.path={a.pack}", "data.worker_mode=process", "data.verify=false"],
    "dali": lambda a: ["data=folder", f"data.root={a.jpegs}", "data.stream=true", "data.decoder=dali"],
}


def measure(args: argparse.Namespace, model: str) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdl import models, optim
    from jaxdl.data import load_dataset
    from jaxdl.data.pipeline import make_preprocess
    from jaxdl.data.stream import loader_for
    from jaxdl.errors import JaxdlError
    from jaxdl.parallel import batch_sharded, data_mesh
    from jaxdl.steps import init_state, make_train_step, split_model

    net, mesh = NETS[model], data_mesh()
    cfg = net_config(net, "data=folder")
    spec = models.InputSpec((224, 224), 3, 1000)
    tx = optim.build(cfg.optimizer, 10_000, 1)
    train_def, _, params, rest = split_model(models.build(cfg.model, spec, seed=0, dtype=jnp.bfloat16))
    state = init_state(params, rest, tx, mesh)
    preprocess = make_preprocess(cfg.data, spec.size, IMAGENET_MEAN, IMAGENET_STD, streamed=True)
    step = make_train_step(train_def, tx, preprocess, mesh, seed=0, compute_dtype=jnp.bfloat16)
    rng = np.random.default_rng(0)
    resident = [
        tuple(
            jax.device_put(a, batch_sharded(mesh))
            for a in (rng.integers(0, 256, (args.batch, 224, 224, 3), np.uint8), rng.integers(0, 10, args.batch).astype(np.int32))
        )
        for _ in range(4)
    ]

    def run(n: int, feed) -> None:
        nonlocal state
        for _ in range(n):
            state, metrics = step(state, *next(feed))
        jax.block_until_ready(state)

    def cycle(batches):
        while True:
            yield from batches

    run(1 + args.warmup, cycle(resident))
    result = {"model": model, "batch": args.batch, "device": jax.devices()[0].device_kind, "cores": os.cpu_count()}
    result["resident"] = timed_rounds(lambda n: run(n, cycle(resident)), args.steps, args.rounds, args.batch)
    for name, overrides in FEEDS.items():
        try:
            data = net_config(net, *overrides(args), "data.image_size=224", "data.channels=3").data
            loader = loader_for(load_dataset(data).train, mesh)
        except JaxdlError as err:
            result[name] = {"skipped": str(err)}
            continue

        feed = endless_batches(loader, args.batch)
        run(args.warmup, feed)
        rates = timed_rounds(lambda n: run(n, feed), args.steps, args.rounds, args.batch)
        median, top = float(np.median(rates)), float(np.median(result["resident"]))
        result[name] = {"images_per_s": rates, "lost": 1 - median / top}
        print(model, name, json.dumps(result[name]), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vit_b16")
    parser.add_argument("--jpegs", required=True)
    parser.add_argument("--pack", required=True)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="batch 2, one step, one round: checks every path runs")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.steps, args.rounds, args.warmup = 2, 1, 1, 0
    results = [measure(args, model) for model in args.models.split(",")]
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
