"""The import workflow around the numerics: files, errors, preprocessing, predict, fine-tuning from an import."""

from __future__ import annotations

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("safetensors")

import jax.numpy as jnp  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from jaxdl.apps.import_model import main as import_main  # noqa: E402
from jaxdl.apps.predict import main as predict_main  # noqa: E402
from jaxdl.artifacts import load_model  # noqa: E402
from jaxdl.data.photos import fit_photo  # noqa: E402
from jaxdl.data.pipeline import Preprocess  # noqa: E402
from jaxdl.errors import CheckpointError  # noqa: E402
from jaxdl.pretrained import zoo_config  # noqa: E402
from jaxdl.pretrained.mapping import load_state_dict  # noqa: E402
from jaxdl.pretrained.sources import TORCHVISION  # noqa: E402
from jaxdl.pretrained.torch_io import numpy_state_dict  # noqa: E402
from jaxdl.models import InputSpec  # noqa: E402
from jaxdl.models.registry import build_unfilled  # noqa: E402
from tests.conftest import compose_config, quick_overrides  # noqa: E402
from jaxdl.pretrained.verify import agreement  # noqa: E402
from jaxdl.pretrained.verify import random_torch_model  # noqa: E402
from tests.test_pretrained_import import assert_agrees  # noqa: E402

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_photos_are_fitted_exactly_as_torchvision_transforms(interpolation):
    from torchvision import transforms as T

    mode = getattr(T.InterpolationMode, interpolation.upper())
    reference = T.Compose([T.Resize(256, interpolation=mode), T.CenterCrop(224)])
    prep = Preprocess((224, 224), (0.5,) * 3, (0.5,) * 3, resize="center_crop", resize_shorter=256, interpolation=interpolation)
    for name in ("chelsea", "rocket", "astronaut"):  # landscape, portrait, square
        photo = Image.fromarray(getattr(data, name)())
        np.testing.assert_array_equal(fit_photo(photo, prep, 3), np.asarray(reference(photo)))


def test_in_graph_center_crop_is_close_to_the_host_path():
    """A data set of one image size is resized inside jit; it must agree with PIL's resize (antialiased both)."""
    prep = Preprocess((224, 224), (0.0,) * 3, (1.0,) * 3, resize="center_crop", resize_shorter=256)
    photo = data.chelsea()
    in_graph = np.asarray(prep(jnp.asarray(photo[None])))[0]
    host = fit_photo(Image.fromarray(photo), prep, 3) / 255.0
    assert in_graph.shape == host.shape == (224, 224, 3)
    assert np.abs(in_graph - host).mean() < 0.01


def test_state_dict_mismatches_are_named_in_one_line():
    spec = InputSpec((224, 224), 3, 1000)
    model = build_unfilled(zoo_config(TORCHVISION["resnet18"], None), spec)
    names = TORCHVISION["resnet18"].names(model)
    good = numpy_state_dict(torchvision.models.resnet18().state_dict())
    missing = {k: v for k, v in good.items() if k != "layer2.0.bn1.running_var"}
    with pytest.raises(CheckpointError, match=r"missing keys layer2\.0\.bn1\.running_var$"):
        load_state_dict(model, missing, names)
    with pytest.raises(CheckpointError, match=r"unexpected keys extra\.weight$"):
        load_state_dict(model, {**good, "extra.weight": np.zeros(3)}, names)
    wrong = {**good, "layer1.0.conv1.weight": np.zeros((64, 64, 1, 1), np.float32)}
    with pytest.raises(
        CheckpointError,
        match=r"wrongly shaped layer1\.0\.conv1\.weight \(64, 64, 1, 1\) "
        r"\(needs \(3, 3, 64, 64\) as jaxdl stages\.0\.0\.conv1\.conv\.kernel\)",
    ):
        load_state_dict(model, wrong, names)


