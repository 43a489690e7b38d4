"""Multi-host JAX: `jax.distributed.initialize()` when the config asks, and who writes files.

One process per GPU (SLURM: one task per GPU, each task seeing every GPU of its
node); every process runs the same program over one global mesh. SLURM's
variables fill the coordinator address, process count and id, and JAX picks the
process's GPU from SLURM_LOCALID; elsewhere `trainer.coordinator_address`,
`trainer.num_processes` and `trainer.process_id` say them.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxdl.errors import ConfigError

log = logging.getLogger("jaxdl")

SETTINGS = ("auto", "true", "false")
_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


def _setting(trainer: Mapping[str, Any]) -> str:
    value = trainer.get("distributed", "false")
    value = {True: "true", False: "false", None: "false"}.get(value, str(value).lower())
    if value not in SETTINGS:
        raise ConfigError(f"trainer.distributed must be one of {', '.join(SETTINGS)}, got '{value}'")
    return value


def in_slurm_step_with_several_tasks() -> bool:
    """True inside `srun` with more than one task: the processes of one multi-host job."""
    return all(v in os.environ for v in _SLURM_VARS) and int(os.environ["SLURM_NTASKS"]) > 1


def initialize(trainer: Mapping[str, Any]) -> bool:
    """Start `jax.distributed` once if `trainer.distributed` asks (auto: under SLURM with several tasks,
    or when a coordinator address is configured); returns whether this is a multi-process run."""
    if jax.distributed.is_initialized():
        return True
    setting = _setting(trainer)
    address = trainer.get("coordinator_address")
    if setting == "false" or (setting == "auto" and not (address or in_slurm_step_with_several_tasks())):
        return False
    explicit = {k: trainer.get(k) for k in ("num_processes", "process_id")}
    if address and None in explicit.values():
        raise ConfigError(
            "trainer.coordinator_address needs trainer.num_processes and trainer.process_id too "
            "(under SLURM leave all three unset)"
        )
    jax.distributed.initialize(coordinator_address=address, **explicit)
    log.info(
        "jax.distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def is_main_process() -> bool:
    """Process 0 writes logs, metrics, reports and plots; checkpoints are written by all (Orbax)."""
    return jax.process_index() == 0


def gather_text(text: str) -> list[str]:
    """`text` of every process, in process order; a collective, so every process must call it at the same point."""
    if jax.process_count() == 1:
        return [text]
    data = np.frombuffer(text.encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array([len(data)], np.int32))).reshape(-1)
    padded = np.zeros(max(int(sizes.max()), 1), np.uint8)  # one byte at least: no empty collective
    padded[: len(data)] = data
    rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return [bytes(row[:size]).decode() for row, size in zip(rows, sizes)]
