"""Checkpoints inside an epoch (`trainer.checkpoint_every_steps`): a run stopped mid-epoch resumes at the same example.

Digits in memory and the same digits as a streamed folder tree with unreadable files in the resumed
epoch (so the Grain iterator's position is not simply step x batch): stopped after step 52 of 2 x 40,
resumed from the checkpoint of step 45 (epoch 2, step 5), the metrics equal an uninterrupted run's;
and a resumed run's `data_errors.txt` keeps what its earlier part listed.
"""

from __future__ import annotations

import itertools
import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from jaxdl import trainer
from jaxdl.checkpoint import RunCheckpoints
from jaxdl.data import load_dataset
from jaxdl.data.folder_tools import write_folder
from jaxdl.data.images import BadFiles
from jaxdl.data.pipeline import epoch_order
from jaxdl.data.stream import loader_for
from jaxdl.errors import ConfigError
from jaxdl.trainer import build_experiment, train_and_evaluate
from tests.conftest import compose_config, quick_overrides

KEYS = ("epoch", "step", "train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy")
BATCH, STEPS_PER_EPOCH = 32, 1295 // 32  # digits: 1,295 training examples
EVERY, STOP_AFTER, RESUME_STEP = 15, 52, 45  # saves at 15, 30, 45 (inside epoch 2: its step 5), 60, 75


class Stopped(Exception):
    """The injected stop: what a killed process leaves is the checkpoints written before it."""


def _records(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k in KEYS} for line in lines]


def _stop_after(monkeypatch, steps: int) -> None:
    """Make the trainer's train step raise `Stopped` once `steps` steps have run."""
    real = trainer.make_train_step

    def make(*args, **kwargs):
        step, taken = real(*args, **kwargs), itertools.count(1)

        def counted(*step_args):
            if next(taken) > steps:
                raise Stopped
            return step(*step_args)

        return counted

    monkeypatch.setattr(trainer, "make_train_step", make)


@pytest.fixture(scope="module")
def streamed_tree(tmp_path_factory):
    """Digits as a folder tree, with two training files that epoch 2 reads before step 5 made unreadable."""
    tree = tmp_path_factory.mktemp("digits_tree")
    write_folder(load_dataset(compose_config("data=digits").data), tree)
    train = load_dataset(compose_config(*_streamed(tree)).data).train
    order = epoch_order(len(train), BATCH, 0, 2).reshape(-1)
    bad = [train.paths[order[3]], train.paths[order[100]]]
    for path in bad:
        open(path, "wb").write(b"not an image")
    return tree, sorted(map(str, bad))


def _streamed(tree) -> list[str]:
    return ["data=folder", f"data.root={tree}", "data.image_size=8", "data.stream=true"]


def _config(data: list[str], *extra: str, batch_size: int = BATCH):
    return compose_config(*quick_overrides(*data, f"trainer.batch_size={batch_size}", "trainer.keep_checkpoints=3", *extra))


@pytest.fixture(params=["in_memory", "streamed"])
def data(request, streamed_tree) -> list[str]:
    return [] if request.param == "in_memory" else _streamed(streamed_tree[0])


def test_a_run_stopped_mid_epoch_resumes_at_the_same_example(data, tmp_path, monkeypatch, caplog):
    whole = train_and_evaluate(_config(data), tmp_path / "whole")

    with monkeypatch.context() as patch:
        _stop_after(patch, STOP_AFTER)
        with pytest.raises(Stopped):
            train_and_evaluate(_config(data, f"trainer.checkpoint_every_steps={EVERY}"), tmp_path / "stopped")
    ckpts = RunCheckpoints(tmp_path / "stopped" / "checkpoints")
    assert ckpts.all_steps() == [30, 40, 45]  # the last 3; 40, the only epoch end, is the best so far
    assert ckpts.meta(45)["metrics"] == {} and ckpts.meta(40)["metrics"]["val/accuracy"] > 0
    ckpts.close()

    with caplog.at_level(logging.INFO, logger="jaxdl"):
        resumed = train_and_evaluate(_config(data, f"trainer.checkpoint_every_steps={EVERY}"), tmp_path / "stopped")
    assert "inside epoch 2 (step 45)" in caplog.text
    assert _records(tmp_path / "stopped") == _records(tmp_path / "whole")
    assert resumed["test/accuracy"] == whole["test/accuracy"] and resumed["best_step"] in (40, 80)
    ckpts = RunCheckpoints(tmp_path / "stopped" / "checkpoints")
    assert set(ckpts.all_steps()) == {60, 75, 80, resumed["best_step"]}  # the last 3 and the best epoch end
    ckpts.close()


