"""Every bad input of issues 24, 25 and 28 through the real command lines: one `error:` line, exit code 2, no
traceback, nothing written; and the promised behaviour where the input is not an error (skipped files,
converted IDX pixels, class names drawn and quoted as written)."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import os
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxdl.errors import CheckpointError, ConfigError, DataError
from tests.conftest import compose_config, run_cli

TRAIN = ["-m", "jaxdl.apps.train", "trainer.progress=false"]
FOLDER = [*TRAIN, "data=folder", "data.image_size=12"]
IMPORT = ["-m", "jaxdl.apps.import_model", "source=torchvision:resnet18"]
PREDICT = ["-m", "jaxdl.apps.predict"]
NO_NETWORK = (  # jaxdl-import as a user without a network runs it: every download is refused
    "import sys, urllib.error, torch.hub\n"
    "def refused(*a, **k): raise urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused'))\n"
    "torch.hub.load_state_dict_from_url = torch.hub.download_url_to_file = refused\n"
    "from jaxdl.apps.import_model import main\n"
    "sys.argv[1:] = sys.argv[2:]\n"
    "main()\n"
)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes (directories as empty entries)."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}


def write_pngs(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def training_run(tmp_path_factory) -> Path:
    """A finished one-epoch digits run with a mid-epoch checkpoint before its epoch-end one."""
    from jaxdl.trainer import train_and_evaluate

    run = tmp_path_factory.mktemp("run") / "run"
    overrides = ["trainer.epochs=1", "trainer.progress=false", "trainer.cpu_devices=1", "trainer.checkpoint_every_steps=20"]
    train_and_evaluate(compose_config(*overrides), run)
    return run


def png_header(width: int, height: int) -> bytes:
    """A PNG cut after its header (8-bit grey, an empty IDAT chunk): what PIL reads to size an image, no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    size = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", size) + chunk(b"IDAT", b"")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, training_run) -> Path:
    """One tree of small inputs every case reads: image folders (one with '${y}' in its name), manifests, a
    file, a garbage .safetensors, a decompression-bomb PNG, photos with unreadable ones, and a trained model."""
    root = tmp_path_factory.mktemp("inputs")
    for tree in ("pics", "x${y}"):
        for cls in ("a", "b"):
            write_pngs(root / tree / cls, 10)
        lines = ["path,label", *(f"{c}/{i}.png,{c}" for c in "ab" for i in range(10))]
        (root / tree / "m.csv").write_text("\n".join(lines) + "\n")
    (root / "pics" / "outside.csv").write_text("path,label\n../pics/a/0.png,a\n../afile.png,b\n")
    (root / "afile").write_text("not a directory")
    write_pngs(root, 1)
    (root / "0.png").rename(root / "afile.png")
    (root / "garbage.safetensors").write_bytes(np.random.default_rng(1).bytes(3000))
    (root / "bomb").mkdir()
    (root / "bomb" / "bomb.png").write_bytes(png_header(20000, 20000))  # 400 Mpixels declared
    (root / "photos").mkdir()
    write_pngs(root / "photos", 3)
    (root / "photos" / "truncated.png").write_bytes(png_header(64, 64))  # a header, no pixels
    (root / "photos" / "notes.jpg").write_text("not an image")
    (root / "model").symlink_to(training_run, target_is_directory=True)  # predict reads a run directory
    return root


