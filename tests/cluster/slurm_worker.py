"""One task of a multi-task SLURM job (`srun python tests/cluster/slurm_worker.py OUT RUN_DIR OVERRIDES...`).

`jax.distributed` starts from SLURM's variables alone (trainer.distributed=auto, nothing else
configured). Each process reports the rows it fed into the first two global training batches
and the global batches as every process sees them, then the processes train together
through `train_and_evaluate` into RUN_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(out: Path, run_dir: Path, overrides: list[str]) -> None:
    import jax
    from jax.experimental import multihost_utils

    from jaxdl import distributed
    from jaxdl.data.pipeline import Loader
    from jaxdl.trainer import build_experiment, train_and_evaluate
    from tests.conftest import compose_config

    cfg = compose_config(*overrides)
    started = distributed.initialize(cfg.trainer)
    exp = build_experiment(cfg)
    t = cfg.trainer
    batches = []
    for _, (images, _labels) in zip(
        range(2), Loader(exp.dataset.train, exp.mesh, on_device=False).train_batches(t.batch_size, t.seed, 1)
    ):
        local = np.concatenate(
            [np.asarray(s.data) for s in sorted(images.addressable_shards, key=lambda s: s.index[0].start or 0)]
        )
        batches.append(
            {"local": local.tolist(), "global": np.asarray(multihost_utils.process_allgather(images, tiled=True)).tolist()}
        )
    summary = train_and_evaluate(cfg, run_dir)
    report = {
        "started": started,
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "batches": batches,
        "test/accuracy": summary["test/accuracy"],
    }
    (out / f"process{jax.process_index()}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
