"""Fréchet distance, the IDX writer and data selection: exact properties on small real data."""

from __future__ import annotations

import numpy as np
import pytest

from jaxdl.data import idx, load_dataset
from jaxdl.data.base import Split
from jaxdl.data.idx_writer import write_idx, write_pair
from jaxdl.errors import DataError
from jaxdl.apps.frechet import frechet_distance
from tests.conftest import compose_config


def test_frechet_distance_of_identical_sets_is_zero_and_measures_a_shift():
    feats = np.random.default_rng(0).standard_normal((2000, 16))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    # same covariance, mean moved by 0.5 in each of 16 dimensions: distance = 16 * 0.25
    assert frechet_distance(feats + 0.5, feats) == pytest.approx(4.0, rel=1e-6)
    other = np.random.default_rng(1).standard_normal((2000, 16)) * 2.0  # std 2: Tr(C1+C2-2sqrt(C1C2)) = 16*(1+4-4)
    assert frechet_distance(feats, other) == pytest.approx(16.0, rel=0.15)


@pytest.mark.parametrize("suffix,dtype", [("", np.uint8), (".gz", np.uint8), (".gz", np.int32), ("", np.float32)])
def test_write_idx_roundtrips_through_the_reader(tmp_path, suffix, dtype):
    array = (
        (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
        if dtype != np.uint8
        else np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    )
    write_idx(tmp_path / f"x{suffix}", array)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / f"x{suffix}"), array)


def test_write_pair_refuses_colour_images(tmp_path):
    with pytest.raises(DataError, match="grey"):
        write_pair(tmp_path, "train", Split(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, np.int32)))


def test_class_subset_and_label_fraction_on_digits():
    full = load_dataset(compose_config().data)
    part = load_dataset(compose_config("data.classes=[7,2]", "data.label_fraction=0.1").data)
    assert part.class_names == ("7", "2") and set(np.unique(part.test.labels)) == {0, 1}
    assert len(part.test) == int(np.isin(full.test.labels, [7, 2]).sum())  # test stays whole
    n_train = int(np.isin(full.train.labels, [7, 2]).sum())
    assert abs(len(part.train) - 0.1 * n_train) <= 2 and np.bincount(part.train.labels).min() >= 10
    # the 7s of the subset are the full data set's 7s
    sevens = part.test.images[part.test.labels == 0]
    np.testing.assert_array_equal(sevens, full.test.images[full.test.labels == 7])


def test_bad_selection_is_a_one_line_error():
    with pytest.raises(DataError, match="distinct class indices"):
        load_dataset(compose_config("data.classes=[3,3]").data)
    with pytest.raises(DataError, match="label_fraction"):
        load_dataset(compose_config("data.label_fraction=0").data)