def _cases():
    """(id, argv from the inputs folder `i` and a fresh output folder `o`, the error line's start, needs)."""
    return [
        (
            "explain_run_dir_file",
            lambda i, o: ["-m", "xai.explain.app", f"run_dir={i}/afile"],
            "error: run_dir={i}/afile is a file, not a directory",
            None,
        ),
        (
            "compress_run_dir_file",
            lambda i, o: ["-m", "xai.compress.app", f"run_dir={i}/afile"],
            "error: run_dir={i}/afile is a file, not a directory",
            None,
        ),
        (
            "dollar_in_root",
            lambda i, o: [*FOLDER, f"data.root={i}/x${{y}}", f"hydra.run.dir={o}"],
            "error: data.root cannot be resolved (Interpolation key 'y' not found); Hydra reads '${{...}}' as an interpolation: escape a literal dollar as \\$",
            None,
        ),
        (
            "dollar_in_manifest",
            lambda i, o: [*FOLDER, f"data.manifest={i}/x${{y}}/m.csv", f"hydra.run.dir={o}"],
            "error: data.manifest cannot be resolved (Interpolation key 'y' not found)",
            None,
        ),
        (
            "integer_class_names",
            lambda i, o: [*FOLDER, f"data.root={i}/pics", "data.class_names=[0,1]", f"hydra.run.dir={o}"],
            "error: data.class_names must be a list of names, got [0, 1]; quote numbers as names",
            None,
        ),
        (
            "manifest_label_unknown",
            lambda i, o: [*FOLDER, f"data.manifest={i}/pics/m.csv", "data.class_names=[a,c]", f"hydra.run.dir={o}"],
            "error: {i}/pics/m.csv line 12: label 'b' is not one of the classes (a, c)",
            "record",
        ),
        (
            "manifest_outside",
            lambda i, o: [*FOLDER, f"data.manifest={i}/pics/outside.csv", f"hydra.run.dir={o}"],
            "error: {i}/pics/outside.csv line 3: {i}/pics/../afile.png is outside the manifest's folder {i}/pics; move the file there or pass data.allow_outside=true",
            "record",
        ),
        (
            "learning_rate_word",
            lambda i, o: [*TRAIN, "optimizer.learning_rate=fast", f"hydra.run.dir={o}"],
            "error: optimizer.learning_rate must be a positive number (e.g. 1e-3), got 'fast'",
            None,
        ),
        (
            "negative_seed",
            lambda i, o: [*TRAIN, "trainer.seed=-1", f"hydra.run.dir={o}"],
            "error: trainer.seed must be a whole number from 0 to 4294967295, got -1",
            None,
        ),
        (
            "label_smoothing_2",
            lambda i, o: [*TRAIN, "trainer.label_smoothing=2", f"hydra.run.dir={o}"],
            "error: trainer.label_smoothing must be a number in [0, 1), got 2",
            None,
        ),
        (
            "label_smoothing_negative",
            lambda i, o: [*TRAIN, "trainer.label_smoothing=-1", f"hydra.run.dir={o}"],
            "error: trainer.label_smoothing must be a number in [0, 1), got -1",
            None,
        ),
        (
            "run_dir_is_a_file",
            lambda i, o: [*TRAIN, f"hydra.run.dir={i}/afile"],
            "error: hydra.run.dir={i}/afile is a file, not a directory",
            None,
        ),
        (
            "run_dir_unwritable",
            lambda i, o: [*TRAIN, "hydra.run.dir=/proc/jaxdl/run"],
            "error: hydra.run.dir=/proc/jaxdl/run cannot be created: /proc is not writable",
            None,
        ),
        (
            "run_dir_under_a_file",
            lambda i, o: [*TRAIN, f"hydra.run.dir={i}/afile/run"],
            "error: hydra.run.dir={i}/afile/run cannot be created: {i}/afile is a file",
            None,
        ),
        (
            "import_garbage_safetensors",
            lambda i, o: [*IMPORT, f"file={i}/garbage.safetensors", f"out={o}"],
            "error: file={i}/garbage.safetensors is not a readable .safetensors file (SafetensorError",
            "safetensors",
        ),
        (
            "import_std_zero",
            lambda i, o: [*IMPORT, "weights=none", "mean=[0.5]", "std=[0]", f"out={o}"],
            "error: std must be positive numbers (the inputs are divided by it), got [0.0]",
            None,
        ),
        (
            "import_input_size_zero",
            lambda i, o: [*IMPORT, "weights=none", "input_size=0", f"out={o}"],
            "error: input_size must be a positive number of pixels, got 0",
            None,
        ),
        (
            "import_offline",
            lambda i, o: ["-c", NO_NETWORK, "-", "source=torchvision:resnet18", f"out={o}"],
            "error: downloading the weights of torchvision:resnet18 failed (<urlopen error [Errno 111] Connection refused>); without a network, import a saved state dict: jaxdl-import source=torchvision:resnet18 file=PATH.pth (or .safetensors) out={o}",
            "torchvision",
        ),
        (
            "predict_bomb",
            lambda i, o: [*PREDICT, f"model={i}/model", f"images={i}/bomb", f"out={o}/p.csv"],
            "error: none of the 1 image file(s) at '{i}/bomb' could be read: DecompressionBombError: Image size (400000000 pixels) exceeds limit",
            "out",
        ),
        (
            "predict_out_is_a_directory",
            lambda i, o: [*PREDICT, f"model={i}/model", f"images={i}/pics", f"out={i}/pics"],
            "error: out={i}/pics is a directory; pass a file name, e.g. out={i}/pics/predictions.csv",
            None,
        ),
        (
            "predict_out_parent_missing",
            lambda i, o: [*PREDICT, f"model={i}/model", f"images={i}/pics", f"out={o}/p.csv"],
            "error: out={o}/p.csv: the folder {o} does not exist; create it or pass another",
            None,
        ),
        (
            "predict_raise_on_bad_file",
            lambda i, o: [*PREDICT, f"model={i}/model", f"images={i}/photos", "on_bad_file=raise", f"out={o}/p.csv"],
            "error: cannot read image {i}/photos/",
            "out",
        ),
    ]


