"""Compressed checkpoint format: int4 packing, int8 error bound, save -> load -> same predictions, refusals."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.compress_util import digits_config
from jaxdl import models
from jaxdl.errors import CheckpointError
from jaxdl.runs import load_run
from jaxdl.trainer import build_experiment
from xai.compress.pruning import PruningSpec, prune_now
from xai.compress.quantize import dequantized, post_training, rules_from_config
from xai.compress.storage import decode, encode, pack_int4, save_compressed, unpack_int4

INT8_STATIC = {
    "name": "t",
    "quantize": {"rules": [{"module_path": "conv1"}, {"weights": "int8", "activations": "int8", "static": True}]},
}


def test_int4_packing_round_trips_every_value():
    values = np.array([-8, -7, -1, 0, 1, 6, 7, 3, -5], np.int8)
    packed = pack_int4(values)
    assert packed.dtype == np.uint8 and packed.size == 5
    np.testing.assert_array_equal(unpack_int4(packed, values.size), values)


def test_sparse_encoding_is_bitmask_plus_values_when_smaller():
    value = np.zeros((64, 32), np.float32)
    value[::7, ::5] = np.arange(1, 10 * 7 + 1, dtype=np.float32).reshape(10, 7)
    encoding, sparse, stored = encode(value)
    assert (encoding, sparse) == ("raw", True) and stored["mask"].size == 64 * 32 // 8 and stored["values"].size == 70
    np.testing.assert_array_equal(
        decode({"shape": [64, 32], "sparse": True, "encoding": "raw", "dtype": "float32"}, stored), value
    )
    assert encode(np.ones((4, 4), np.float32))[1] is False


def test_int8_weights_round_trip_within_half_a_step_per_channel():
    model = models.build({"name": "lenet5"}, models.InputSpec((16, 16), 1, 10), 0)
    x = jnp.ones((2, 16, 16, 1))
    quantized = post_training(model, rules_from_config([{"weights": "int8"}]), x)
    qvalue, scale = quantized.conv2.kernel.array.qvalue[...], quantized.conv2.kernel.array.scale[...]
    assert qvalue.dtype == jnp.int8 and scale.shape == (1, 1, 1, 50)  # one scale per output channel
    restored = dequantized(quantized, nnx.clone(model))
    for name in ("conv1", "conv2", "head"):
        w, back = getattr(model, name).kernel[...], getattr(restored, name).kernel[...]
        step = jnp.abs(w).reshape(-1, w.shape[-1]).max(0) / 127
        error = jnp.abs(back - w).reshape(-1, w.shape[-1])
        assert bool(jnp.all(error <= step / 2 + 1e-7)) and float(error.max()) > 0
    np.testing.assert_allclose(quantized(x), model(x), atol=0.05)


@pytest.fixture(scope="module")
def quantized_export(tmp_path_factory):
    cfg = digits_config()
    exp = build_experiment(cfg)
    model = exp.model
    _, params, _ = nnx.split(model, nnx.Param, ...)
    nnx.update(model, prune_now(params, PruningSpec(0.8)))
    x = exp.preprocess(exp.dataset.test.images[:64])
    quantized = post_training(model, rules_from_config(INT8_STATIC["quantize"]["rules"]), x)
    directory = save_compressed(
        tmp_path_factory.mktemp("export") / "checkpoint", quantized, cfg, INT8_STATIC, exp.card(), {"step": 7}
    )
    return directory, quantized, exp.dataset.test.images[:64]


def test_save_load_gives_the_same_predictions(quantized_export):
    directory, quantized, images = quantized_export
    manifest = json.loads((directory / "compressed.json").read_text())
    by_path = {t["path"]: t for t in manifest["tensors"]}
    assert by_path["conv2/kernel/array/qvalue"]["dtype"] == "int8" and by_path["hidden/0/kernel/array/qvalue"]["sparse"]
    assert by_path["conv2/kernel/array/scale"]["shape"] == [1, 1, 1, 50]  # per output channel
    assert by_path["conv1/kernel"]["dtype"] == "float32"  # kept float by its rule
    run = load_run(directory.parent)  # a jaxdl-compress output directory is accepted too
    x = run.preprocess(images)
    np.testing.assert_array_equal(np.asarray(run.model(x)), np.asarray(quantized(x)))
    float_logits = run.experiment.model(x)  # the dequantized float twin agrees closely
    assert float(jnp.mean(jnp.argmax(float_logits, -1) == jnp.argmax(quantized(x), -1))) > 0.9


def test_wrong_version_and_damaged_files_are_refused(quantized_export, tmp_path):
    import shutil

    directory = shutil.copytree(quantized_export[0], tmp_path / "copy")
    manifest_path = directory / "compressed.json"
    good = manifest_path.read_text()
    manifest_path.write_text(good.replace('"version": 1', '"version": 99'))
    with pytest.raises(CheckpointError, match="format version 99, but this jaxdl reads version 1"):
        load_run(directory)
    manifest_path.write_text(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="damaged: compressed.json is unreadable"):
        load_run(directory)
    manifest_path.write_text(good)
    data_files = sorted((directory / "arrays").rglob("d/*"), key=lambda p: p.stat().st_size)
    blob = bytearray(data_files[-1].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data_files[-1].write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="is damaged"):
        load_run(directory)


def test_the_installed_qwix_is_one_the_private_api_use_was_tested_with():
    from importlib.metadata import version

    from xai.compress.quantize import QWIX_TESTED

    installed = version("qwix")
    assert installed in QWIX_TESTED, (
        f"qwix {installed} is not among the releases xai/compress/quantize.py was tested with {QWIX_TESTED}: "
        "it imports qwix._src modules; re-run the compression tests with it and add it to QWIX_TESTED"
    )
