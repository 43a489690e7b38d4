"""Does the written file compute what jaxdl computes? Agreement, checked the same way for every runtime."""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from jaxdl.export.graph import ExportGraph

RELATIVE_TOLERANCE = 1e-4  # max |exported - jaxdl| <= 1e-4 x max |jaxdl output|


def reference(graph: ExportGraph) -> Callable[[np.ndarray], np.ndarray]:
    """jaxdl's own jitted forward pass of the exported function."""
    fn = jax.jit(graph.fn)
    return lambda x: np.asarray(fn(x))


def float_agreement(graph: ExportGraph, runner: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray) -> dict:
    """Exported vs jaxdl on `inputs`: the largest difference against the tolerance, and argmax equality."""
    x = graph.to_model_input(inputs)
    want, got = reference(graph)(x), np.asarray(runner(x))
    if got.shape != want.shape:
        return {"passed": False, "reason": f"output shape {got.shape}, jaxdl's {want.shape}"}
    delta, scale = float(np.abs(got - want).max()), float(np.abs(want).max())
    result = {
        "inputs": len(x),
        "max_abs_diff": delta,
        "max_abs_output": scale,
        "tolerance": RELATIVE_TOLERANCE * scale,
    }
    passed = delta <= RELATIVE_TOLERANCE * scale
    if graph.classifier:
        same = int((got.argmax(-1) == want.argmax(-1)).sum())
        result["same_argmax"] = f"{same}/{len(x)}"
        passed = passed and same == len(x)
    return {"passed": bool(passed), **result}


def batch_of(inputs: np.ndarray, size: int) -> np.ndarray:
    """`size` inputs, repeating `inputs` as needed."""
    return inputs[np.arange(size) % len(inputs)]