@pytest.mark.parametrize("case,argv,expected,needs", _cases(), ids=[c[0] for c in _cases()])
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(inputs, tmp_path, compile_cache_env, case, argv, expected, needs):
    if needs in ("safetensors", "torchvision") and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{needs} is not installed (the torch extra)")
    out = tmp_path / "out"
    if needs == "out":
        out.mkdir()
    before = snapshot(inputs)
    result = run_cli(*argv(inputs, out), env={**compile_cache_env, "TORCH_HOME": str(tmp_path / "torch")})
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(expected.format(i=inputs, o=out)), errors[0]
    assert snapshot(inputs) == before
    written = snapshot(out) if out.exists() else {}
    if needs == "record":  # refused while reading the data: a new run directory records only the failure
        assert set(written) <= {"status.json", ".hydra", ".hydra/overrides.yaml", ".hydra/hydra.yaml"}, written
        assert json.loads(written["status.json"])["status"] == "failed"
    else:
        assert written == {}, written


def test_a_folder_prediction_skips_unreadable_files_and_lists_them(inputs, tmp_path, compile_cache_env):
    out = tmp_path / "predictions.csv"
    result = run_cli(*PREDICT, f"model={inputs}/model", f"images={inputs}/photos", f"out={out}", env=compile_cache_env)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.reader(out.open()))[1:]
    assert sorted(Path(r[0]).name for r in rows) == ["0.png", "1.png", "2.png"]
    listed = (tmp_path / "predict_errors.txt").read_text().splitlines()
    assert sorted(Path(line.split("\t")[0]).name for line in listed) == ["notes.jpg", "truncated.png"]
    assert f"2 unreadable file(s) skipped, listed in {tmp_path / 'predict_errors.txt'}" in result.stdout
    assert f"skipped {inputs}/photos/notes.jpg: UnidentifiedImageError" in result.stdout


def test_an_escaped_dollar_reads_the_folder_it_names(inputs):
    from jaxdl.data import load_dataset
    from jaxdl.validate import check_resolvable

    cfg = compose_config(
        "data=folder", f"data.root={inputs}/x\\${{y}}", "data.image_size=12", "data.val_fraction=0.25", "data.test_fraction=0.25"
    )
    check_resolvable(cfg)
    assert cfg.data.root == f"{inputs}/x${{y}}"
    assert load_dataset(cfg.data).class_names == ("a", "b")


def test_manifest_outside_its_folder_loads_only_on_request(inputs):
    from jaxdl.data.folder import read_manifest

    with pytest.raises(DataError, match="outside the manifest's folder"):
        read_manifest(inputs / "pics" / "outside.csv")
    items, names = read_manifest(inputs / "pics" / "outside.csv", allow_outside=True)
    assert [Path(p).name for p, _ in items] == ["0.png", "afile.png"] and names == ["a", "b"]


