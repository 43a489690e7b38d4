"""`jaxdl-data pack` and `data=packed`: shrunk images in ArrayRecord shards, bad files listed, an interrupted
pack resumed, a damaged shard refused, and training from a pack that resumes mid-epoch exactly."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxdl.apps.data import run as data_app
from jaxdl.data import load_dataset
from jaxdl.data.packed import LABELS, META, PROGRESS, decode_record
from jaxdl.errors import DataError
from jaxdl.trainer import train_and_evaluate
from tests.conftest import compose_config, quick_overrides
from tests.image_files import write_corrupt_files, write_photo_tree
from tests.test_resume_mid_epoch import Stopped, _records, _stop_after

MAX_SIDE, SIZE = 48, 24


def _folder(root, *extra):
    return ["data=folder", f"data.root={root}", f"data.image_size={SIZE}", "data.channels=3", *extra]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """scikit-image's photographs in mixed formats and modes plus four broken files, packed in shards of 8."""
    root = tmp_path_factory.mktemp("pack_photos")
    write_photo_tree(root)
    corrupt = sorted(str(p) for p in write_corrupt_files(root / "colour"))
    out = tmp_path_factory.mktemp("packs") / "pack"
    line = data_app("pack", [*_folder(root), f"out={out}", f"max_side={MAX_SIDE}", "shard_size=8", "workers=2"])
    return root, out, corrupt, line


def _packed(path, *extra):
    return ["data=packed", f"data.path={path}", f"data.image_size={SIZE}", *extra]


def test_a_pack_holds_the_folders_images_shrunk_and_lists_its_bad_files(packed):
    root, out, corrupt, line = packed
    assert [p.split("\t")[0] for p in (out / "data_errors.txt").read_text().splitlines()] == corrupt
    assert "4 unreadable files" in line and "KiB per image" in line
    meta = json.loads((out / META).read_text())
    folder = load_dataset(compose_config(*_folder(root, "data.stream=true")).data)
    pack = load_dataset(compose_config(*_packed(out)).data)
    assert pack.class_names == folder.class_names and meta["channels"] == 3
    for name in ("train", "val", "test"):
        files, records = getattr(folder, name), getattr(pack, name)
        good = np.asarray([str(p) not in corrupt for p in files.paths])
        assert (records.labels == files.labels[good]).all()
        for i in range(len(records)):  # every record shrunk to a shorter side of at most MAX_SIDE
            _, image = decode_record(records.records[i], "jpeg")
            assert min(Image.open(io.BytesIO(image)).size) <= MAX_SIDE
        from_pack, from_files = records.images[:], files.images[np.flatnonzero(good)]
        diff = np.abs(from_pack.astype(np.int32) - from_files).reshape(len(records), -1).mean(1)
        # the same photographs, shrunk and re-encoded at quality 90 (sharp ones, e.g. `text`, differ most)
        assert diff.mean() < 4.0 and diff.max() < 20.0, diff
        assert np.abs(from_pack.astype(np.int32) - from_files[::-1]).mean() > 20  # not just any photographs


def test_an_interrupted_pack_resumes_and_writes_the_same_shards(packed, tmp_path):
    root, out, _, _ = packed
    again = tmp_path / "pack"
    shutil.copytree(out, again)
    lines = (again / PROGRESS).read_text().splitlines()
    last = json.loads(lines[-1])["shard"]
    (again / PROGRESS).write_text("\n".join(lines[:-1]) + '\n{"shard": "trunc')  # stopped while writing a line
    (again / last).rename(again / (last + ".partial"))
    for name in (META, LABELS):
        (again / name).unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in again.glob("*.array_record")}
    with pytest.raises(DataError, match="unfinished pack"):
        load_dataset(compose_config(*_packed(again)).data)
    # in this process (workers=0): the fixture packs in worker processes already
    line = data_app("pack", [*_folder(root), f"out={again}", f"max_side={MAX_SIDE}", "shard_size=8", "workers=0"])
    assert f"({len(lines) - 1} shards from an interrupted pack kept)" in line
    assert {p.name: p.stat().st_mtime_ns for p in again.glob("*.array_record") if p.name != last} == kept
    assert json.loads((again / META).read_text())["sha256"] == json.loads((out / META).read_text())["sha256"]


def test_a_damaged_shard_is_refused_in_one_line(packed, tmp_path):
    _, out, _, _ = packed
    damaged = tmp_path / "pack"
    shutil.copytree(out, damaged)
    shard = sorted(damaged.glob("train-*.array_record"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    for read in (lambda: load_dataset(compose_config(*_packed(damaged)).data), lambda: data_app("inspect", _packed(damaged))):
        with pytest.raises(DataError) as refused:
            read()
        assert str(refused.value) == (
            f"pack {damaged}: shard {shard.name} is damaged (its SHA-256 differs from pack.json); pack the data set again"
        )
    assert "SHA-256 verified" in data_app("inspect", _packed(out))


def test_training_from_a_pack_resumes_mid_epoch_exactly(packed, tmp_path, monkeypatch, caplog):
    _, out, _, _ = packed
    overrides = [*_packed(out, "data.workers=2", "data.worker_mode=thread"), "trainer.batch_size=8", "trainer.epochs=2"]
    cfg = lambda *extra: compose_config(*quick_overrides(*overrides, *extra))
    with caplog.at_level(logging.INFO, logger="jaxdl"):
        whole = train_and_evaluate(cfg(), tmp_path / "whole")
    waits = [
        r["time/input_wait"]
        for r in map(json.loads, (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines())
        if "time/input_wait" in r
    ]
    assert len(waits) == 2 and all(0 <= w <= 1 for w in waits)
    assert len(re.findall(r"img/s, input_wait \d+%", caplog.text)) == 2  # on each epoch line
    assert caplog.text.count("the accelerator waited for input") == (1 if max(waits) > 0.2 else 0)  # once a run
    with monkeypatch.context() as patch:
        _stop_after(patch, 5)
        with pytest.raises(Stopped):
            train_and_evaluate(cfg("trainer.checkpoint_every_steps=4"), tmp_path / "stopped")
    resumed = train_and_evaluate(cfg("trainer.checkpoint_every_steps=4"), tmp_path / "stopped")
    assert _records(tmp_path / "stopped") == _records(tmp_path / "whole")
    assert resumed["test/accuracy"] == whole["test/accuracy"]
