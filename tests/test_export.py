"""jaxdl-export: ONNX and StableHLO files agree with jaxdl, run without jaxdl, and fail loudly when they do not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from jaxdl import models
from jaxdl.artifacts import LoadedModel, ModelCard, load_model, save_model
from jaxdl.data.pipeline import Preprocess
from jaxdl.export import export_model
from jaxdl.apps import export as export_app
from jaxdl.export.pipeline import VerificationFailed, report_path
from jaxdl.models.autoencoder import conv as conv_autoencoder
from jaxdl.models.dcgan import build_gan
from tests.conftest import run_cli
from tests.random_weights import with_random_weights

pytest.importorskip("jax2onnx")
ort = pytest.importorskip("onnxruntime")

CLASSES = tuple(f"class{i}" for i in range(10))


def small_model(cfg: dict, size: int = 28, channels: int = 1) -> LoadedModel:
    """A zoo model with random weights and a real preprocessing (agreement needs no training)."""
    spec = models.InputSpec((size, size), channels, 10)
    card = ModelCard(cfg, spec, Preprocess(spec.size, (0.3,) * channels, (0.4,) * channels), CLASSES)
    model = with_random_weights(lambda: models.build(cfg, spec, 1), seed=1)
    model.eval()
    return LoadedModel(model, card, Path("in-process"))


def autoencoder() -> LoadedModel:
    spec = models.InputSpec((28, 28), 1, 10)
    card = ModelCard({"name": "autoencoder", "architecture": "conv"}, spec, Preprocess((28, 28), (0.3,), (0.4,)), CLASSES)
    model = with_random_weights(lambda: conv_autoencoder(spec, code_dim=8, width=8, rngs=nnx.Rngs(0)))
    model.eval()
    return LoadedModel(model, card, Path("in-process"))


def torchvision_resnet18() -> LoadedModel:
    """torchvision's ResNet-18 (random weights: nothing to download) through jaxdl-import's importer, at 32 px."""
    torchvision = pytest.importorskip("torchvision")
    from jaxdl.pretrained import import_model

    module, card = import_model("torchvision:resnet18", torch_model=torchvision.models.resnet18(weights=None), input_size=32)
    return LoadedModel(module, card, Path("torchvision:resnet18"))


class LatentToImages(nnx.Module):
    """A GAN generator as an exportable model: noise as a (1, 1, latent) "image" in, generated images out."""

    def __init__(self, generator: nnx.Module):
        self.generator = generator

    def __call__(self, z: jax.Array) -> jax.Array:
        return self.generator(z.reshape(z.shape[0], -1))


def gan_generator() -> LoadedModel:
    """jaxdl-gan's DCGAN generator (float noise in, no preprocessing: mean 0, std 1)."""
    latent = 16
    gan = build_gan({"name": "dcgan", "latent_dim": latent, "width": 8}, models.InputSpec((16, 16), 1, 10), seed=0)
    spec = models.InputSpec((1, 1), latent, 10)
    card = ModelCard({"name": "dcgan_generator"}, spec, Preprocess((1, 1), (0.0,) * latent, (1.0,) * latent), CLASSES, "float32")
    model = LatentToImages(gan.generator)
    model.eval()
    return LoadedModel(model, card, Path("in-process"))