def write_unreadable_class(root: Path) -> None:
    """Classes 'a' and 'c' with 10 readable PNGs each (plus a broken one first in 'c'), 'b' with 10 broken ones."""
    for cls in ("a", "c"):
        write_pngs(root / cls, 10)
    (root / "c" / "00.png").write_bytes(b"\x89PNG broken")  # sorts first: the probe reads on to 0.png
    (root / "b").mkdir()
    for k in range(10):
        (root / "b" / f"{k}.png").write_bytes(b"\x89PNG broken")


UNREADABLE_CLASS = r"^error: class\(es\) with no readable training image: 'b' \(10 file\(s\), e\.g\. .*b/0\.png: "


def test_a_streamed_class_whose_files_are_all_unreadable_is_refused_before_training(tmp_path, compile_cache_env):
    """Streamed, the decoders would meet class 'b' only while training: the scan's probe refuses it first."""
    write_unreadable_class(tmp_path / "pics")
    run = tmp_path / "run"
    result = run_cli(*FOLDER, f"data.root={tmp_path / 'pics'}", "data.stream=true", f"hydra.run.dir={run}", env=compile_cache_env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(UNREADABLE_CLASS, lines[0]), result.stderr
    assert "data.on_empty_class=drop" in lines[0] and "Traceback" not in result.stdout + result.stderr
    assert not (run / "checkpoints").exists() and not (run / "metrics.jsonl").exists()  # refused before training


def test_a_class_whose_files_are_all_unreadable_is_refused_or_dropped_on_request(tmp_path, caplog):
    """In memory the same refusal; `data.on_empty_class=drop` trains without the class, relabelled, with a warning."""
    from jaxdl.data import load_dataset

    write_unreadable_class(tmp_path)
    folder = ["data=folder", f"data.root={tmp_path}", "data.image_size=12"]
    with pytest.raises(DataError, match=UNREADABLE_CLASS.replace("error: ", "")):
        load_dataset(compose_config(*folder).data)
    with caplog.at_level("WARNING"):
        data = load_dataset(compose_config(*folder, "data.on_empty_class=drop").data)
    assert data.class_names == ("a", "c")
    labels = np.concatenate([data.train.labels, data.val.labels, data.test.labels])
    assert sorted(np.bincount(labels)) == [10, 10]  # 'c' became label 1: its 10 readable files, its broken one skipped
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()][0].startswith(
        "dropped class(es) with no readable training image (data.on_empty_class=drop): 'b' (10 file(s)"
    )
    with pytest.raises(ConfigError, match="data.on_empty_class must be error or drop, got 'skip'"):
        load_dataset(compose_config(*folder, "data.on_empty_class=skip").data)


def write_idx_images(directory: Path, images: np.ndarray, code: int) -> None:
    """Train and test IDX pairs holding `images` stored with the IDX type `code`, labels 0/1 alternating."""
    dtype = {0x0B: ">i2", 0x0D: ">f4"}[code]
    labels = (np.arange(len(images)) % 2).astype(np.uint8)
    for prefix in ("train", "t10k"):
        header = bytes([0, 0, code, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
        (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.astype(dtype).tobytes()))
        lab = bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + labels.tobytes()
        (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab))


