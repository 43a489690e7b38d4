"""Decoding in worker processes (`data.workers`, `data.worker_mode`): the same batches as threads or none, exact
mid-epoch resume, bad files reported back from the workers, and no `__main__` guard demanded of a script."""

from __future__ import annotations

import json
from types import SimpleNamespace
import textwrap

import numpy as np
import pytest

from jaxdl.data import load_dataset
from jaxdl.data.workers import worker_threads
from jaxdl.errors import ConfigError
from jaxdl.data.stream import StreamLoader
from jaxdl.parallel import data_mesh
from tests.conftest import compose_config, run_cli
from tests.image_files import jpeg_bytes, photo

PHOTOS = ("astronaut", "chelsea", "coffee")
BATCH = 8


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """16 small JPEG crops of each of three photographs, and one truncated JPEG."""
    root = tmp_path_factory.mktemp("worker_photos")
    rng = np.random.default_rng(0)
    for name in PHOTOS:
        image = photo(name)
        (root / name).mkdir()
        for i in range(16):
            h, w = rng.integers(40, 90, 2)
            top, left = rng.integers(0, image.shape[0] - h), rng.integers(0, image.shape[1] - w)
            (root / name / f"{i:02d}.jpg").write_bytes(jpeg_bytes(np.ascontiguousarray(image[top : top + h, left : left + w])))
    (root / "chelsea" / "broken.jpg").write_bytes(jpeg_bytes(photo("rocket"))[:400])
    return root


def _dataset(root, workers: int, mode: str, threads: int | None = None):
    cfg = compose_config(
        "data=folder",
        f"data.root={root}",
        "data.image_size=16",
        "data.channels=3",
        "data.stream=true",
        f"data.workers={workers}",
        f"data.worker_mode={mode}",
        f"data.worker_threads={'null' if threads is None else threads}",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
    )
    return load_dataset(cfg.data)


def _split(root, workers: int, mode: str, threads: int | None = None):
    return _dataset(root, workers, mode, threads).train


def _epoch(split, position=None, stop=None):
    batches = StreamLoader(split, data_mesh()).train_batches(BATCH, seed=3, epoch=2, position=position)
    images, state = [], None
    for x, y in batches:
        images.append((np.asarray(x), np.asarray(y)))
        if stop is not None and len(images) == stop:
            state = json.loads(json.dumps(batches.get_state()))  # as a checkpoint stores it
            break
    return images, state


def test_batches_do_not_depend_on_the_number_or_kind_of_workers_and_resume_mid_epoch(tree):
    runs = {}
    for workers, mode, threads in ((0, "thread", None), (2, "thread", None), (1, "process", 1), (2, "process", None)):
        split = _split(tree, workers, mode, threads)
        assert split.worker_mode == mode and split.worker_threads == (threads or 0)
        runs[workers, mode], _ = _epoch(split)
    reference = runs[0, "thread"]
    assert len(reference) == 4 and len({int(y) for _, ys in reference for y in ys}) == 3
    for key, batches in runs.items():
        for (x, y), (rx, ry) in zip(batches, reference, strict=True):
            assert (x == rx).all() and (y == ry).all(), key

    split = _split(tree, 2, "process")
    first, state = _epoch(split, stop=2)
    rest, _ = _epoch(split, position=state)
    for (x, y), (rx, ry) in zip(first + rest, reference, strict=True):
        assert (x == rx).all() and (y == ry).all()


def test_worker_processes_evaluate_every_example_and_report_bad_files(tree):
    broken = str(tree / "chelsea" / "broken.jpg")
    evaluated = {}
    for workers, mode in ((0, "thread"), (2, "process")):
        data = _dataset(tree, workers, mode)
        split = next(s for s in (data.train, data.val, data.test) if broken in set(s.paths))
        batches = list(StreamLoader(split, data_mesh()).eval_batches(BATCH))
        images = np.concatenate([np.asarray(x)[ids >= 0] for x, _, ids in batches])
        labels = np.concatenate([np.asarray(y)[ids >= 0] for _, y, ids in batches])
        assert (labels == np.where(split.paths == broken, -1, split.labels)).all()
        assert [line.split("\t")[0] for line in split.decoder.bad_files.lines()] == [broken]
        evaluated[mode] = images
    assert (evaluated["process"] == evaluated["thread"]).all()


def test_a_script_without_a_main_guard_decodes_in_worker_processes(tree, tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import numpy as np
            from jaxdl.data.stream import StreamLoader
            from jaxdl.parallel import data_mesh
            from tests.test_folder_workers import _split

            print("script body ran", flush=True)
            split = _split({str(tree)!r}, 2, "process")
            batches = list(StreamLoader(split, data_mesh()).train_batches(8, seed=0, epoch=1))
            print("batches", len(batches), flush=True)
            """
        )
    )
    done = run_cli(str(script), timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("script body ran") == 1 and "batches 4" in done.stdout


def test_worker_threads_is_a_positive_count_or_auto():
    assert worker_threads(None) == worker_threads("auto") == 0 and worker_threads(3) == 3
    for bad in (0, -1, 1.5, "two", True):
        with pytest.raises(ConfigError, match="data.worker_threads must be a positive whole number or null"):
            worker_threads(bad)


def test_elements_are_whole_batches_and_their_size_changes_no_batch(tree, monkeypatch):
    from jaxdl.data import stream

    photo_bytes = 224 * 224 * 3
    assert [stream.examples_per_element(b, 784) for b in (64, 32, 8, 5)] == [64, 32, 32, 35]
    assert stream.examples_per_element(256, photo_bytes) == 256  # 38.5 MB: one element per batch
    assert stream.examples_per_element(512, photo_bytes) == 256 and stream.examples_per_element(7, 64 << 20) == 1
    # worker processes in a container with Docker's 64 MB /dev/shm: 16 workers' elements in flight fit in it
    monkeypatch.setattr(stream.shutil, "disk_usage", lambda path: SimpleNamespace(free=64 << 20))
    budget = stream.element_bytes_budget(16, "process", shm=str(tree))
    assert budget == (64 << 20) // 128 and stream.examples_per_element(256, photo_bytes, budget) == 2
    assert stream.element_bytes_budget(16, "thread") == stream.element_bytes_budget(0, "process") == stream.CHUNK_BYTES
    monkeypatch.undo()
    split = _split(tree, 0, "thread")
    whole, _ = _epoch(split)
    _, state = _epoch(split, stop=2)
    assert state["examples_per_element"] == 32
    monkeypatch.setattr(stream, "CHUNK", 3)  # elements of one batch of 8
    assert stream.examples_per_element(BATCH, 16 * 16 * 3) == BATCH
    small, eight = _epoch(split)[0], _epoch(split, stop=2)[1]
    assert eight["examples_per_element"] == 8 and len(small) == len(whole) == 4
    for (x, y), (rx, ry) in zip(whole, small, strict=True):
        assert (x == rx).all() and (y == ry).all()
    # a position resumes in its own element size, whatever this version reads: one saved with 32 under 8, and
    # one saved before positions recorded it (8 per element) under 32
    resumed = _epoch(split, position=state)[0]
    monkeypatch.setattr(stream, "CHUNK", 32)
    old = {k: v for k, v in eight.items() if k != "examples_per_element"}
    for rest in (resumed, _epoch(split, position=old)[0]):
        assert len(rest) == 2
        for (x, y), (rx, ry) in zip(rest, whole[2:], strict=True):
            assert (x == rx).all() and (y == ry).all()
