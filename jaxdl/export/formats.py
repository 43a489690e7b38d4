"""The export-format registry: what an exporter is and how the one for a model is chosen."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from jaxdl.artifacts import LoadedModel
from jaxdl.errors import JaxdlError
from jaxdl.export.graph import ExportGraph
from jaxdl.plugins import load_plugins
from jaxdl.registry import Registry

Runner = Callable[[np.ndarray], np.ndarray]


class ExportError(JaxdlError):
    """A model that cannot be written in the asked format (an unsupported layer, int4 to ONNX)."""


class Verify(Protocol):
    def __call__(self, graph: ExportGraph, runner: Runner) -> dict: ...


@dataclasses.dataclass(frozen=True)
class Exporter:
    """`write(graph, path)` writes the file, `open(path)` runs it (outside jaxdl's model code);
    `accepts(loaded)` says whether this exporter is the one for a model (specialised ones are tried first);
    `verify(graph, runner)` replaces the float agreement check when the format is not meant to match bit for bit."""

    format: str
    suffix: str
    write: Callable[[ExportGraph, Path], None]
    open: Callable[[Path], Runner]
    accepts: Callable[[LoadedModel], bool] = lambda loaded: True
    verify: Verify | None = None
    runtime: str = ""  # the name of what runs the file, for the report


def first_line(err: Exception) -> str:
    """A converter's error as one line; a batch-dependent shape gets the fix."""
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if "Symbolic dimension" in line:
        line += " (the model's code needs a constant batch: pass batch=N)"
    return line


EXPORTERS: Registry[Exporter] = Registry("export format")


def exporter_for(loaded: LoadedModel, fmt: str) -> Exporter:
    """The exporter of `fmt` for this model: a plugin's specialised one (e.g. int8 ONNX) if it accepts it."""
    load_plugins()
    formats = sorted({EXPORTERS.get(name).format for name in EXPORTERS.names()})
    if fmt not in formats:
        raise ExportError(f"unknown export format '{fmt}'; valid formats: {', '.join(formats)}")
    special = [EXPORTERS.get(n) for n in EXPORTERS.names() if n != fmt and EXPORTERS.get(n).format == fmt]
    for exporter in special:
        if exporter.accepts(loaded):
            return exporter
    return EXPORTERS.get(fmt)
