"""A pack read by a two-process `jax.distributed` run on loopback: disjoint shards whose union is the split,
each decoded in the process that owns it (Grain worker processes), and one epoch trained together that only
process 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxdl.cpu_devices import xla_threads
from jaxdl.data.base import Dataset, Split
from jaxdl.data.packed import META, pack
from tests.conftest import REPO
from tests.test_distributed import _free_port, wait_for_all

WORKER = REPO / "tests" / "packed_distributed_worker.py"
SIZES = {"train": 128, "val": 32, "test": 32}


def _numbered_images(first: int, count: int) -> Split:
    """8x8 constant colours: red = the example's number, green / blue = its class (0 or 1), so a model can learn it."""
    numbers = np.arange(first, first + count)
    labels = (numbers % 2).astype(np.int32)
    colours = np.stack([numbers, 255 * labels, 255 * (1 - labels)], axis=1).astype(np.uint8)
    return Split(np.broadcast_to(colours[:, None, None, :], (count, 8, 8, 3)).copy(), labels)


@pytest.fixture(scope="module")
def results(tmp_path_factory, compile_cache_env):
    out = tmp_path_factory.mktemp("packed_distributed")
    firsts = np.cumsum([0, *SIZES.values()])
    splits = {name: _numbered_images(int(first), n) for (name, n), first in zip(SIZES.items(), firsts)}
    pack(Dataset("numbered", **splits, class_names=("odd", "even")[::-1]), out / "pack", fmt="raw", workers=0, shard_size=48)
    coordinator = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, **compile_cache_env, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    env["PJRT_NPROC"] = str(xla_threads(1))
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(out), str(out / "pack"), role, coordinator],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for role in ("0", "1")
    ]
    wait_for_all(procs)
    return out, [json.loads((out / f"process{i}.json").read_text()) for i in (0, 1)]


def test_processes_read_disjoint_shards_of_the_pack_whose_union_is_its_split(results):
    out, r = results
    assert [p["processes"] for p in r] == [2, 2]
    train = json.loads((out / "pack" / META).read_text())["splits"]["train"]
    assert len(train["shards"]) == 3 and sum(train["counts"]) == SIZES["train"] == r[0]["train_size"]
    shards = [set(p["shard_records"]) for p in r]
    assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(SIZES["train"]))
    for p, shard in zip(r, shards):
        # the rows a process fed are the records of its own shard, in the epoch's order, decoded from the pack
        assert p["read_records"] == p["epoch_records"] and set(p["read_records"]) <= shard
        assert len(set(p["read_records"])) == SIZES["train"] // 2 and p["colours_per_image"] == [1]
    assert not set(r[0]["read_records"]) & set(r[1]["read_records"])


def test_two_processes_train_from_the_pack_and_only_process_0_writes(results):
    out, r = results
    assert r[0]["summary"] == r[1]["summary"] and r[0]["summary"]["test/accuracy"] > 0.5
    written = json.loads((out / "run" / "results.json").read_text())
    assert written["test/accuracy"] == r[0]["summary"]["test/accuracy"]
    records = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in records] == [1, 1]  # one epoch record and the test record: written once
    assert (out / "run" / "checkpoints" / str(r[0]["summary"]["best_step"])).is_dir()