MODELS = {
    "lenet5": lambda: small_model({"name": "lenet5"}, 32),
    "resnet18": lambda: small_model({"name": "resnet18", "variant": "small"}, 16),
    "squeezenet": lambda: small_model({"name": "squeezenet1_1", "variant": "small"}, 16),
    "googlenet": lambda: small_model({"name": "googlenet", "variant": "small"}, 16),
    "lstm": lambda: small_model({"name": "lstm", "hidden": 16}),
    "gru": lambda: small_model({"name": "gru", "hidden": 16}),
    "vit": lambda: small_model({"name": "vit", "variant": "small", "depth": 1, "dim": 32, "heads": 2, "mlp_dim": 32}, 16),
    "autoencoder": autoencoder,
    "gan_generator": gan_generator,
    "torchvision_resnet18": torchvision_resnet18,
}
GENERATIVE = {"autoencoder", "gan_generator"}  # images out: compared value by value, no argmax
FORMATS = ("onnx", "stablehlo")
RANDOM = np.random.default_rng(0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`exported(name)` -> (model, {format: file}): each model exported once per format, for the whole module,
    both files in one folder (each with its own report)."""
    cache = {}

    def export(name: str):
        if name not in cache:
            loaded, folder = MODELS[name](), tmp_path_factory.mktemp(name)
            files = {fmt: folder / f"{name}.{fmt}" for fmt in FORMATS}
            for fmt, out in files.items():
                export_model(loaded, fmt, out, latency=False)
            cache[name] = loaded, files
        return cache[name]

    return export


def raw_inputs(loaded: LoadedModel, n: int = 5) -> np.ndarray:
    shape = (n, *loaded.spec.size, loaded.spec.channels)
    if loaded.card.input_dtype == "float32":
        return RANDOM.standard_normal(shape).astype(np.float32)
    return RANDOM.integers(0, 256, shape, dtype=np.uint8)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_model_exports_to_onnx_and_stablehlo_and_agrees(name, exported):
    loaded, files = exported(name)
    for fmt, out in files.items():  # the exporter's own check: the reloaded file vs jaxdl on its verification inputs
        report = json.loads(report_path(out, ".json").read_text())  # one report per file, none overwritten
        check = report["verification"]
        assert report["format"] == fmt and report["bytes"] == out.stat().st_size and not Path(f"{out}.unverified").exists()
        assert check["passed"] and check["max_abs_diff"] <= 1e-4 * check["max_abs_output"] and check["inputs"] >= 5
        assert name in GENERATIVE or check["same_argmax"] == f"{check['inputs']}/{check['inputs']}"
        assert f"to {fmt}" in report_path(out, ".md").read_text()
    # and independently of it: ONNX Runtime by hand on fresh inputs, a batch size the export never saw
    # (the StableHLO file is run by plain JAX in test_stablehlo_runs_in_a_process_that_cannot_import_jaxdl)
    x = raw_inputs(loaded)
    want = np.asarray(loaded(x), np.float32)
    ref = want if name in GENERATIVE else softmax(want)
    sess = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch"  # symbolic
    got = sess.run(None, {"images": x})[0]
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    if name not in GENERATIVE:
        np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1))


BLOCKED_CALL = """
import jax, numpy as np
x = np.load(sys.argv[2])
exported = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
np.save(sys.argv[3], np.asarray(exported.call(x)))
assert not any(m.split(".")[0] in ("jaxdl", "xai", "flax") for m in sys.modules)
"""


def test_stablehlo_runs_in_a_process_that_cannot_import_jaxdl(exported, tmp_path):
    loaded, files = exported("lenet5")
    out = files["stablehlo"]
    x = raw_inputs(loaded, 7)  # a batch size the export never saw: the batch is symbolic
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "call.py"
    script.write_text(BLOCKER.replace("BLOCKED", '("jaxdl", "xai", "flax")') + BLOCKED_CALL)
    done = subprocess.run(
        [sys.executable, str(script), str(out), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    want = softmax(np.asarray(loaded(x)))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-6)
    back = load_model(out)  # and jaxdl.load_model reads it back (with the card beside it): same classes, same probabilities
    assert back.class_names == loaded.class_names
    np.testing.assert_allclose(softmax(np.asarray(back(x))), want, atol=1e-5)


def test_metadata_mode_states_preprocessing_and_takes_normalised_input(tmp_path):
    loaded = MODELS["lenet5"]()
    out = tmp_path / "lenet5.onnx"
    export_model(loaded, "onnx", out, batch=4, preprocess="metadata", latency=False)
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["mean"]) == [0.3] and json.loads(meta["std"]) == [0.4]
    assert json.loads(meta["class_names"]) == list(CLASSES) and meta["preprocess"] == "metadata"
    x = raw_inputs(loaded, 4)
    normalised = (x.astype(np.float32) / 255.0 - 0.3) / 0.4  # by hand, from the stated mean/std
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [4, 32, 32, 1]
    got = sess.run(None, {"images": normalised})[0]
    want = np.asarray(loaded(x))
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def _refused_by_onnx_runtime(path):
    raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Node (Transpose_39_q) output_dtype INT8 does not match")


@pytest.mark.parametrize("broken", ["disagrees", "does not load"])
def test_failed_verification_leaves_only_an_unverified_file(broken, tmp_path, monkeypatch):
    from jaxdl.export import onnx as onnx_export

    loaded = MODELS["lenet5"]()
    real = onnx_export.open_onnx
    opener = (lambda p: lambda x: real(p)(x)[:, ::-1]) if broken == "disagrees" else _refused_by_onnx_runtime
    monkeypatch.setitem(
        onnx_export.EXPORTERS._entries, "onnx", onnx_export.Exporter("onnx", ".onnx", onnx_export.write_onnx, opener)
    )
    out = tmp_path / "lenet5.onnx"
    with pytest.raises(VerificationFailed, match="failed verification"):
        export_model(loaded, "onnx", out, latency=False)
    assert not out.exists() and Path(f"{out}.unverified").is_file()
    assert json.loads(report_path(out, ".json").read_text())["verification"]["passed"] is False


def test_cli_exports_a_saved_model_and_predict_reads_the_onnx_file(tmp_path):
    loaded = MODELS["lenet5"]()
    save_model(tmp_path / "artifact", loaded.model, loaded.card)
    out = tmp_path / "lenet5.onnx"
    done = run_cli("-m", "jaxdl.apps.export", f"model={tmp_path / 'artifact'}", "format=onnx", f"out={out}")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(report_path(out, ".json").read_text())
    assert set(report["latency_ms"]) == {"1", "64"} and {"jaxdl (jit)", "ONNX Runtime"} <= set(report["latency_ms"]["1"])
    from PIL import Image

    from jaxdl.apps.predict import PredictOptions, predict_files

    photo = tmp_path / "photo.png"
    Image.fromarray(raw_inputs(loaded, 1)[0, ..., 0]).save(photo)
    via_onnx, _ = predict_files(PredictOptions(model=str(out), images=str(photo), top_k=3))
    via_jaxdl, _ = predict_files(PredictOptions(model=str(tmp_path / "artifact"), images=str(photo), top_k=3))
    assert [c for c, _ in via_onnx[0]["top"]] == [c for c, _ in via_jaxdl[0]["top"]]
    np.testing.assert_allclose([p for _, p in via_onnx[0]["top"]], [p for _, p in via_jaxdl[0]["top"]], atol=1e-5)


def test_unknown_format_is_a_one_line_error(tmp_path, capsys):
    loaded = MODELS["lenet5"]()
    save_model(tmp_path / "artifact", loaded.model, loaded.card)
    with pytest.raises(SystemExit) as done:
        export_app.main([f"model={tmp_path / 'artifact'}", "format=tflite", f"out={tmp_path / 'x'}"])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and err.startswith("error: unknown export format 'tflite'") and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


def readme_snippet() -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("<!-- onnx-snippet -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    return block


def test_readme_onnx_snippet_classifies_a_photo_without_jax(exported, tmp_path):
    """The README's snippet, run where jax, flax and jaxdl cannot be imported (what a clean venv with only
    onnxruntime, numpy and pillow gives), prints the class jaxdl predicts."""
    loaded, files = exported("lenet5")
    out = files["onnx"]
    from PIL import Image

    photo = tmp_path / "photo.png"
    pixels = raw_inputs(loaded, 1)
    Image.fromarray(pixels[0, ..., 0]).save(photo)
    snippet = readme_snippet()
    assert len(snippet.strip().splitlines()) <= 11
    script = tmp_path / "snippet.py"
    script.write_text(BLOCKER.replace("BLOCKED", '("jax", "jaxlib", "flax", "jaxdl", "xai")') + snippet)
    done = subprocess.run([sys.executable, str(script), str(out), str(photo)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    name, prob = done.stdout.split()
    probs = softmax(np.asarray(loaded(pixels)))[0]
    assert name == CLASSES[probs.argmax()] and abs(float(prob) - probs.max()) < 1e-5


BLOCKER = """import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
"""
