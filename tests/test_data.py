"""Data sources on the real data sets of this machine, TFDS under mock_data, and the input pipeline."""

from __future__ import annotations

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxdl.data import load_dataset
from jaxdl.data.idx import read_idx
from jaxdl.data.pipeline import Preprocess, epoch_order
from jaxdl.errors import ConfigError, DataError
from tests.conftest import compose_config


def test_digits_splits_are_disjoint_stratified_and_complete():
    data = load_dataset(compose_config().data)
    sizes = len(data.train), len(data.val), len(data.test)
    assert sum(sizes) == 1797 and data.image_shape == (8, 8, 1) and data.num_classes == 10
    for split in (data.train, data.val, data.test):
        assert set(np.unique(split.labels)) == set(range(10))  # stratified: every class everywhere
    assert data.train.images.max() == 255


def test_digits_are_read_without_importing_scikit_learn_and_equal_its_loader():
    from sklearn.datasets import load_digits

    from jaxdl.data.digits import digits_file, read_digits

    assert digits_file() is not None  # the fast path, not the fallback
    images, labels = read_digits()
    reference = load_digits()
    np.testing.assert_array_equal(images, reference.images)
    np.testing.assert_array_equal(labels, reference.target)


def test_idx_reads_the_real_mnist_test_set(mnist_test_dir):
    images = read_idx(mnist_test_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_test_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_idx_test_only_directory_is_split_three_ways(mnist_test_dir):
    data = load_dataset(compose_config("data=idx", f"data.dirs=[{mnist_test_dir}]").data)
    assert len(data.train) + len(data.val) + len(data.test) == 10000
    assert data.image_shape == (28, 28, 1) and data.num_classes == 10


def test_fashion_mnist_preset_reads_the_full_data_set(fashion_dir):
    data = load_dataset(compose_config("data=fashion_mnist").data)
    assert (len(data.train) + len(data.val), len(data.test)) == (60000, 10000)
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"


def _write_idx(path, payload: bytes, shape, gz=True):
    header = bytes([0, 0, 0x08, len(shape)]) + b"".join(int(s).to_bytes(4, "big") for s in shape)
    (gzip.open if gz else open)(path, "wb").write(header + payload)


def test_truncated_idx_is_reported_as_such(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", bytes(100), (10, 28, 28))
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")


def test_cut_gzip_stream_is_reported(tmp_path, mnist_test_dir):
    whole = (mnist_test_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "cut.gz")


def test_non_idx_file_is_reported(tmp_path):
    (tmp_path / "x-images-idx3-ubyte").write_bytes(b"PK\x03\x04 not idx at all")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "x-images-idx3-ubyte")


def test_missing_directory_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")) as err:
        load_dataset(compose_config("data=idx", f"data.dirs=[{tmp_path / 'nowhere'}]").data)
    assert "data.dirs" in str(err.value)


def test_tfds_source_reads_through_data_source_under_mock_data():
    with tfds.testing.mock_data(num_examples=100):
        data = load_dataset(compose_config("data=tfds", "data.tfds_name=mnist").data)
    assert data.name == "mnist" and data.image_shape == (28, 28, 1) and data.num_classes == 10
    assert len(data.train) + len(data.val) == 100 and len(data.val) > 0 and len(data.test) == 100


def test_unprepared_tfds_data_set_says_how_to_prepare(tmp_path):
    with pytest.raises(DataError, match="tfds build mnist"):
        load_dataset(compose_config("data=tfds", "data.tfds_name=mnist", f"data.data_dir={tmp_path}").data)


def test_unknown_source_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid names: digits, folder, idx, packed, signals1d, tfds"):
        load_dataset(compose_config("data.source=csv").data)


def test_unknown_source_option_lists_valid_options():
    with pytest.raises(ConfigError, match="no option 'colour'"):
        load_dataset(compose_config("+data.colour=red").data)


def test_epoch_order_is_seeded_per_epoch_and_covers_the_data():
    a, b, again = (
        epoch_order(100, 10, seed=0, epoch=1),
        epoch_order(100, 10, seed=0, epoch=2),
        epoch_order(100, 10, seed=0, epoch=1),
    )
    assert a.shape == (10, 10) and sorted(a.ravel().tolist()) == list(range(100))
    assert not np.array_equal(a, b) and np.array_equal(a, again)


def test_preprocess_pads_normalises_and_augments():
    images = jnp.full((4, 28, 28, 1), 255, jnp.uint8)
    prep = Preprocess(size=(32, 32), mean=(0.5,), std=(0.5,), crop_padding=4, hflip=True)
    x = prep(images)
    assert x.shape == (4, 32, 32, 1)
    assert float(x[0, 0, 0, 0]) == pytest.approx(-1.0) and float(x[0, 16, 16, 0]) == pytest.approx(1.0)  # zero pad, white centre
    augmented = prep(images, jax.random.key(0))
    assert augmented.shape == x.shape and not np.array_equal(np.asarray(augmented), np.asarray(x))


def test_preprocess_upsamples_digits_bilinearly():
    x = Preprocess(size=(28, 28), mean=(0.0,), std=(1.0,))(jnp.zeros((2, 8, 8, 1), jnp.uint8))
    assert x.shape == (2, 28, 28, 1)
