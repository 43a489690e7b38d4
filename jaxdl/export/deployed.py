"""Exported files loaded back: `jaxdl.load_model("model.onnx" | "model.stablehlo")` and `jaxdl-predict` on them.

A deployed model is called like any loaded model (raw inputs in, logits out: with the preprocessing
folded in, the log of the file's probabilities, which has the same softmax and argmax), but runs the
file (ONNX Runtime, or the deserialized StableHLO), not jaxdl's model code.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

from jaxdl.artifacts import FORMATS, ArtifactFormat, LoadedModel, ModelCard
from jaxdl.errors import CheckpointError


@dataclasses.dataclass
class DeployedModel(LoadedModel):
    run: Callable[[np.ndarray], np.ndarray] | None = None
    preprocess_included: bool = True
    probabilities: bool = True

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """float32 logits of raw inputs (uint8 pixels or float signals), as `jaxdl.load_model(...)(inputs)` gives."""
        x = np.asarray(inputs)
        if not self.preprocess_included:
            x = np.asarray(self.preprocess(x), np.float32)
        out = np.asarray(self.run(x), np.float32)
        return np.log(np.maximum(out, np.finfo(np.float32).tiny)) if self.probabilities else out

    def __call__(self, inputs):
        return self.logits(inputs)


def from_metadata(path: Path, meta: dict[str, str], run: Callable[[np.ndarray], np.ndarray]) -> DeployedModel:
    if "jaxdl_card" not in meta:
        raise CheckpointError(f"{path} was not written by jaxdl-export (no jaxdl card in its metadata)")
    card = ModelCard.from_json(json.loads(meta["jaxdl_card"]), path)
    step = int(meta["step"]) if meta.get("step") else None
    return DeployedModel(
        None,
        card,
        path,
        step,
        run=run,
        preprocess_included=meta.get("preprocess") == "include",
        probabilities=meta.get("output") == "probabilities",
    )


def load_onnx(path: Path, which: str | int = "best") -> DeployedModel:
    from jaxdl.export.onnx import open_onnx

    try:
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except ImportError as err:
        raise CheckpointError("loading .onnx files needs onnx and onnxruntime: pip install 'jaxdl[export]'") from err
    except Exception as err:  # noqa: BLE001 - protobuf decode errors of every kind
        raise CheckpointError(f"{path} is not a readable ONNX file ({type(err).__name__})") from err
    return from_metadata(path, meta, open_onnx(path))


def load_stablehlo(path: Path, which: str | int = "best") -> DeployedModel:
    from jaxdl.export.stablehlo import open_stablehlo, sidecar

    card = sidecar(path)
    if not card.is_file():
        raise CheckpointError(f"{path} has no {card.name} beside it; copy both files jaxdl-export wrote")
    try:
        runner = open_stablehlo(path)
    except Exception as err:  # noqa: BLE001 - flatbuffer errors of every kind
        raise CheckpointError(f"{path} is not a readable serialized jax.export file ({type(err).__name__})") from err
    return from_metadata(path, json.loads(card.read_text()), runner)


FORMATS.register("onnx")(ArtifactFormat(lambda p: p.is_file() and p.suffix == ".onnx", load_onnx))
FORMATS.register("stablehlo")(ArtifactFormat(lambda p: p.is_file() and p.suffix == ".stablehlo", load_stablehlo))