def test_import_cli_errors_are_one_line(tmp_path, capsys):
    for argv, expected in (
        (["source=torchvision:resnet99", f"out={tmp_path}/a"], "known: torchvision:alexnet"),
        (["source=torchvision:resnet18", f"file={tmp_path}/none.pth", f"out={tmp_path}/b"], "does not exist"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            import_main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and expected in err and len(err.strip().splitlines()) == 1
    vgg_as_resnet = tmp_path / "vgg.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), vgg_as_resnet)
    with pytest.raises(SystemExit):
        import_main(["source=torchvision:resnet18", f"file={vgg_as_resnet}", f"out={tmp_path}/c"])
    assert "missing key fc.weight" in capsys.readouterr().err


def test_import_from_the_library_verifies_itself_against_torch(tmp_path, capsys):
    import json

    import_main(["source=torchvision:squeezenet1_1", "weights=none", f"out={tmp_path / 'sq'}"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["weights"] == "random (weights=none)" and summary["parameters"] == 1_235_496
    assert summary["preprocess"]["resize_shorter"] == 256 and summary["preprocess"]["crop"] == [224, 224]
    assert_agrees(summary["verified_against_torch"])
    assert load_model(tmp_path / "sq").card.provenance["source"] == "torchvision:squeezenet1_1"


@pytest.fixture(scope="module")
def resnet18_artifact(tmp_path_factory):
    """jaxdl-import of a checkpoint-style .pth (DataParallel `module.` keys under `state_dict`) and its torch model."""
    tmp = tmp_path_factory.mktemp("import")
    model = random_torch_model("torchvision:resnet18")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp / "r18.pth")
    import_main(["source=torchvision:resnet18", f"file={tmp / 'r18.pth'}", f"out={tmp / 'resnet18'}"])
    return tmp / "resnet18", model


def test_import_cli_writes_an_artifact_that_loads_without_torch_objects(resnet18_artifact):
    path, model = resnet18_artifact
    loaded = load_model(path)
    assert loaded.card.provenance["source"] == "torchvision:resnet18" and loaded.class_names[0] == "tench"
    assert loaded.preprocess.resize_shorter == 256 and loaded.preprocess.mean == IMAGENET["mean"]
    images = np.stack([fit_photo(Image.fromarray(data.coffee()), loaded.preprocess, 3)])
    assert_agrees(agreement(loaded.model, loaded.card, model, IMAGENET["mean"], IMAGENET["std"], images))


def test_safetensors_file_imports(tmp_path):
    from safetensors.torch import save_file

    model = random_torch_model("torchvision:squeezenet1_1")
    save_file(model.state_dict(), tmp_path / "s.safetensors")
    import_main(["source=torchvision:squeezenet1_1", f"file={tmp_path / 's.safetensors'}", f"out={tmp_path / 'sq'}"])
    loaded = load_model(tmp_path / "sq")
    images = np.stack([fit_photo(Image.fromarray(data.rocket()), loaded.preprocess, 3)])
    assert_agrees(agreement(loaded.model, loaded.card, model, IMAGENET["mean"], IMAGENET["std"], images))


def test_predict_on_a_photo_folder_agrees_with_torchvision(resnet18_artifact, tmp_path, capsys):
    path, model = resnet18_artifact
    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    Image.fromarray(data.chelsea()).save(folder / "cats" / "chelsea.jpg", quality=95)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(data.camera()).save(folder / "camera.png")  # grayscale: converted to RGB
    out = tmp_path / "pred.csv"
    predict_main([f"model={path}", f"images={folder}", "top_k=5", f"out={out}", "batch_size=2"])
    assert "3 images" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out)))
    assert [r["file"].rsplit("/", 1)[1] for r in rows] == ["astronaut.png", "camera.png", "chelsea.jpg"]
    transform = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    names = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]
    for row in rows:
        with torch.no_grad():
            probs = torch.softmax(model(transform(Image.open(row["file"]).convert("RGB"))[None]), -1)[0].numpy()
        assert [row[f"class_{i}"] for i in range(1, 6)] == [names[i] for i in np.argsort(-probs)[:5]]
        np.testing.assert_allclose(
            [float(row[f"probability_{i}"]) for i in range(1, 6)], np.sort(probs)[::-1][:5], rtol=1e-4, atol=1e-6
        )


