"""`data=tfds` streamed by index through Grain (`data.stream=true`) under tfds.testing.mock_data."""

from __future__ import annotations

import json

import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data import load_dataset
from jaxdl.data.file_split import RecordSplit
from jaxdl.trainer import build_experiment, train_and_evaluate
from tests.conftest import compose_config, quick_overrides

TFDS = ["data=tfds", "data.tfds_name=mnist", "data.augment.crop_padding=0", "data.augment.hflip=false"]


def _records(run_dir):
    return [
        {k: v for k, v in json.loads(line).items() if k != "train/samples_per_s" and not k.startswith("time/")}
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def test_streamed_tfds_reads_by_index_and_trains_like_the_in_memory_set(tmp_path):
    with tfds.testing.mock_data(num_examples=200):
        streamed = load_dataset(compose_config(*TFDS, "data.stream=true").data)
        in_memory = load_dataset(compose_config(*TFDS, "data.stream=false").data)
        assert isinstance(streamed.train, RecordSplit) and not isinstance(in_memory.train, RecordSplit)
        for name in ("train", "val", "test"):
            a, b = getattr(streamed, name), getattr(in_memory, name)
            assert (a.labels == b.labels).all() and (np.asarray(a.images) == b.images).all()
        for dataset, run in ((in_memory, "memory"), (streamed, "streamed")):
            cfg = compose_config(*quick_overrides("trainer.epochs=1", "trainer.batch_size=16", *TFDS))
            train_and_evaluate(cfg, tmp_path / run, experiment=build_experiment(cfg, dataset))
    got, want = _records(tmp_path / "streamed"), _records(tmp_path / "memory")
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for g, w in zip(got, want):
        for key in w:
            assert abs(g[key] - w[key]) < 1e-4, key
