"""`data.decoder=dali` on a machine without a GPU: the one-line refusal, and DALI's CPU operators running the same
pipeline as the GPU one: shapes, labels in the host pipeline's order, bad files replaced and listed, evaluation
crops close to the host decoder's, and a mid-epoch position that resumes to the batch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxdl.data import load_dataset
from jaxdl.data.stream import StreamLoader
from jaxdl.errors import ConfigError
from jaxdl.parallel import data_mesh
from tests.conftest import compose_config
from tests.test_folder_workers import BATCH, tree  # noqa: F401 - the module-scoped photo tree fixture

pytest.importorskip("nvidia.dali")


def _data(root, decoder: str = "auto"):
    return load_dataset(
        compose_config(
            "data=folder",
            f"data.root={root}",
            "data.image_size=16",
            "data.channels=3",
            "data.stream=true",
            "data.workers=0",
            f"data.decoder={decoder}",
            "data.val_fraction=0.1",
            "data.test_fraction=0.1",
        ).data
    )


def test_dali_without_a_gpu_is_one_line_naming_the_extra(tree):  # noqa: F811
    with pytest.raises(ConfigError) as refused:
        _data(tree, "dali")
    assert "\n" not in str(refused.value) and "jaxdl[dali]" in str(refused.value) and "no" in str(refused.value)
    assert _data(tree).train.backend == "host"  # auto: no GPU, so the host decoder


def test_dali_cpu_pipeline_follows_the_host_order_skips_bad_files_and_resumes(tree):  # noqa: F811
    from jaxdl.data.dali import DaliLoader

    data = _data(tree)
    split = data.train
    host = [np.asarray(y) for _, y in StreamLoader(split, data_mesh()).train_batches(BATCH, 3, 2)]
    dali = DaliLoader(split, data_mesh(), device="cpu")
    batches = dali.train_batches(BATCH, 3, 2)
    got, state = [], None
    for x, y in batches:
        assert x.shape == (BATCH, 16, 16, 3) and x.dtype == np.uint8
        got.append(np.asarray(y))
        if len(got) == 2:
            state = json.loads(json.dumps(batches.get_state()))
    assert len(got) == len(host) and all((a == b).all() for a, b in zip(got, host))
    broken = str(tree / "chelsea" / "broken.jpg")
    assert [line.split("\t")[0] for line in split.decoder.bad_files.lines()] in ([], [broken])
    rest = [np.asarray(y) for _, y in dali.train_batches(BATCH, 3, 2, state)]
    assert all((a == b).all() for a, b in zip(rest, host[2:], strict=True))

    split = next(s for s in (data.train, data.val, data.test) if broken in set(s.paths))
    rows = list(DaliLoader(split, data_mesh(), device="cpu").eval_batches(BATCH))
    images = np.concatenate([np.asarray(x)[ids >= 0] for x, _, ids in rows])
    labels = np.concatenate([np.asarray(y)[ids >= 0] for _, y, ids in rows])
    assert (labels == np.where(split.paths == broken, -1, split.labels)).all()
    assert broken in {line.split("\t")[0] for line in split.decoder.bad_files.lines()}
    reference = np.stack([np.zeros((16, 16, 3), np.uint8) if p == broken else split.decoder(str(p)) for p in split.paths])
    diff = np.abs(images.astype(np.int32) - reference).reshape(len(images), -1).mean(1)
    assert diff.max() < 12, diff  # DALI's resize filter is not PIL's; the same centre crop of the same photo
