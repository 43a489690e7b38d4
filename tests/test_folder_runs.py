"""Whole `data=folder` runs: Fashion-MNIST as a PNG tree vs the arrays, and SIGKILL + resume while streaming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from jaxdl.data import load_dataset
from jaxdl.data.folder_tools import folder_name, write_folder
from jaxdl.trainer import train_and_evaluate
from tests.conftest import REPO, compose_config, run_cli

KEYS = ("epoch", "step", "train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy")
STREAMED = ["data=folder", "data.stream=true", "data.augment.crop_scale=null", "data.augment.hflip=false"]


def _records(run_dir):
    return [
        {k: v for k, v in json.loads(line).items() if k in KEYS} for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def test_fashion_mnist_png_tree_streamed_matches_the_arrays(fashion_dir, tmp_path):
    subset = ["data.classes=[0,2,4,6]", "data.label_fraction=0.05"]  # the four tops: 1,080 train, 4,000 test images
    common = ["trainer.epochs=1", "trainer.progress=false", "trainer.eval_batch_size=500"]
    arrays = train_and_evaluate(compose_config("data=fashion_mnist", *subset, *common), tmp_path / "arrays")
    tree = tmp_path / "tree"
    fashion = load_dataset(compose_config("data=fashion_mnist", *subset).data)
    write_folder(fashion, tree)
    assert len(list((tree / "test").rglob("*.png"))) == 4000
    folder = train_and_evaluate(
        compose_config(*STREAMED, f"data.root={tree}", "data.image_size=28", *common), tmp_path / "folder"
    )
    # not the sorted folder names: classes.txt keeps the data set's order, so labels (and the run) are the same
    assert json.loads((tmp_path / "folder" / "model.json").read_text())["class_names"] == [
        folder_name(c) for c in fashion.class_names
    ]
    assert folder["test/accuracy"] > 0.5
    assert abs(folder["test/accuracy"] - arrays["test/accuracy"]) <= 0.003


def test_sigkill_mid_run_and_resume_ends_with_the_uninterrupted_metrics(tmp_path, compile_cache_env):
    tree = tmp_path / "digits"
    write_folder(load_dataset(compose_config("data=digits").data), tree)
    args = [
        "-m",
        "jaxdl.apps.train",
        "data=folder",
        f"data.root={tree}",
        "data.image_size=8",
        "data.stream=true",
        "trainer.epochs=2",
        "trainer.batch_size=16",
        "model.width=0.25",
        "trainer.progress=false",
        "trainer.keep_checkpoints=5",
        "trainer.checkpoint_every_steps=40",  # an epoch is 80 steps: killed inside one, resumed from inside it
    ]
    reference = run_cli(*args, f"hydra.run.dir={tmp_path / 'whole'}", env=compile_cache_env)
    assert reference.returncode == 0, reference.stderr[-2000:]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, *args, f"hydra.run.dir={killed}"],
        cwd=REPO,
        env={**os.environ, **compile_cache_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    inside_first_epoch = killed / "checkpoints" / "40"
    deadline = time.time() + 300
    while not inside_first_epoch.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert len(_records(killed)) < 3

    resumed = run_cli(*args, f"hydra.run.dir={killed}", env=compile_cache_env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert _records(killed) == _records(tmp_path / "whole")
