"""StableHLO through `jax.export`: symbolic batch, lowered for CPU and CUDA, callable by plain JAX.

    exported = jax.export.deserialize(open("model.stablehlo", "rb").read())
    probabilities = exported.call(images_uint8)      # no jaxdl, no model code

The card (class names, preprocessing, provenance) goes beside it as `<file>.json`, which
`jaxdl.load_model(FILE)` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from jaxdl.export.formats import EXPORTERS, Exporter, ExportError, Runner, first_line
from jaxdl.export.graph import ExportGraph

PLATFORMS = ("cpu", "cuda")


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_stablehlo(graph: ExportGraph, path: Path) -> None:
    batch = jax.export.symbolic_shape("batch")[0] if graph.batch is None else graph.batch
    spec = jax.ShapeDtypeStruct((batch, *graph.input_shape), graph.input_dtype)
    try:
        exported = jax.export.export(jax.jit(graph.fn), platforms=PLATFORMS)(spec)
    except Exception as err:  # noqa: BLE001 - lowering errors of every kind become one line
        raise ExportError(
            f"jax.export cannot lower model '{graph.loaded.card.model['name']}' to format=stablehlo: {first_line(err)}"
        ) from err
    path.write_bytes(exported.serialize())
    sidecar(path).write_text(json.dumps(graph.metadata(), indent=2) + "\n")


def open_stablehlo(path: Path) -> Runner:
    exported = jax.export.deserialize(bytearray(path.read_bytes()))
    call = jax.jit(exported.call)
    return lambda x: np.asarray(call(x))


EXPORTERS.register("stablehlo")(Exporter("stablehlo", ".stablehlo", write_stablehlo, open_stablehlo, runtime="StableHLO (jax)"))
