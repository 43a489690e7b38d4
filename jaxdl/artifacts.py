"""Model artifacts: a trained or imported model that loads without its training data or optimiser.

    model = jaxdl.load_model("runs/digits-lenet5/2026-11-26_10-00-00")   # best checkpoint
    probs = jax.nn.softmax(model(images_uint8))                          # preprocessing included
    model.class_names, model.preprocess, model.step, model.provenance

An artifact is a directory with `model.json` (the model's config, input spec, preprocessing
with its stored mean/std, class names, provenance) beside its weights. Three layouts load:

- a run directory of `jaxdl-train`: `model.json` + `checkpoints/<step>/` (best, last or a step);
- an exported model (`save_model`, `jaxdl-import`): `model.json` + `weights/`;
- any format a plugin registers in `FORMATS` (`xai.compress` registers compressed checkpoints).

Runs written before `model.json` existed get one on first load (their data set is read once
to compute the normalisation, then never again).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from flax import nnx
from omegaconf import DictConfig, OmegaConf

from jaxdl import models
from jaxdl.data.pipeline import Preprocess
from jaxdl.checkpoint import RunCheckpoints, card_identity, read_verified_tree, write_verified_tree
from jaxdl.run_status import read_status
from jaxdl.errors import CheckpointError
from jaxdl.plugins import load_plugins
from jaxdl.registry import Registry
from jaxdl.trees import keys_from_data, keys_to_data

log = logging.getLogger("jaxdl")

MODEL_CARD = "model.json"
FORMAT, VERSION = "jaxdl-model", 1
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """Everything needed to rebuild and feed a model, apart from its weights."""

    model: dict[str, Any]  # the conf/model entry: name, options, pruned channel widths
    spec: models.InputSpec
    preprocess: Preprocess
    class_names: tuple[str, ...]
    input_dtype: str = "uint8"  # what the data gives: uint8 pixels or float32 signals
    compute_dtype: str = "float32"
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "input": {
                "size": list(self.spec.size),
                "channels": self.spec.channels,
                "num_classes": self.spec.num_classes,
                "dtype": self.input_dtype,
            },
            "preprocess": {**dataclasses.asdict(self.preprocess), "size": list(self.preprocess.size)},
            "class_names": list(self.class_names),
            "compute_dtype": self.compute_dtype,
            "provenance": self.provenance,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: Path) -> "ModelCard":
        if data.get("format") != FORMAT or int(data.get("version", 0)) > VERSION:
            raise CheckpointError(
                f"{where} is not a jaxdl model card of version <= {VERSION} "
                f"(format {data.get('format')!r}, version {data.get('version')!r}); upgrade jaxdl"
            )
        try:
            i, p = data["input"], dict(data["preprocess"])
            p["size"], p["mean"], p["std"] = tuple(p["size"]), tuple(p["mean"]), tuple(p["std"])
            return cls(
                dict(data["model"]),
                models.InputSpec(tuple(i["size"]), int(i["channels"]), int(i["num_classes"])),
                Preprocess(**p),
                tuple(data["class_names"]),
                str(i.get("dtype", "uint8")),
                str(data.get("compute_dtype", "float32")),
                dict(data.get("provenance") or {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{where} is damaged ({type(err).__name__}: {err}); re-export the model") from err

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MODEL_CARD
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, directory: Path) -> "ModelCard":
        path = Path(directory) / MODEL_CARD
        try:
            return cls.from_json(json.loads(path.read_text()), path)
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{path} is not valid JSON ({err}); the artifact is damaged") from err

    def build(self, seed: int = 0) -> nnx.Module:
        """The model with fresh weights, in eval mode."""
        model = models.build(self.model, self.spec, seed, DTYPES[self.compute_dtype])
        model.eval()
        return model

    def build_for_loading(self) -> nnx.Module:
        """The model in eval mode with shapes where its weights go, for `load_weights` to fill: fresh weights
        would cost a loader an XLA compile per initialiser and layer shape (a GoogLeNet's 118 on a CPU) only to be
        overwritten."""
        model = models.build_unfilled(self.model, self.spec, dtype=DTYPES[self.compute_dtype])
        model.eval()
        return model


def card_from_config(
    cfg: DictConfig, spec: models.InputSpec, preprocess: Preprocess, class_names, input_dtype: str, **provenance: Any
) -> ModelCard:
    """The card of a model a jaxdl config trains."""
    return ModelCard(
        OmegaConf.to_container(cfg.model, resolve=True),
        spec,
        preprocess,
        tuple(map(str, class_names)),
        input_dtype,
        str(cfg.trainer.compute_dtype),
        {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "data": str(cfg.data.get("name")), **provenance},
    )


@dataclasses.dataclass
class LoadedModel:
    """A model ready for inference: call it on raw inputs (uint8 pixels or float signals), get logits."""

    model: nnx.Module
    card: ModelCard
    path: Path
    step: int | None = None
    cfg: DictConfig | None = None  # the full config it was trained with, when it has one
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)  # what a format adds (e.g. a float twin)

    @property
    def preprocess(self) -> Preprocess:
        return self.card.preprocess

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.class_names

    @property
    def spec(self) -> models.InputSpec:
        return self.card.spec

    @property
    def provenance(self) -> dict[str, Any]:
        return self.card.provenance

    def __call__(self, inputs: jax.Array) -> jax.Array:
        return self.model(self.preprocess(jnp.asarray(inputs)))


@dataclasses.dataclass(frozen=True)
class ArtifactFormat:
    """A way models are stored: `detect(path)` says whether `path` is one, `load(path, which)` loads it."""

    detect: Callable[[Path], bool]
    load: Callable[[Path, str | int], LoadedModel]


FORMATS: Registry[ArtifactFormat] = Registry("model format")


def load_model(path: str | Path, which: str | int = "best") -> LoadedModel:
    """The model stored at `path` (any registered format); `which` picks a run's checkpoint: best, last or a step."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass a run directory, an exported model or a compressed checkpoint")
    load_plugins()
    for name in FORMATS.names():
        fmt = FORMATS.get(name)
        if fmt.detect(path):
            return fmt.load(path, which)
    raise CheckpointError(
        f"{path} is not a jaxdl model (no {MODEL_CARD} or checkpoints/); "
        f"pass the directory jaxdl-train, jaxdl-import or jaxdl-compress wrote"
    )


# ---- exported models: model.json + weights/ ----------------------------------------------------------

WEIGHTS = "weights"


def weights_of(module: nnx.Module) -> dict[str, nnx.State]:
    """The arrays an artifact stores: parameters and the other state (batch statistics)."""
    _, params, rest = nnx.split(module, nnx.Param, ...)
    return keys_to_data({"params": params, "model_state": rest})


def save_model(directory: str | Path, module: nnx.Module, card: ModelCard, replace: bool = False) -> Path:
    """Write `module` and its card as a self-contained artifact that `load_model` reads.

    `replace`: the artifact is written beside `directory` and then takes its place whole, so nothing of
    what was there before (another model's files) survives to mix with it, even if the write fails."""
    directory = Path(directory).absolute()
    if not replace:
        directory.mkdir(parents=True, exist_ok=True)
        write_verified_tree(directory / WEIGHTS, weights_of(module))
        card.write(directory)
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    old = fresh.with_name(fresh.name + ".old")
    try:
        save_model(fresh, module, card)
        if directory.exists():
            directory.rename(old)
        try:
            fresh.rename(directory)
        except OSError:
            if old.exists():
                old.rename(directory)  # the earlier artifact stays as it was
            raise
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return directory


def _is_exported(path: Path) -> bool:
    return (path / MODEL_CARD).exists() and (path / WEIGHTS).is_dir()


def _load_exported(path: Path, which: str | int) -> LoadedModel:
    card = ModelCard.read(path)
    module = card.build_for_loading()
    load_weights(module, read_verified_tree(path / WEIGHTS, weights_of(module)))
    return LoadedModel(module, card, path)


def load_weights(module: nnx.Module, weights: Mapping[str, Any]) -> None:
    """Put restored `{'params', 'model_state'}` arrays into `module` (PRNG keys re-typed)."""
    _, params, rest = nnx.split(module, nnx.Param, ...)
    like = {"params": params, "model_state": rest}
    restored = keys_from_data(dict(weights), like)
    nnx.update(module, restored["params"], restored["model_state"])
    module.eval()


FORMATS.register("exported")(ArtifactFormat(_is_exported, _load_exported))


# ---- run directories of jaxdl-train: model.json + checkpoints/<step>/ ------------------------------------


def resolve_run_dir(path: str | Path) -> tuple[Path, int | None]:
    """Accept a run directory, its `checkpoints/` directory or one `checkpoints/<step>` directory."""
    path = Path(path).expanduser().absolute()
    if path.name.isdigit() and path.parent.name == "checkpoints":
        return path.parent.parent, int(path.name)
    if path.name == "checkpoints":
        return path.parent, None
    return path, None


def run_config(run_dir: Path) -> DictConfig:
    """The config a run directory was trained with."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a jaxdl run directory (no config.yaml); pass the directory jaxdl-train wrote")
    try:
        return OmegaConf.load(path)
    except Exception as err:  # noqa: BLE001 - YAML errors of every kind
        raise CheckpointError(f"{path} is not valid YAML ({type(err).__name__}); the run directory is damaged") from err


def _is_run(path: Path) -> bool:
    run_dir, _ = resolve_run_dir(path)
    if not (run_dir / "checkpoints").is_dir():
        return False
    return (run_dir / MODEL_CARD).exists() or ((run_dir / "config.yaml").exists() and "model" in run_config(run_dir))


def run_card(run_dir: Path, cfg: DictConfig) -> ModelCard:
    """The run's model card; a run from before model cards gets one, computed once from its data."""
    if (run_dir / MODEL_CARD).exists():
        return ModelCard.read(run_dir)
    from jaxdl.data import load_dataset
    from jaxdl.data.pipeline import make_preprocess

    log.info("%s predates model cards: reading its data set once to store its normalisation in %s", run_dir, MODEL_CARD)
    dataset = load_dataset(cfg.data)
    spec = models.InputSpec(models.input_size(cfg.model, dataset.image_shape[:2]), dataset.image_shape[2], dataset.num_classes)
    card = card_from_config(
        cfg,
        spec,
        make_preprocess(cfg.data, spec.size, *dataset.channel_stats()),
        dataset.class_names,
        str(dataset.train.images.dtype),
        source="jaxdl-train",
        note="model card added on first load",
    )
    try:
        card.write(run_dir)
    except OSError as err:  # a read-only run directory still loads
        log.warning("could not store %s in %s (%s)", MODEL_CARD, run_dir, err)
    return card


def _load_run(path: Path, which: str | int) -> LoadedModel:
    run_dir, step = resolve_run_dir(path)
    cfg = run_config(run_dir)
    card = run_card(run_dir, cfg)
    t = cfg.trainer
    ckpts = RunCheckpoints(
        run_dir / "checkpoints",
        keep_last=t.keep_checkpoints,
        best_metric=t.best_metric,
        best_mode=t.best_mode,
        card=card_identity(card.to_json()),
    )
    try:
        if step is None and which == "best":
            step = _recorded_best(run_dir, ckpts)
        step = ckpts.select_step(which if step is None else step)
        module = card.build_for_loading()
        weights = ckpts.restore_part(step, weights_of(module))
        if card.provenance.get("weights") == "ema":  # trained with trainer.eval_weights=ema: the average is the model
            from jaxdl.ema import restore_ema

            weights["params"] = restore_ema(ckpts, step, weights["params"])
        load_weights(module, weights)
    finally:
        ckpts.close()
    return LoadedModel(module, card, run_dir, step, cfg)


def _recorded_best(run_dir: Path, ckpts: RunCheckpoints) -> int | None:
    """The best step of a finished run: the one its `results.json` reports (and its test metrics are of),
    refused in one line unless the verified checkpoints agree; None while the run has no results."""
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{run_dir / 'results.json'} is unreadable ({err}); the run directory is damaged") from err
    if read_status(run_dir).get("status") == "running" or not isinstance(results, dict) or "best_step" not in results:
        return None  # a run going on (its results.json is an earlier part's), or one of an app without a best
    recorded, verified = results["best_step"], ckpts.best_step()
    if recorded == verified:
        return recorded
    if recorded not in ckpts.all_steps():
        why = "it is not in checkpoints/ (deleted, or moved to damaged_checkpoints/)"
    elif not ckpts.meta(recorded):
        why = "its stored meta (epoch, metrics) is damaged"
    else:
        why = f"the verified checkpoints rank step {verified} best"
    raise CheckpointError(
        f"{run_dir / 'results.json'} reports step {recorded} as the best checkpoint, but {why}; "
        "load a step by number, or run the training command again to repair the run"
    )


FORMATS.register("run")(ArtifactFormat(_is_run, _load_run))

# Exported files (jaxdl-export's .onnx / .stablehlo) load too; registered last, as they build on the above.
import jaxdl.export.deployed  # noqa: E402,F401
