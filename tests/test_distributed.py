"""Multi-host JAX on one machine: two CPU processes with a loopback coordinator vs one process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxdl import distributed
from jaxdl.cpu_devices import xla_threads
from jaxdl.errors import ConfigError
from jaxdl.data import load_dataset
from jaxdl.data.folder_tools import write_folder
from tests.conftest import REPO, compose_config

WORKER = REPO / "tests" / "distributed_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(out, env: dict, role: str, devices: int, coordinator: str | None = None) -> subprocess.Popen:
    env = {**os.environ, **env, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    env["PJRT_NPROC"] = str(xla_threads(devices))  # XLA's threads for that many devices, as the apps set them
    args = [sys.executable, str(WORKER), str(out), role] + ([coordinator] if coordinator else [])
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _unreadable_validation_files(tree: Path) -> list[Path]:
    """Validation examples 0 and 1 of a folder tree: process 0 reads the first, only process 1 the second."""
    val = load_dataset(compose_config("data=folder", f"data.root={tree}", "data.image_size=8", "data.stream=true").data).val
    return [Path(val.paths[0]), Path(val.paths[1])]


def wait_for_all(procs: list[subprocess.Popen]) -> None:
    """Wait for processes that run together (none is left behind if one hangs); each must exit 0."""
    try:
        logs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]


@pytest.fixture(scope="module")
def results(tmp_path_factory, compile_cache_env):
    out = tmp_path_factory.mktemp("distributed")
    coordinator = f"127.0.0.1:{_free_port()}"
    folder = out / "digits_folder"  # data=folder: every process streams its own shard of these files
    write_folder(load_dataset(compose_config("data=digits").data), folder)
    bad_folder = Path(shutil.copytree(folder, out / "bad_folder"))
    env = {**compile_cache_env, "JAXDL_TEST_FOLDER": str(folder), "JAXDL_TEST_BAD_FOLDER": str(bad_folder)}
    for path in _unreadable_validation_files(bad_folder):
        path.write_bytes(b"not an image")
    procs = [_start(out, env, "reference", 4), _start(out, env, "0", 2, coordinator), _start(out, env, "1", 2, coordinator)]
    wait_for_all(procs)
    return out, {name: json.loads((out / f"{name}.json").read_text()) for name in ("reference", "process0", "process1")}


def test_both_processes_see_the_global_devices(results):
    _, r = results
    for name in ("process0", "process1"):
        assert r[name]["started"] and r[name]["processes"] == 2
        assert (r[name]["devices"], r[name]["local_devices"]) == (4, 2)
    assert not r["reference"]["started"] and r["reference"]["processes"] == 1


def test_data_parallel_steps_equal_the_single_process_result(results):
    _, r = results
    ref = r["reference"]
    assert ref["loss_sum"] > 0
    assert r["process0"]["loss_sum"] == pytest.approx(ref["loss_sum"], rel=1e-5)
    for name in ("process0", "process1"):
        for got, want in zip(r[name]["params"], ref["params"], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        # every validation example once, in split order, on every process
        assert r[name]["val_labels"] == ref["val_labels"]
        np.testing.assert_allclose(r[name]["val_logits"], ref["val_logits"], rtol=1e-4, atol=1e-5)


def test_two_processes_train_together_and_only_process_0_writes(results):
    out, _ = results
    run = out / "run"
    s0, s1 = (json.loads((out / f"process{i}_summary.json").read_text()) for i in (0, 1))
    assert s0 == s1 and s0["test/accuracy"] > 0.2
    written = json.loads((run / "results.json").read_text())
    assert written["test/accuracy"] == s0["test/accuracy"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 1]  # one epoch record and the test record: written once
    assert (run / "checkpoints" / str(s0["best_step"])).is_dir()
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1  # the trackers too: process 0 only
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run}/mlflow.db")
    (tracked,) = client.search_runs([client.get_experiment_by_name("jaxdl").experiment_id])
    assert [m.step for m in client.get_metric_history(tracked.info.run_id, "val/accuracy")] == [records[0]["step"]]


def test_folder_shards_are_disjoint_and_their_union_is_the_split(results):
    _, r = results
    folder = [r[f"process{i}"]["folder"] for i in (0, 1)]
    shards = [set(f["shard_files"]) for f in folder]
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == folder[0]["train_size"] == 1295
    for f, shard in zip(folder, shards):
        assert set(f["epoch_files"]) <= shard and len(set(f["epoch_files"])) == 1295 // 2 // 16 * 16  # full local batches
        assert f["global_batch"] == [32, 8, 8, 1]


def test_folder_streamed_evaluation_gives_every_process_the_whole_split(results):
    _, r = results
    for i in (0, 1):  # the folder tree was written from digits in order, so its labels are digits' validation labels
        assert r[f"process{i}"]["folder"]["val_labels"] == r["reference"]["val_labels"]


def test_bad_files_of_every_process_are_listed_in_data_errors(results):
    out, _ = results
    listed = [line.split("\t")[0] for line in (out / "folder_run" / "data_errors.txt").read_text().splitlines()]
    assert sorted(listed) == sorted(map(str, _unreadable_validation_files(out / "bad_folder")))


def test_distributed_setting_is_checked():
    with pytest.raises(ConfigError, match="trainer.distributed must be one of auto, true, false"):
        distributed.initialize({"distributed": "maybe"})
    with pytest.raises(ConfigError, match="needs trainer.num_processes and trainer.process_id"):
        distributed.initialize({"distributed": "auto", "coordinator_address": "127.0.0.1:1234"})
    assert distributed.initialize({"distributed": "auto"}) is False  # no SLURM step, no coordinator here


@pytest.mark.parametrize("on_device", [True, False])
def test_one_process_eval_batches_cover_the_split_once_with_padding_marked(on_device):
    import jax

    from jaxdl.data.base import Split
    from jaxdl.data.pipeline import Loader
    from jaxdl.parallel import data_mesh

    split = Split(np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1), np.arange(10, dtype=np.int32))
    loader = Loader(split, data_mesh(), on_device=on_device)
    batches = list(loader.eval_batches(4))
    ids = np.concatenate([b[2] for b in batches])
    assert ids.tolist() == [*range(10), -1, -1]
    labels = np.concatenate([np.asarray(jax.device_get(b[1])) for b in batches])
    assert (labels[ids >= 0] == ids[ids >= 0]).all()  # row i holds example i
    assert len(list(loader.train_batches(4, seed=0, epoch=1))) == 2
