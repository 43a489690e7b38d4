"""jaxdl-compress end to end on a tiny digits run, recipes that compose, jaxdl-train from a compressed checkpoint,
and compressed vs float explained side by side: int8 maps follow the float model's (in the compress report and
in jaxdl-explain on the checkpoint), a "compressed" model whose weights were shuffled is flagged."""

import json

import jax
import numpy as np
import pytest
from flax import nnx
from hydra import compose, initialize_config_dir

from tests.compress_util import digits_config
from jaxdl.config import CONF_DIR, group_options
from jaxdl.config import compose_config as jaxdl_compose
from jaxdl.runs import load_run
from jaxdl.trainer import train_and_evaluate
from xai.compress import app
from xai.compress.pipeline import check_recipe
from xai.compress.quantize import rules_from_config
from xai.compress.storage import save_compressed
from xai.explain import app as explain_app
from xai.explain.compare import agreement, spearman, top_overlap


def compress_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("compress_app", overrides=list(overrides))


@pytest.mark.parametrize("recipe", group_options("compress"))
def test_every_recipe_composes_and_is_valid(recipe):
    cfg = compress_config(f"compress={recipe}", "run_dir=/nowhere")
    check_recipe(cfg.compress)  # raises on an unknown stage or option
    assert cfg.compress.name == recipe
    assert any(cfg.compress.get(stage) for stage in ("channels", "prune", "quantize")), "a recipe that compresses nothing"
    if cfg.compress.quantize:
        assert len(rules_from_config(cfg.compress.quantize.rules)) == len(cfg.compress.quantize.rules)


def test_cli_without_run_dir_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["jaxdl-compress", "compress=int8"])
    with pytest.raises(SystemExit) as exit_info:
        app.main()
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: run_dir is required: jaxdl-compress run_dir=PATH_OF_A_TRAINED_RUN compress=int8"
    )


# channels50 then static int8 of weights and activations: the compressed model of this file and of test_export_int8
CHANNELS_INT8 = (
    "compress=channels50",
    "compress.name=channels_int8",
    "compress.finetune.epochs=1",
    "compress.quantize={rules:[{weights:int8,activations:int8,static:true}]}",
    "calibration_examples=64",
)


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train_and_evaluate(digits_config(), run_dir)
    out = run_dir / "compress" / "channels_int8"
    cfg = compress_config(
        f"run_dir={run_dir}",
        *CHANNELS_INT8,
        "latency.batch_sizes=[1,32]",
        "latency.repeats=2",
    )
    report = app.compress_and_report(cfg, out)
    return run_dir, out, report


def test_compress_writes_checkpoint_and_honest_report(compressed):
    run_dir, out, report = compressed
    assert json.loads((out / "report.json").read_text()) == report
    original, small = report["models"]
    assert small["parameters"] < 0.4 * original["parameters"]  # channels really removed
    assert small["bytes_gzip"] < 0.15 * original["bytes_gzip"]  # and int8 on top
    assert set(small["latency_ms"]) == {"1", "32"} and report["ratios"]["speedup_batch32"] > 0
    assert "| ratio |" in (out / "report.md").read_text()
    loaded = load_run(out)  # the output directory loads like a run
    assert dict(loaded.cfg.model.channels) == {"conv1": 8, "conv2": 24, "hidden.0": 248}
    images = loaded.dataset.test.images[:100]
    accuracy = np.mean(np.asarray(loaded.model(loaded.preprocess(images))).argmax(-1) == loaded.dataset.test.labels[:100])
    assert accuracy == pytest.approx(small["accuracy"], abs=0.15)


def test_train_starts_from_a_compressed_checkpoint(compressed, tmp_path):
    _, out, _ = compressed
    summary = train_and_evaluate(digits_config(f"trainer.init_from={out / 'checkpoint'}", "trainer.head=null"), tmp_path)
    assert summary["parameters"] < 200_000
    resumed = load_run(tmp_path)  # its config.yaml carries the pruned shape
    assert resumed.model.conv2.out_features == 24


def test_an_unfinished_run_or_an_incomplete_checkpoint_is_refused(compressed, tmp_path):
    import shutil

    from jaxdl.errors import CheckpointError, ConfigError
    from jaxdl.run_status import write_status

    run_dir, out, _ = compressed
    unfinished = shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("compress"))
    write_status(unfinished, "running", attempt=1)  # as a killed run leaves it
    with pytest.raises(ConfigError, match="is a running run, not a completed one"):
        app.compress_and_report(compress_config(f"run_dir={unfinished}", "compress=int8"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    checkpoint = shutil.copytree(out / "checkpoint", tmp_path / "checkpoint")
    (checkpoint / "recipe.yaml").unlink()
    with pytest.raises(CheckpointError, match="lacks recipe.yaml"):
        load_run(checkpoint)


METHODS = ["saliency"]  # in jaxdl-explain; the compress report's table: Integrated Gradients (the code path is one)


@pytest.fixture(scope="module")
def int8_explained(compressed):
    """The same trained run compressed to int8 with the side-by-side explanations in its report."""
    run_dir = compressed[0]
    out = run_dir / "compress" / "int8"
    cfg = jaxdl_compose(
        "compress_app",
        [
            f"run_dir={run_dir}",
            "compress=int8",
            "calibration_examples=16",
            "latency.batch_sizes=[1]",
            "latency.repeats=1",
            "explanations.enabled=true",
            "explanations.methods=[integrated_gradients]",
            "explanations.images=4",
            "explanations.steps=8",
        ],
    )
    return run_dir, out, app.compress_and_report(cfg, out)


def explain(run_dir, out_dir, *overrides):
    cfg = jaxdl_compose(
        "explain_app",
        [
            f"run_dir={run_dir}",
            f"explain.methods=[{','.join(METHODS)}]",
            "explain.images.count=4",
            "explain.metrics.steps=8",
            "explain.metrics.sanity=false",
            "explain.metrics.faithfulness=false",  # the side-by-side table scores each model's maps itself
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


def test_int8_maps_follow_the_float_model_in_both_reports(int8_explained, tmp_path):
    run_dir, out, report = int8_explained
    table = report["explanations"]["methods"]
    assert json.loads((out / "report.json").read_text())["explanations"]["methods"].keys() == {"integrated_gradients"}
    row = table["integrated_gradients"]
    assert row["spearman_min"] >= 0.9 and not row["flagged"] and row["pairs_compared"] == 4
    for model in ("float", "int8"):
        assert 0 <= row["faithfulness"][model]["deletion_auc"] <= 1
    assert "## Explanations, float vs int8" in (out / "report.md").read_text()
    assert "Flagged" not in (out / "report.md").read_text()

    summary = explain(out / "checkpoint", tmp_path)  # jaxdl-explain on the compressed checkpoint
    side = summary["compared_with_float"]["methods"]
    for method in METHODS:
        assert side[method]["spearman_min"] >= 0.9 and side[method]["pairs_compared"] == 4
        assert side[method]["faithfulness"]["compressed"]["images_total"] == 4
    page = (tmp_path / "report.html").read_text()
    assert "compressed vs float, side by side" in page and "FLAGGED" not in page


def test_a_model_with_shuffled_weights_is_flagged(compressed, tmp_path):
    run_dir = compressed[0]
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
