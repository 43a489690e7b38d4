"""Compressed vs float, side by side: int8 maps follow the float model's, a model with shuffled weights is flagged.

One digits LeNet-5 is trained and compressed to int8 with `explanations.enabled=true` (the compress report's table); the explain
app then runs on that checkpoint and on a "compressed" checkpoint whose weights were shuffled."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import nnx

from jaxdl.config import compose_config
from jaxdl.runs import load_run
from jaxdl.trainer import train_and_evaluate
from tests.compress_util import digits_config
from xai.compress import app as compress_app
from xai.compress.storage import save_compressed
from xai.explain import app as explain_app
from xai.explain.compare import agreement, spearman, top_overlap

METHODS = ["saliency", "integrated_gradients"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train_and_evaluate(digits_config(), run_dir)
    out = run_dir / "compress" / "int8"
    cfg = compose_config(
        "compress_app",
        [
            f"run_dir={run_dir}",
            "compress=int8",
            "calibration_examples=16",
            "latency.batch_sizes=[1]",
            "latency.repeats=1",
            "explanations.enabled=true",
            f"explanations.methods=[{','.join(METHODS)}]",
            "explanations.images=6",
            "explanations.steps=8",
        ],
    )
    return run_dir, out, compress_app.compress_and_report(cfg, out)


def explain(run_dir, out_dir, *overrides):
    cfg = compose_config(
        "explain_app",
        [
            f"run_dir={run_dir}",
            f"explain.methods=[{','.join(METHODS)}]",
            "explain.images.count=6",
            "explain.metrics.steps=8",
            "explain.metrics.sanity=false",
            "explain.metrics.faithfulness=false",  # the side-by-side table scores each model's maps itself
            "explain.options.integrated_gradients.n_steps=16",
            *overrides,
        ],
    )
    return explain_app.explain(cfg, out_dir)


def test_rank_statistics_equal_scipy_and_a_hand_count():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 5, 5)), rng.normal(size=(3, 5, 5))
    a[0, :2] = 0  # ties
    expected = [spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(spearman(a, b), expected, atol=1e-12)
    x = np.arange(10.0).reshape(1, 2, 5)
    y = x.copy()
    y[0, 1, 4], y[0, 0, 0] = -1, 100  # the top pixel (9) falls out, pixel 0 rises to the top
    assert top_overlap(x, y, 0.2)[0] == 0.5  # top 2: {9, 8} vs {0, 8}
    empty = np.zeros((1, 2, 5))
    assert agreement(empty, empty)["pairs_compared"] == 0 and not agreement(empty, empty)["flagged"]
    assert agreement(x, empty)["spearman_mean"] == 0 and agreement(x, empty)["flagged"]  # one model sees nothing


def test_int8_maps_follow_the_float_model_in_both_reports(compressed, tmp_path):
    run_dir, out, report = compressed
    table = report["explanations"]["methods"]
    assert json.loads((out / "report.json").read_text())["explanations"]["methods"].keys() == set(METHODS)
    for method in METHODS:
        assert table[method]["spearman_min"] >= 0.9 and not table[method]["flagged"]
        for model in ("float", "int8"):
            assert 0 <= table[method]["faithfulness"][model]["deletion_auc"] <= 1
    assert "## Explanations, float vs int8" in (out / "report.md").read_text()
    assert "Flagged" not in (out / "report.md").read_text()

    summary = explain(out / "checkpoint", tmp_path)  # jaxdl-explain on the compressed checkpoint
    side = summary["compared_with_float"]["methods"]
    for method in METHODS:
        assert side[method]["spearman_min"] >= 0.9 and side[method]["pairs_compared"] == 6
        assert side[method]["faithfulness"]["compressed"]["images_total"] == 6
    page = (tmp_path / "report.html").read_text()
    assert "compressed vs float, side by side" in page and "FLAGGED" not in page


def test_a_model_with_shuffled_weights_is_flagged(compressed, tmp_path):
    run_dir, out, _ = compressed
    run = load_run(run_dir)
    broken = nnx.clone(run.model)
    _, params, rest = nnx.split(broken, nnx.Param, ...)
    keys = iter(jax.random.split(jax.random.key(0), len(jax.tree.leaves(params))))
    shuffle = lambda w: jax.random.permutation(next(keys), w.ravel()).reshape(w.shape)
    nnx.update(broken, jax.tree.map(shuffle, params))
    source = {"run_dir": str(run.run_dir), "step": run.step}
    checkpoint = save_compressed(tmp_path / "broken", broken, run.cfg, {"name": "shuffled"}, run.loaded.card, source)
    summary = explain(checkpoint, tmp_path / "explain")
    side = summary["compared_with_float"]["methods"]
    for method in METHODS:
        assert side[method]["flagged"] and side[method]["spearman_mean"] < 0.5
    page = (tmp_path / "explain" / "report.html").read_text()
    assert page.count("FLAGGED") == len(METHODS) and "compression changed what the model looks at" in page
