"""One process of the two-process `jax.distributed` test (or the single-process reference).

    python tests/distributed_worker.py OUT PROCESS_ID COORDINATOR   # PROCESS_ID 0 or 1
    python tests/distributed_worker.py OUT reference

Each process builds the same tiny digits experiment, takes the first training batch
of epoch 1 from its `Loader` shard, runs two data-parallel steps and evaluates the
validation split; the reference feeds the same global batch in one process. Then
the two processes train one short epoch together through `train_and_evaluate`, on the
digits arrays and on a streamed folder tree with unreadable files in each process's shard.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OVERRIDES = [
    "model.width=0.25",
    "trainer.batch_size=32",
    "trainer.eval_batch_size=64",
    "trainer.epochs=1",
    "trainer.progress=false",
    "optimizer=sgd",
    "optimizer.learning_rate=0.1",
]
PROCESSES = 2


def main(out: Path, role: str, coordinator: str | None) -> None:
    import jax

    from jaxdl import distributed
    from jaxdl.data.pipeline import Loader, epoch_order
    from jaxdl.evaluate import evaluate
    from jaxdl.steps import make_predict, make_train_step
    from jaxdl.trainer import build_experiment, train_and_evaluate
    from tests.conftest import compose_config

    reference = role == "reference"
    extra = (
        []
        if reference
        else [
            f"trainer.coordinator_address={coordinator}",
            f"trainer.num_processes={PROCESSES}",
            f"trainer.process_id={role}",
            "trainer.distributed=true",
        ]
    )
    cfg = compose_config(*OVERRIDES, *extra)
    started = distributed.initialize(cfg.trainer)
    exp = build_experiment(cfg)
    t = cfg.trainer
    loader = Loader(exp.dataset.train, exp.mesh)
    if reference:  # the global batch the two processes assemble from their shards
        n, local = len(exp.dataset.train), t.batch_size // PROCESSES
        order = epoch_order(n // PROCESSES, local, t.seed, 1)[0]
        images, labels = loader.batch(np.concatenate([p + PROCESSES * order for p in range(PROCESSES)]))
    else:
        images, labels = next(loader.train_batches(t.batch_size, t.seed, 1))
    step = make_train_step(exp.train_def, exp.tx, exp.preprocess, exp.mesh, t.seed)
    state = exp.state
    for _ in range(2):
        state, metrics = step(state, images, labels)
    predict = make_predict(exp.eval_def, exp.preprocess, exp.mesh)
    val = evaluate(predict, state.params, state.model_state, Loader(exp.dataset.val, exp.mesh), t.eval_batch_size)
    host = lambda x: np.asarray(x.addressable_data(0))  # replicated: every process holds all of it
    result = {
        "started": started,
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "loss_sum": float(host(metrics["loss_sum"])),
        "params": [host(leaf).tolist() for leaf in jax.tree.leaves(state.params)],
        "val_logits": val.logits.tolist(),
        "val_labels": val.labels.tolist(),
    }
    name = "reference" if reference else f"process{role}"
    if not reference and os.environ.get("JAXDL_TEST_FOLDER"):
        result["folder"] = folder_shards(cfg, exp.mesh, os.environ["JAXDL_TEST_FOLDER"], predict, state)
    (out / f"{name}.json").write_text(json.dumps(result))
    if not reference:
        trackers = ["trainer.loggers=[jsonl,tensorboard,mlflow]"]  # only process 0 may log to them
        summary = train_and_evaluate(compose_config(*OVERRIDES, *extra, *trackers), out / "run")
        (out / f"{name}_summary.json").write_text(json.dumps({k: summary[k] for k in ("test/accuracy", "best_step")}))
    if not reference and os.environ.get("JAXDL_TEST_BAD_FOLDER"):  # bad files in both processes' shards
        streamed = ["data=folder", f"data.root={os.environ['JAXDL_TEST_BAD_FOLDER']}", "data.image_size=8", "data.stream=true"]
        train_and_evaluate(compose_config(*OVERRIDES, *extra, *streamed), out / "folder_run")


def folder_shards(cfg, mesh, root: str, predict, state) -> dict:
    """This process's shard of a `data=folder` tree, the files it streams in epoch 1, and its validation result."""
    from jaxdl.data import load_dataset
    from jaxdl.data.stream import StreamLoader
    from jaxdl.evaluate import evaluate
    from tests.conftest import compose_config

    dataset = load_dataset(compose_config("data=folder", f"data.root={root}", "data.image_size=8", "data.stream=true").data)
    loader = StreamLoader(dataset.train, mesh)
    t = cfg.trainer
    order, _ = loader.train_order(t.batch_size, t.seed, 1)
    images, _ = next(loader.train_batches(t.batch_size, t.seed, 1))
    val = evaluate(predict, state.params, state.model_state, StreamLoader(dataset.val, mesh), t.eval_batch_size)
    return {
        "shard_files": [str(p) for p in dataset.train.paths[loader.shard]],
        "train_size": len(dataset.train),
        "epoch_files": [str(p) for p in dataset.train.paths[order]],
        "global_batch": list(images.shape),
        "val_labels": val.labels.tolist(),
    }


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