def test_finetuning_from_an_import_keeps_frozen_batchnorm_and_its_normalisation(tmp_path):
    """A one-channel ResNet-18 imported at 16 px, fine-tuned on digits with its stem and first stage frozen."""
    from jaxdl.runs import load_run
    from jaxdl.trainer import train_and_evaluate
    from flax import nnx

    from jaxdl.trees import named_leaves

    model = torchvision.models.resnet18(num_classes=7)
    model.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(model.state_dict(), tmp_path / "gray.pth")
    import_main(
        [
            "source=torchvision:resnet18",
            f"file={tmp_path / 'gray.pth'}",
            f"out={tmp_path / 'gray'}",
            "input_size=16",
            "mean=[0.3]",
            "std=[0.4]",
        ]
    )
    source = load_model(tmp_path / "gray")
    assert source.spec.channels == 1 and source.spec.num_classes == 7 and source.class_names[:2] == ("0", "1")
    overrides = quick_overrides(
        "trainer.epochs=1",
        "+data.train_subset=256",  # 8 steps of a full ResNet-18: enough to move every unfrozen weight
        "model=resnet18_imagenet",
        "model.input_size=16",
        f"trainer.init_from={tmp_path / 'gray'}",
        "trainer.freeze=[stem,stages.0]",
    )
    train_and_evaluate(compose_config(*overrides), tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.preprocess.mean == (0.3,) and run.preprocess.std == (0.4,)
    before, after = (named_leaves(nnx.state(m)) for m in (source.model, run.model))
    for name in ("stem.0.conv.kernel", "stem.0.norm.mean", "stem.0.norm.var", "stages.0.1.conv2.norm.mean"):
        np.testing.assert_array_equal(np.asarray(after[name]), np.asarray(before[name]), err_msg=name)
    for name in ("stages.1.0.conv1.conv.kernel", "stages.1.0.conv1.norm.mean"):  # trained: weights and statistics
        assert not np.array_equal(np.asarray(after[name]), np.asarray(before[name])), name
    assert after["head.kernel"].shape == (512, 10)


def test_explain_photos_with_an_imported_network(resnet18_artifact, tmp_path):
    from hydra import compose, initialize_config_dir

    from jaxdl.config import CONF_DIR
    from xai.explain import app

    path, _ = resnet18_artifact
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "explain_app",
            overrides=[
                f"run_dir={path}",
                f"explain.images.paths=[{folder}]",
                "explain.methods=[gradcam]",
                "explain.target_layer=stages.3.1",
                "explain.metrics.faithfulness=false",
                "explain.metrics.sanity=false",
            ],
        )
    summary = app.explain(cfg, tmp_path / "out")
    assert np.load(tmp_path / "out" / "maps" / "gradcam.npy").shape == (2, 224, 224)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "chelsea.png, coffee.png" in page and "true " not in page and summary["indices"] == [0, 1]


def test_import_overwrite_replaces_the_directory_whole(tmp_path, capsys):
    """overwrite=true never mixes: nothing of the earlier contents survives beside the imported model."""
    out = tmp_path / "model"
    (out / "weights").mkdir(parents=True)
    (out / "weights" / "stale.bin").write_bytes(b"another model's weights")
    (out / "compressed.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        import_main(["source=torchvision:squeezenet1_1", "weights=none", f"out={out}"])
    assert exit_info.value.code == 2 and "exists and is not empty; pass overwrite=true" in capsys.readouterr().err
    import_main(["source=torchvision:squeezenet1_1", "weights=none", "verify=false", "overwrite=true", f"out={out}"])
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "weights"]
    assert not (out / "weights" / "stale.bin").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert load_model(out).card.provenance["source"] == "torchvision:squeezenet1_1"
