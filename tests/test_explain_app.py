import base64
import json
import re
import shlex
import sys

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from jaxdl.config import CONF_DIR
from jaxdl.trainer import train_and_evaluate
from xai.explain import app
from xai.explain.reproduce import reproduce_command


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("digits_run")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["trainer.epochs=1", "trainer.progress=false", "trainer.batch_size=64"])
    train_and_evaluate(cfg, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def explained(trained_run, tmp_path_factory):
    """One explain of 2 images with a CAM, LIME, occlusion and Integrated Gradients, shared by the tests reading it."""
    out = tmp_path_factory.mktemp("explained")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "explain_app",
            overrides=[
                f"run_dir={trained_run}",
                "explain.methods=[gradcam,lime,occlusion,integrated_gradients]",
                "explain.images.count=2",
                "explain.options.lime.num_samples=64",
                "explain.options.integrated_gradients.method=riemann_middle",
                "explain.options.integrated_gradients.n_steps=32",
                "explain.metrics.steps=4",
                "explain.metrics.sanity_images=2",
                "explain.metrics.lime_stability_seeds=[0,1]",
            ],
        )
    return app.explain(cfg, out), out


def test_report_is_written_and_every_image_in_it_exists(trained_run, explained):
    summary, out = explained
    page = (out / "report.html").read_text()
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert (
        len(images) == 2 * 6 + 4 + 4
    )  # per image: input, 4 maps, LIME's superpixels; a colour bar and a sanity curve per method
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert not re.findall(r"src=['\"](?!data:)", page)  # nothing outside the file
    for method in ("gradcam", "lime", "occlusion", "integrated_gradients"):
        assert np.load(out / "maps" / f"{method}.npy").shape == (2, 8, 8)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"gradcam", "lime", "occlusion", "integrated_gradients", "random", "sobel"}
    assert 0 <= metrics["gradcam"]["deletion_auc"] <= 1 and "lime_r2" in metrics["lime"]
    empty = int(app.empty_maps(np.load(out / "maps" / "gradcam.npy")).sum())
    assert metrics["gradcam"]["empty_maps"] == empty and metrics["gradcam"]["images_used"] == 2 - empty
    assert summary["target_layer"] == "features"
    assert "features (resolved: explain.target_layer was null)" in page and f"step {summary['checkpoint_step']}" in page
    assert f"jaxdl-explain run_dir={trained_run} which={summary['checkpoint_step']}" in page


def test_reproduce_command_composes_back_to_the_same_config():
    overrides = [
        "run_dir=/runs/a b",
        "explain.methods=[gradcam,shap]",
        "explain.images.indices=[0,5]",
        "+explain.options.shap.mask_value='blur(8,8)'",
        "+explain.options.gradcam.relu=false",
        "explain.seed=3",
        "explain.report.scale=per_image",
    ]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("explain_app", overrides=overrides)
        command = reproduce_command(cfg, "conv2", 1234)
        args = shlex.split(command)
        again = compose("explain_app", overrides=args[1:])
    assert args[0] == "jaxdl-explain" and "explain.target_layer=conv2" in args and "which=1234" in args
    cfg.explain.target_layer, cfg.which = "conv2", 1234
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)


def test_app_needs_a_run_dir(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["jaxdl-explain"])
    with pytest.raises(SystemExit) as info:
        app.main()
    assert info.value.code == 2 and "run_dir=PATH" in capsys.readouterr().err


def test_bad_explain_inputs_are_one_line_and_create_nothing(trained_run, tmp_path, monkeypatch, capsys):
    from jaxdl.config import outputs_dir
    from xai.explain.inputs import ExplainError, check_images

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("explain_app", overrides=[f"run_dir={trained_run}", "explain.images.split=name"])
    with pytest.raises(ExplainError, match="explain.images.split must be train, val or test, got 'name'"):
        app.explain(cfg, tmp_path / "out")
    cfg.explain.images.split, cfg.explain.images.count = "test", "abc"
    with pytest.raises(ExplainError, match="explain.images.count must be a number of images or all, got 'abc'"):
        app.explain(cfg, tmp_path / "out")
    with pytest.raises(ExplainError, match="no images to explain"):
        check_images(np.zeros((0, 8, 8, 1), np.uint8))
    missing = tmp_path / "no" / "such" / "run"
    monkeypatch.setattr(sys, "argv", ["jaxdl-explain", f"run_dir={missing}"])
    with pytest.raises(SystemExit) as info:
        app.main()
    assert info.value.code == 2 and f"run_dir={missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
    compressed = tmp_path / "compress" / "int8" / "checkpoint"  # outputs go beside a model artifact, not inside
    compressed.mkdir(parents=True)
    (compressed / "compressed.json").write_text("{}")
    assert outputs_dir(str(compressed)) == str(compressed.parent)
    assert outputs_dir(str(trained_run / "checkpoints")) == str(trained_run)


def test_the_earlier_checkpoint_key_still_works_with_a_warning(trained_run, tmp_path, caplog):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "explain_app",
            overrides=[
                f"run_dir={trained_run}",
                "checkpoint=last",
                "explain.methods=[gradcam]",
                "explain.images.count=1",
                "explain.metrics.faithfulness=false",
                "explain.metrics.sanity=false",
            ],
        )
    summary = app.explain(cfg, tmp_path)
    assert "checkpoint=last is the earlier name of which=" in caplog.text and summary["checkpoint_step"] > 0


def test_gradient_methods_write_signed_maps_raw_attributions_and_completeness(explained):
    summary, out = explained
    images = np.load(out / "images.npy")
    method = "integrated_gradients"
    raw = np.load(out / "maps" / f"{method}_raw.npy")
    assert raw.shape == images.shape and (raw < 0).any()  # signed, as captum returns it
    np.testing.assert_allclose(np.load(out / "maps" / f"{method}.npy"), raw.sum(-1), rtol=1e-6)
    assert "deletion_auc" in summary["metrics"][method] and "sanity_spearman_final" in summary["metrics"][method]
    gaps = summary["completeness"]["integrated_gradients"]["relative_gap"]
    assert len(gaps) == 2 and summary["metrics"]["integrated_gradients"]["completeness_gap_max"] == max(gaps) < 0.05
    page = (out / "report.html").read_text()
    assert "Integrated Gradients" in page and "IG completeness gap" in page


def test_a_model_without_a_data_set_asks_for_image_paths(trained_run, tmp_path):
    from jaxdl.artifacts import load_model, save_model
    from xai.explain.inputs import ExplainError

    loaded = load_model(trained_run)
    exported = save_model(tmp_path / "model", loaded.model, loaded.card)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("explain_app", overrides=[f"run_dir={exported}"])
    with pytest.raises(ExplainError, match=r"explain\.images\.paths=PATH"):
        app.explain(cfg, tmp_path / "out")
