"""One process of the two-process `jax.distributed` run over a pack (tests/test_packed_distributed.py).

    python tests/packed_distributed_worker.py OUT PACK PROCESS_ID COORDINATOR   # PROCESS_ID 0 or 1

The pack's images are constant colours whose red value is the example's number, so the rows a process
feeds to the mesh say which records it decoded. Each process streams epoch 1 of the pack's training
split through Grain worker processes and writes its shard, the epoch's order and the numbers read back
from the pixels of its rows; then both train one epoch together from the pack (threads) through
`train_and_evaluate`, into one run directory that only process 0 may write.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROCESSES, BATCH = 2, 16
TRAIN = [
    "model.width=0.25",
    f"trainer.batch_size={BATCH}",
    "trainer.eval_batch_size=32",
    "trainer.epochs=1",
    "trainer.progress=false",
    "optimizer=sgd",
    "optimizer.learning_rate=0.1",
]


def packed(pack: str, workers: int, mode: str) -> list[str]:
    return ["data=packed", f"data.path={pack}", "data.image_size=8", f"data.workers={workers}", f"data.worker_mode={mode}"]


def main(out: Path, pack: str, role: str, coordinator: str) -> None:
    import jax

    from jaxdl import distributed
    from jaxdl.data import load_dataset
    from jaxdl.data.stream import StreamLoader
    from jaxdl.parallel import data_mesh
    from jaxdl.trainer import train_and_evaluate
    from tests.conftest import compose_config

    cluster = [
        f"trainer.coordinator_address={coordinator}",
        f"trainer.num_processes={PROCESSES}",
        f"trainer.process_id={role}",
        "trainer.distributed=true",
    ]
    cfg = compose_config(*TRAIN, *cluster, *packed(pack, 1, "process"))
    distributed.initialize(cfg.trainer)
    split = load_dataset(cfg.data).train
    loader = StreamLoader(split, data_mesh())
    order, _ = loader.train_order(BATCH, cfg.trainer.seed, 1)
    read, colours = [], set()
    for images, _ in loader.train_batches(BATCH, cfg.trainer.seed, 1):
        for shard in sorted(images.addressable_shards, key=lambda s: s.index[0].start):
            rows = np.asarray(shard.data)
            colours |= {len(np.unique(row.reshape(-1, 3), axis=0)) for row in rows}
            read += rows[:, 0, 0, 0].tolist()  # red = the example's number
    result = {
        "processes": jax.process_count(),
        "train_size": len(split),
        "shard_records": split.indices[loader.shard].tolist(),
        "epoch_records": split.indices[order].tolist(),
        "read_records": read,
        "colours_per_image": sorted(colours),
    }
    summary = train_and_evaluate(compose_config(*TRAIN, *cluster, *packed(pack, 2, "thread")), out / "run")
    result["summary"] = {k: summary[k] for k in ("test/accuracy", "best_step")}
    (out / f"process{role}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