def test_a_mid_epoch_checkpoint_restores_the_iterator_at_its_step(streamed_tree, tmp_path, monkeypatch):
    tree, bad = streamed_tree
    cfg = _config(_streamed(tree), f"trainer.checkpoint_every_steps={EVERY}")
    _stop_after(monkeypatch, STOP_AFTER)
    with pytest.raises(Stopped):
        train_and_evaluate(cfg, tmp_path)
    data = json.loads((tmp_path / "checkpoints" / str(RESUME_STEP) / "data" / "metadata").read_text())
    (position,) = data["processes"]
    assert (data["epoch"], data["batch_size"], position["step"]) == (2, BATCH, RESUME_STEP - STEPS_PER_EPOCH)
    grain_state = position["grain"]  # the element being read and how many of its good images were taken
    per_element = position["examples_per_element"]
    assert grain_state["parent"]["next_index"] * per_element + grain_state["batch_idx"] == 5 * BATCH + 2  # 2 bad files read
    assert sorted(line.split("\t")[0] for line in (tmp_path / "data_errors.txt").read_text().splitlines()) == bad

    exp = build_experiment(cfg)
    loader = loader_for(exp.dataset.train, exp.mesh)
    fresh = loader.train_batches(BATCH, 0, 2)
    first = next(fresh)
    expected = next(itertools.islice(fresh, position["step"] - 1, None))  # the epoch's batch at index `step`
    resumed = loader.train_batches(BATCH, 0, 2, position)
    got = next(resumed)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(got[1]), np.asarray(first[1]))
    assert resumed.step == position["step"] + 1 and len(list(resumed)) == STEPS_PER_EPOCH - position["step"] - 1


def test_resuming_mid_epoch_with_another_batch_size_is_refused(tmp_path, monkeypatch):
    _stop_after(monkeypatch, 20)
    with pytest.raises(Stopped):
        train_and_evaluate(_config([], "trainer.checkpoint_every_steps=15"), tmp_path)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="saved inside epoch 1 with trainer.batch_size=32 on 1 process"):
        train_and_evaluate(_config([], batch_size=16), tmp_path)


def test_checkpoint_every_steps_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="trainer.checkpoint_every_steps must be a positive whole number or null, got 0"):
        train_and_evaluate(_config([], "trainer.checkpoint_every_steps=0"), tmp_path)


def test_a_resumed_run_keeps_the_bad_files_its_earlier_part_listed(tmp_path):
    (tmp_path / "data_errors.txt").write_text("/data/a.jpg\tOSError: truncated\n")  # met before the stop only
    met_now = BadFiles()
    met_now.record("/data/b.png", "UnidentifiedImageError: not an image")
    met_now.record("/data/a.jpg", "OSError: truncated")
    run = SimpleNamespace(main=True, dir=tmp_path)
    line = trainer._report_bad_files(SimpleNamespace(bad_files=met_now), run)
    assert line == " | 2 unreadable file(s) skipped, listed in data_errors.txt"
    assert (tmp_path / "data_errors.txt").read_text() == (
        "/data/a.jpg\tOSError: truncated\n/data/b.png\tUnidentifiedImageError: not an image\n"
    )
    assert trainer._report_bad_files(SimpleNamespace(bad_files=None), run) == ""  # a source that reads no files
