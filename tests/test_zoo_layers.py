"""Zoo building blocks: PyTorch pooling semantics, batch norm in train vs eval and across devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxdl import models
from jaxdl.data.pipeline import Preprocess
from jaxdl.errors import ConfigError
from jaxdl.models import InputSpec
from jaxdl.models.layers import ConvBN, Pool, adaptive_avg_pool
from jaxdl.parallel import data_mesh
from jaxdl.steps import init_state, make_predict, make_train_step, split_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "size, window, stride, ceil, expected",
    [
        (55, 3, 2, False, 27),
        (56, 3, 2, False, 27),
        (56, 3, 2, True, 28),
        (112, 3, 2, True, 56),
        (14, 2, 2, True, 7),
        (7, 2, 2, True, 4),
    ],
)
def test_max_pool_output_size_follows_pytorch(size, window, stride, ceil, expected):
    x = jnp.zeros((1, size, size, 1))
    assert Pool(window, stride, ceil_mode=ceil)(x).shape == (1, expected, expected, 1)


def test_pools_compute_pytorch_values():
    x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    np.testing.assert_allclose(Pool(3, 2, ceil_mode=True)(x)[0, :, :, 0], [[12, 14], [22, 24]])
    # average pooling counts the symmetric zero padding (count_include_pad=True): corner = (0+1+5+6)/9
    np.testing.assert_allclose(Pool(3, 1, 1, kind="avg")(x)[0, 0, 0, 0], 12 / 9, rtol=1e-6)


def test_adaptive_avg_pool_uses_overlapping_pytorch_windows():
    x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    out = adaptive_avg_pool(x, 3)[0, :, :, 0]
    # rows/cols 0..1, 1..3, 3..4 (floor(i*5/3) to ceil((i+1)*5/3))
    windows = [(0, 2), (1, 4), (3, 5)]
    expected = [[float(x[0, r0:r1, c0:c1].mean()) for c0, c1 in windows] for r0, r1 in windows]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(adaptive_avg_pool(jnp.ones((2, 4, 4, 3)), 2), jnp.ones((2, 2, 2, 3)))


def test_unknown_variant_is_a_config_error():
    with pytest.raises(ConfigError, match="variant must be one of small, imagenet"):
        models.build({"name": "resnet18", "variant": "huge"}, InputSpec((32, 32), 3, 10), 0)


class TinyBN(nnx.Module):
    """Conv + batch norm + dense head: the smallest model whose output depends on batch statistics."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = ConvBN(1, 4, 3, 1, 1, norm=True, rngs=rngs)
        self.head = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        return self.head(self.conv(x).mean(axis=(1, 2)))


def _one_step(model, x, y, mesh):
    train_def, eval_def, params, model_state = split_model(model)
    tx = optax.sgd(0.1)
    identity = Preprocess((x.shape[1], x.shape[2]), (0.0,), (1.0,))
    state = init_state(params, model_state, tx, mesh)
    state, _ = make_train_step(train_def, tx, identity, mesh, seed=0)(state, x, y)
    return state, make_predict(eval_def, identity, mesh)


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_eval():
    x = 3.0 + jax.random.normal(jax.random.key(0), (8, 6, 6, 1))
    y = jnp.arange(8) % 3
    model = TinyBN(nnx.Rngs(0))
    state, predict = _one_step(model, x, y, data_mesh())
    running_mean = state.model_state["conv"]["norm"]["mean"][...]
    assert float(jnp.abs(running_mean).max()) > 0.0  # the train step updated the running statistics
    eval_logits = predict(state.params, state.model_state, x)
    # eval mode is per-example: a sub-batch gives the same logits; train mode normalises by the batch
    np.testing.assert_allclose(predict(state.params, state.model_state, x[:4]), eval_logits[:4], rtol=1e-5, atol=1e-6)
    train_model = nnx.merge(split_model(model)[0], state.params, state.model_state)
    assert not np.allclose(train_model(x[:4]), train_model(x)[:4], atol=1e-4)
    assert not np.allclose(train_model(x), eval_logits, atol=1e-4)


_TWO_DEVICES = """
import json, jax, jax.numpy as jnp, numpy as np
from flax import nnx
from jax.sharding import Mesh
from test_zoo_layers import TinyBN, _one_step
from jaxdl.parallel import data_mesh
x = jax.random.normal(jax.random.key(0), (8, 6, 6, 1)).at[4:].add(5.0)  # the two halves differ
y = jnp.arange(8) % 3
two, _ = _one_step(TinyBN(nnx.Rngs(0)), x, y, data_mesh())
one, _ = _one_step(TinyBN(nnx.Rngs(0)), x, y, Mesh(np.array(jax.devices()[:1]), ("data",)))
half, _ = _one_step(TinyBN(nnx.Rngs(0)), x[:4], y[:4], Mesh(np.array(jax.devices()[:1]), ("data",)))
stat = lambda s: np.asarray(s.model_state["conv"]["norm"]["mean"][...]).tolist()
print(json.dumps({"devices": jax.device_count(), "two": stat(two), "one": stat(one), "half": stat(half)}))
"""


def test_batch_statistics_are_global_across_devices():
    """jit over a 2-device mesh gives the statistics of the whole batch, not of each device's half."""
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
    }
    out = subprocess.run([sys.executable, "-c", _TWO_DEVICES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    np.testing.assert_allclose(result["two"], result["one"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(result["two"], result["half"], atol=1e-3)
