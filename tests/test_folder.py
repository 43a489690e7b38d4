"""`data=folder`: decoding (modes, EXIF, draft), transforms, bad files, layout errors, training on photos."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image, ImageOps

from jaxdl.apps.data import run as data_app
from jaxdl.data import load_dataset
from jaxdl.data.file_split import FileSplit
from jaxdl.data.folder_tools import write_folder
from jaxdl.data.images import ImageDecoder, _centre_square, _random_resized_crop, detect_channels
from jaxdl.errors import DataError, JaxdlError
from jaxdl.trainer import train_and_evaluate
from tests.conftest import compose_config, quick_overrides, run_cli
from tests.image_files import (
    ORIENTATION,
    jpeg_bytes,
    photo,
    save,
    write_corrupt_files,
    write_photo_tree,
)

FOLDER = ["data=folder", "trainer.progress=false"]
EXACT = ["data.augment.crop_scale=null", "data.augment.hflip=false"]  # the evaluation transform in training too


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def _reference_eval(array: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to `size`, then crop the centre (torchvision's Resize + CenterCrop), in two PIL steps."""
    img = Image.fromarray(array)
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))


def test_eval_transform_is_resize_of_the_shorter_side_and_centre_crop(tmp_path):
    coffee = photo("coffee")  # 400 x 600
    path = save(coffee, tmp_path / "coffee.png")
    got = ImageDecoder(64, 3)(str(path))
    assert got.shape == (64, 64, 3) and _diff(got, _reference_eval(coffee, 64)) < 2.0
    assert _diff(got, np.asarray(Image.fromarray(coffee).resize((64, 64)))) > 10  # not a squashing resize


