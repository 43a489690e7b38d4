"""Explaining sequence classifiers: time-step attributions that find the window deciding the class, and the
report through the real CLI, with each signal drawn over its attribution band."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from jaxdl import config as jaxdl_config
from jaxdl import models
from jaxdl.models import InputSpec
from jaxdl.trainer import train_and_evaluate
from tests.conftest import REPO, compose_config, run_cli
from xai.explain import app
from xai.explain.methods import build_method
from xai.explain.metrics import Faithfulness, random_baseline
from xai.explain.probe import Probe

STEPS, BLOCK, WINDOW = 32, 8, (8, 16)  # 4 blocks of 8 steps; the second decides the class


def window_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Signals of 4 constant blocks plus noise: every block a random level in [-1, 1] (0, the baseline, included),
    except the window's, whose sign is the class. Outside the window nothing tells the classes apart."""
    rng = np.random.default_rng(seed)
    levels = rng.uniform(-1.0, 1.0, (n, STEPS // BLOCK))
    labels = rng.integers(0, 2, n).astype(np.int32)
    levels[:, WINDOW[0] // BLOCK] = np.where(labels == 1, 1.0, -1.0) * rng.uniform(0.5, 1.0, n)
    signals = np.repeat(levels, BLOCK, axis=1) + 0.2 * rng.normal(size=(n, STEPS))
    return signals.astype(np.float32)[:, None, :, None], labels


@pytest.fixture(scope="module")
def window_gru():
    """A GRU (8 units) trained for 200 Adam steps on the window task, with label smoothing against saturation."""
    model = models.build({"name": "gru", "hidden": 8}, InputSpec((1, STEPS), 1, 2), seed=0)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)
    x, y = window_task(200 * 64, seed=0)

    @jax.jit
    def step(params, opt_state, xb, yb):
        def loss(p):
            targets = optax.smooth_labels(jax.nn.one_hot(yb, 2), 0.2)
            return optax.softmax_cross_entropy(nnx.merge(graphdef, p, rest)(xb), targets).mean()

        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state)
        return optax.apply_updates(params, updates), opt_state

    for i in range(200):
        params, opt_state = step(params, opt_state, x[i * 64 : (i + 1) * 64], y[i * 64 : (i + 1) * 64])
    model = nnx.merge(graphdef, params, rest)
    model.eval()
    return model


def test_attributions_peak_in_the_window_that_decides_the_class(window_gru):
    images, labels = window_task(40, seed=7)
    assert (np.asarray(window_gru(images)).argmax(-1) == labels).mean() >= 0.95  # the model did learn the task
    methods = {
        "integrated_gradients": {"n_steps": 16},
        "occlusion": {"mask_size": BLOCK, "stride": 2},  # windows of time steps, hidden with the baseline
        "lime": {"num_samples": 300},  # auto segmentation: 10 contiguous time windows
    }
    maps = {}
    for name, options in methods.items():
        maps[name] = np.asarray(build_method(name, window_gru, None, options)(images, labels))
        assert maps[name].shape == (40, 1, STEPS)
        peak = maps[name][:, 0].argmax(1)  # the strongest evidence for the class
        inside = float(((peak >= WINDOW[0]) & (peak < WINDOW[1])).mean())
        assert inside >= 0.8, f"{name}: {inside:.0%} of the maps peak in the deciding window"
    # deletion over time steps, replacing them with the baseline: IG's ranking beats a random one
    faith = Faithfulness(Probe(window_gru), steps=8)
    ig = faith.deletion_insertion(images, maps["integrated_gradients"], labels)
    chance = faith.deletion_insertion(images, random_baseline(images.shape[:3], 0), labels)
    assert ig["deletion_auc"].mean() < chance["deletion_auc"].mean() - 0.1
    assert ig["insertion_auc"].mean() > chance["insertion_auc"].mean()


def _png_size(uri: str) -> tuple[int, int]:
    width, height = struct.unpack(">II", base64.b64decode(uri)[16:24])
    return width, height


@pytest.fixture(scope="module")
def signal_run(tmp_path_factory):
    """A GRU trained for one epoch on 200 generated signals; its test split has 20."""
    run_dir = tmp_path_factory.mktemp("signal_run")
    cfg = compose_config(
        "data=signals1d",
        "data.num_train=200",
        "data.num_test=20",
        "model=gru",
        "model.hidden=8",
        "trainer.epochs=1",
        "trainer.progress=false",
        "trainer.batch_size=50",
    )
    train_and_evaluate(cfg, run_dir)
    return run_dir


WHOLE_SET = [
    "explain.methods=[integrated_gradients,lime]",
    "explain.images.count=all",
    "explain.images.batch_size=4",  # a multiple of 1, 2 and 4 devices: the same batches on any explain mesh
    "trainer.cpu_devices=1",  # as the in-process reference (the test process has one device): sharding rounds differently
    "explain.options.integrated_gradients.n_steps=8",
    "explain.options.lime.num_samples=64",
    "explain.metrics.steps=4",
    "explain.metrics.sanity=false",
    "explain.metrics.lime_stability_seeds=null",
]


def test_a_killed_whole_set_explain_resumes_to_the_uninterrupted_maps_and_reports_bands(signal_run, tmp_path, compile_cache_env):
    """SIGKILL the real CLI after its first batches; the re-run continues at the next batch, every map equals
    an uninterrupted run's, and the report draws each signal over its attribution bands."""
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "xai.explain.app", f"run_dir={signal_run}", *WHOLE_SET, f"hydra.run.dir={out}"]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **compile_cache_env}, stderr=subprocess.DEVNULL)
    progress, done = out / "progress.json", 0
    while process.poll() is None and done < 1:
        time.sleep(0.05)
        done = json.loads(progress.read_text())["batches_done"] if progress.is_file() else 0
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(progress.read_text())["batches_done"]
    assert process.returncode == -signal.SIGKILL and 1 <= killed_at < 5  # 20 signals in batches of 4

    result = run_cli("-m", "xai.explain.app", f"run_dir={signal_run}", *WHOLE_SET, f"hydra.run.dir={out}", env=compile_cache_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming {out} at batch {killed_at + 1} of 5" in (out / "run.log").read_text()
    assert json.loads(progress.read_text())["batches_done"] == 5

    reference = tmp_path / "uninterrupted"
    summary = app.explain(jaxdl_config.compose_config("explain_app", [f"run_dir={signal_run}", *WHOLE_SET]), reference)
    for method in ("integrated_gradients", "lime"):
        maps = np.load(out / "maps" / f"{method}.npy")
        assert maps.shape == (20, 1, 40)  # one attribution per time step, every signal of the split
        np.testing.assert_array_equal(maps, np.load(reference / "maps" / f"{method}.npy"))
    resumed = json.loads((out / "metrics.json").read_text())["metrics"]
    assert resumed == json.loads(json.dumps(app._json_safe(summary["metrics"])))
    assert resumed["integrated_gradients"]["images_total"] == 20 and set(resumed) >= {"random", "sobel"}

    page = (out / "report.html").read_text()
    figures = re.findall(r"<figure class='[^']*'><img src='data:image/png;base64,([^']+)'", page)
    assert len(figures) == 8 * 3  # the first 8 signals: the input and its 2 bands
    assert {_png_size(uri) for uri in figures} == {(260, 130)}  # line plots of the signal, not enlarged pictures