@pytest.mark.parametrize(
    "values,code,pixels,expected",
    [
        ("unit", 0x0D, "uint8", "holds float32 images (values 0..1), not uint8; say how they map to pixels: data.pixels=unit"),
        ("int16", 0x0B, "uint8", "holds int16 images (values -3..300), not uint8"),
        ("nan", 0x0D, "unit", "holds NaN or infinite pixel values"),
        ("int16", 0x0B, "byte", "holds int16 images (values -3..300), outside the range [0, 255] of data.pixels=byte"),
        ("unit", 0x0D, "unit", None),
    ],
)
def test_idx_images_are_uint8_or_converted_on_request(tmp_path, values, code, pixels, expected):
    from jaxdl.data import load_dataset

    rng = np.random.default_rng(0)
    images = {
        "unit": rng.random((40, 4, 4)),
        "int16": rng.integers(-3, 301, (40, 4, 4)),
        "nan": np.where(np.arange(640).reshape(40, 4, 4) == 17, np.nan, 0.5),
    }[values]
    images.flat[:2] = {"unit": (0.0, 1.0), "int16": (-3, 300), "nan": (0.5, 0.5)}[values]  # the ranges' ends
    write_idx_images(tmp_path, images, code)
    cfg = compose_config("data=idx", f"data.dirs=[{tmp_path}]", f"data.pixels={pixels}")
    if expected:
        with pytest.raises(DataError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            load_dataset(cfg.data)
        return
    data = load_dataset(cfg.data)
    stored = np.rint(images.astype(">f4").astype(np.float64) * 255).astype(np.uint8)[..., None]
    together = np.concatenate([data.train.images, data.val.images, data.test.images])
    assert together.dtype == np.uint8 and together.max() > 1  # never 0/1 pixels
    assert sorted(map(bytes, together)) == sorted(map(bytes, np.concatenate([stored, stored])))


def test_class_names_with_dollars_and_commas_draw_and_read_back(tmp_path):
    from jaxdl import plots
    from jaxdl.evaluate import Evaluation, write_tables

    names = ["$$", "$x^$", 'a,"b"']
    labels = np.array([0, 1, 2, 2])
    logits = np.eye(3, dtype=np.float32)[[0, 2, 2, 1]]
    evaluation = Evaluation(labels, logits)
    matrix, per_class = write_tables(evaluation, names, tmp_path)
    plots.confusion_matrix(matrix, names, tmp_path / "cm.png")
    plots.misclassified_grid(np.zeros((4, 8, 8, 1), np.uint8), labels, evaluation.predictions, names, tmp_path / "grid.png")
    assert Image.open(tmp_path / "cm.png").size[0] > 0 and Image.open(tmp_path / "grid.png").size[0] > 0
    table = list(csv.reader((tmp_path / "confusion_matrix.csv").open()))
    assert table[0] == ["true\\predicted", *names] and [row[0] for row in table[1:]] == names
    assert [[int(v) for v in row[1:]] for row in table[1:]] == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    accuracy = list(csv.reader((tmp_path / "per_class_accuracy.csv").open()))
    assert accuracy[1:] == [["$$", "1.000000"], ["$x^$", "0.000000"], ['a,"b"', "0.500000"]]


def test_import_mean_and_std_must_give_one_value_per_channel():
    from jaxdl.apps.import_model import ImportOptions, check_normalisation

    options = ImportOptions(source="torchvision:resnet18", out="x", mean=[0.5], std=[1.0])
    with pytest.raises(ConfigError, match=r"^mean=\[0.5\] has 1 value\(s\); the network takes 3 channel\(s\): give 3$"):
        check_normalisation(options, 3)
    check_normalisation(ImportOptions(source="s", out="x", mean=[0.5] * 3, std=[0.2] * 3), 3)


def test_a_run_still_training_is_read_at_its_newest_complete_step(training_run, tmp_path):
    from jaxdl.runs import load_run

    run = tmp_path / "run"
    shutil.copytree(training_run, run)
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert len(steps) >= 2, steps
    newest = run / "checkpoints" / str(steps[-1])
    for item in (newest / "state").rglob("*"):  # the trainer is writing this step's arrays
        if item.is_file():
            item.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is damaged"):  # a finished run: the step is damaged
        load_run(run, "last")
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
    assert load_run(run, "last").step == steps[-2]
    assert load_run(run, "best").step == steps[-2]
    before = snapshot(run)
    result = run_cli("-m", "xai.explain.app", f"run_dir={run}", f"which={steps[-1]}", f"hydra.run.dir={tmp_path / 'explain'}")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert errors[0].startswith(
        f"error: {run} is still training: checkpoint {steps[-1]} cannot be read now because it is being written"
    )
    assert snapshot(run) == before