def test_modes_and_exif_become_the_models_channels(tmp_path):
    files = {p.name: p for p in write_photo_tree(tmp_path)}
    rgb = ImageDecoder(64, 3)
    grey = ImageDecoder(64, 1)
    camera = grey(str(save(photo("camera"), tmp_path / "camera8.png")))
    assert _diff(grey(str(files["camera_16bit.png"])), camera) < 1.0  # 16-bit scaled to 8
    coffee = rgb(str(save(photo("coffee"), tmp_path / "coffee.png")))
    assert _diff(rgb(str(files["coffee_cmyk.jpg"])), coffee) < 4.0
    assert _diff(rgb(str(files["chelsea_palette.png"])), rgb(str(save(photo("chelsea"), tmp_path / "c.png")))) < 4.0
    rocket = photo("rocket")
    upright = rgb(str(files["rocket_exif.jpg"]))  # EXIF orientation 6: displayed turned 90 degrees clockwise
    (tmp_path / "turned.jpg").write_bytes(jpeg_bytes(np.ascontiguousarray(np.rot90(rocket, -1))))
    (tmp_path / "plain.jpg").write_bytes(jpeg_bytes(rocket))
    assert _diff(upright, rgb(str(tmp_path / "turned.jpg"))) < 4.0
    assert _diff(upright, rgb(str(tmp_path / "plain.jpg"))) > 20.0
    assert rgb(str(files["camera_0.jpg"])).shape == (64, 64, 3)  # grey to RGB
    assert grey(str(files["astronaut_0.jpg"])).shape == (64, 64, 1)  # RGB to grey

    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (255, 0, 0, 255)  # left half opaque red, right half transparent
    on_white = ImageDecoder(40, 3)(str(save(rgba, tmp_path / "rgba.png")))
    assert (on_white[:, 25:] == 255).all() and (on_white[:, :15] == (255, 0, 0)).all()

    frames = [Image.new("L", (32, 32), 10), Image.new("L", (32, 32), 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert np.abs(grey(str(tmp_path / "anim.gif")).astype(int) - 10).max() <= 1  # the first frame

    assert detect_channels([str(files[n]) for n in ("camera_0.jpg", "coins_0.bmp")]) == 1
    assert detect_channels([str(files[n]) for n in ("camera_0.jpg", "astronaut_0.jpg")]) == 3


def test_big_jpegs_are_decoded_at_reduced_scale(tmp_path):
    y, x = np.mgrid[0:3000, 0:4000]
    big = np.stack([(x * 255 // 4000), (y * 255 // 3000), ((x + y) * 255 // 7000)], -1).astype(np.uint8)
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes(big, quality=90))
    decoder = ImageDecoder(224, 3)
    image, box = decoder._open(str(path), lambda w, h: _centre_square(w, h, 1.0))
    assert image.shape[:2] == (375, 500) and box == (62.5, 0.0, 437.5, 375.0)  # libjpeg's 1/8 scale: still >= 224 across
    crop = lambda w, h: (0, 0, 1000, 900)  # a training crop of 1000 x 900 px: 1/4 scale keeps 250 x 225
    image, box = decoder._open(str(path), crop)
    assert image.shape[:2] == (750, 1000) and box == (0.0, 0.0, 250.0, 225.0)
    assert _diff(decoder(str(path)), _reference_eval(big, 224)) < 3.0


def test_a_training_crop_of_a_rotated_jpeg_is_decoded_at_reduced_scale_in_the_right_place(tmp_path):
    y, x = np.mgrid[0:800, 0:1200]  # stored 1200 x 800, EXIF orientation 6: seen upright as 800 x 1200
    stored = np.stack([x * 255 // 1200, y * 255 // 800, (x + y) * 255 // 2000], -1).astype(np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg_bytes(stored, quality=95, exif=exif.tobytes()))
    decoder = ImageDecoder(224, 3, crop_scale=(0.9, 1.0), hflip=False)
    image, box = decoder._open(str(path), lambda w, h: (w * 0.05, h * 0.05, w * 0.95, h * 0.95))
    assert image.shape[:2] == (450, 300) and box == pytest.approx((15, 22.5, 285, 427.5))  # 3/8 scale keeps 270 px across
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))  # decoded at full size
    reference = Image.fromarray(upright).resize(
        (224, 224),
        Image.Resampling.BILINEAR,
        box=_random_resized_crop(800, 1200, np.random.default_rng(3), (0.9, 1.0), (3 / 4, 4 / 3)),
    )
    assert _diff(decoder(str(path), np.random.default_rng(3)), np.asarray(reference)) < 2.0


def test_random_resized_crop_is_seeded_and_within_its_ranges(tmp_path):
    path = save(photo("astronaut"), tmp_path / "a.png")
    decoder = ImageDecoder(32, 3)
    first, again, other = (decoder(str(path), np.random.default_rng(s)) for s in (1, 1, 2))
    assert (first == again).all() and not (first == other).all()
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, right, bottom = _random_resized_crop(600, 400, rng, (0.08, 1.0), (3 / 4, 4 / 3))
        w, h = right - left, bottom - top
        assert 0 <= left and 0 <= top and right <= 600 and bottom <= 400
        assert 0.08 * 0.9 <= w * h / 240000 <= 1.0 and 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1 or (w, h) == (533, 400)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_photo_tree(root)
    return root, sorted(str(p) for p in write_corrupt_files(root / "colour"))


def test_photos_with_corrupt_files_train_and_list_exactly_the_bad_ones(photos, tmp_path, caplog):
    root, corrupt = photos
    cfg = compose_config(
        *FOLDER,
        f"data.root={root}",
        "data.image_size=64",
        "data.stream=true",
        "data.val_fraction=0.2",
        "trainer.epochs=1",
        "trainer.batch_size=8",
        "trainer.eval_batch_size=16",
    )
    with caplog.at_level("INFO", logger="jaxdl"):
        summary = train_and_evaluate(cfg, tmp_path)
    listed = [line.split("\t")[0] for line in (tmp_path / "data_errors.txt").read_text().splitlines()]
    assert listed == corrupt
    assert any("unreadable file(s) skipped" in r.getMessage() for r in caplog.records if "epoch 1/1" in r.getMessage())
    assert 0.0 <= summary["test/accuracy"] <= 1.0 and json.loads((tmp_path / "model.json").read_text())


def test_on_bad_file_raise_names_the_file(photos, tmp_path):
    root, _ = photos
    cfg = compose_config(*FOLDER, f"data.root={root}", "data.image_size=32", "data.on_bad_file=raise")
    with pytest.raises(DataError, match=r"cannot read image .*(truncated|empty|notes|floats)"):
        train_and_evaluate(cfg, tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_inspect_reports_counts_sizes_bad_files_and_channel_stats(photos):
    root, corrupt = photos
    report = data_app("inspect", ["data=folder", f"data.root={root}", "data.image_size=32", "data.test_fraction=0.2"])
    assert "unreadable files: 4" in report and all(path in report for path in corrupt)
    assert "512 x 512:" in report and "image sizes" in report
    dataset = load_dataset(compose_config("data=folder", f"data.root={root}", "data.image_size=32", "data.stream=true").data)
    train = np.stack([x for x in (dataset.train.decoder(str(p)) for p in dataset.train.paths) if x is not None]) / 255.0
    mean = train.reshape(-1, 3).mean(0)
    assert "channel mean (0..1): " + ", ".join(f"{m:.4f}" for m in mean) in report
    counts = np.bincount(dataset.train.labels)
    assert any(line.split()[:2] == ["colour", str(counts[0])] for line in report.splitlines())


@pytest.fixture(scope="module")
def digits_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits_tree")
    write_folder(load_dataset(compose_config("data=digits").data), root)
    return root


def _records(run_dir):
    keys = ("epoch", "step", "train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy")
    return [
        {k: v for k, v in json.loads(line).items() if k in keys} for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def test_a_folder_written_from_digits_trains_like_digits(digits_tree, tmp_path):
    """File-name order keeps the arrays' order: in memory and streamed, the metrics equal data=digits'."""
    train_and_evaluate(compose_config(*quick_overrides("trainer.epochs=1")), tmp_path / "arrays")
    for stream in ("false", "true"):
        cfg = compose_config(
            *quick_overrides(
                "trainer.epochs=1", *FOLDER, f"data.root={digits_tree}", "data.image_size=8", *EXACT, f"data.stream={stream}"
            )
        )
        train_and_evaluate(cfg, tmp_path / stream)
        ours, arrays = _records(tmp_path / stream), _records(tmp_path / "arrays")
        assert len(ours) == len(arrays), stream
        for record, expected in zip(ours, arrays):  # pytest >= 9 compares flat containers only
            assert record == pytest.approx(expected, abs=1e-4), stream


def test_streamed_split_is_a_file_split_and_small_sets_stay_in_memory(digits_tree):
    base = ["data=folder", f"data.root={digits_tree}", "data.image_size=8"]
    assert isinstance(load_dataset(compose_config(*base, "data.stream=true").data).train, FileSplit)
    in_memory = load_dataset(compose_config(*base).data)  # auto: 1,797 8x8 images fit the budget
    assert not isinstance(in_memory.train, FileSplit) and in_memory.train.images.shape[1:] == (8, 8, 1)
    streamed = load_dataset(compose_config(*base, "data.memory_budget_mb=0.01").data)
    assert isinstance(streamed.train, FileSplit)
    assert (streamed.test.images[:5] == in_memory.test.images[:5]).all()


def _tree(root, classes: dict[str, int]):
    for name, n in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            save(np.full((8, 8), 40 * i, np.uint8), root / name / f"{i}.png")
    return root


@pytest.mark.parametrize(
    "case,expected",
    [
        ("empty_root", "has no class sub-folders"),
        ("one_class", r"has one class folder \('cats'\); a classifier needs at least two classes"),
        ("empty_class", r"class folder .*dogs holds no image files"),
        ("missing_root", "is not a directory"),
        ("missing_manifest", r"data.manifest .*nope.csv does not exist"),
        ("manifest_missing_file", r"labels.csv line 3: file .*gone.png does not exist"),
        ("manifest_unknown_label", r"labels.csv line 2: label 'bird' is not one of the classes \(cats, dogs\)"),
        ("neither", "needs exactly one of data.root=PATH"),
    ],
)
def test_layout_mistakes_are_one_line_errors_before_training(case, expected, tmp_path):
    root = tmp_path / "data"
    overrides = [f"data.root={root}"]
    if case == "empty_root":
        root.mkdir()
    elif case == "one_class":
        _tree(root, {"cats": 3})
    elif case == "empty_class":
        _tree(root, {"cats": 3, "dogs": 0})
    elif case == "missing_manifest":
        overrides = [f"data.manifest={tmp_path / 'nope.csv'}"]
    elif case.startswith("manifest"):
        _tree(root, {"cats": 2, "dogs": 2})
        bad = "gone.png,dogs" if case == "manifest_missing_file" else "data/dogs/1.png,dogs"
        label = "bird" if case == "manifest_unknown_label" else "cats"
        (tmp_path / "labels.csv").write_text(f"path,label\ndata/cats/0.png,{label}\n{bad}\ndata/dogs/0.png,dogs\n")
        overrides = [f"data.manifest={tmp_path / 'labels.csv'}", "data.class_names=[cats,dogs]"]
    elif case == "neither":
        overrides = []
    with pytest.raises(JaxdlError, match=expected) as err:
        load_dataset(compose_config("data=folder", *overrides).data)
    assert type(err.value).__name__ in ("DataError", "ConfigError") and "\n" not in str(err.value)


def test_bad_layout_from_the_command_line_exits_2_with_one_line_and_no_checkpoints(tmp_path):
    _tree(tmp_path / "data", {"cats": 3})
    result = run_cli(
        "-m", "jaxdl.apps.train", "data=folder", f"data.root={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "one class folder" in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_manifest_with_relative_paths_loads_its_labels(tmp_path):
    _tree(tmp_path / "data", {"cats": 4, "dogs": 4})
    lines = [f"data/{c}/{i}.png,{c}" for c in ("dogs", "cats") for i in range(4)]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    dataset = load_dataset(
        compose_config(
            "data=folder",
            f"data.manifest={tmp_path / 'labels.csv'}",
            "data.image_size=8",
            "data.val_fraction=0.25",
            "data.test_fraction=0.25",
        ).data
    )
    assert dataset.class_names == ("cats", "dogs")
    assert sorted(np.concatenate([s.labels for s in (dataset.train, dataset.val, dataset.test)]).tolist()) == [0] * 4 + [1] * 4
    assert math.isclose(len(dataset.test), 2)


def test_data_app_checks_its_command_and_format(tmp_path):
    from jaxdl.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown command 'convert'"):
        data_app("convert", [])
    with pytest.raises(ConfigError, match="format must be one of png, jpg"):
        data_app("write-folder", [f"out={tmp_path}", "format=gif"])
    with pytest.raises(ConfigError, match="inspect reads image folders"):
        data_app("inspect", ["data=digits"])
    assert data_app("write-folder", [f"out={tmp_path}", "format=jpg", "data.classes=[0,1]"]).startswith("wrote ")
    assert len(list((tmp_path / "train" / "0").glob("*.jpg"))) == len(list((tmp_path / "train" / "0").iterdir())) > 50
