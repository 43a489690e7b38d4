"""Sequence classifiers (LSTM, GRU, Transformer on (N, 1, T, C) signals): their attributions in the report.

Every explainer already takes a signal as a one-row image, so its (N, 1, T) map is a time-step attribution
(gradient methods sum the channels). What differs for signals lives with each method: occlusion hides
windows of time steps, LIME's "auto" segments are contiguous time windows, and both (like the deletion /
insertion curves) replace what they remove with 0, the gradient methods' baseline. Here: a signal is drawn
as its line over a band coloured by the attribution of each time step.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize

from xai.explain.report_figures import SEQUENTIAL_CMAP, SIGNED_CMAP, _figure_uri


def is_signal(images: Any) -> bool:
    """A (N, 1, T, C) batch: one row of time steps, which the report draws as a line, not a picture."""
    return np.ndim(images) == 4 and np.shape(images)[1] == 1


def signal_figure(
    signal: np.ndarray,
    band: np.ndarray | None = None,
    limits: tuple[float, float] = (0.0, 1.0),
    signed: bool = True,
    shade: np.ndarray | None = None,
) -> str:
    """A (1, T, C) signal as lines over its (1, T) attribution `band` (coloured on the method's scale), or
    with the time steps of the boolean (1, T) `shade` (LIME's top windows) highlighted; a PNG data URI."""
    steps = signal.shape[1]
    lines = signal[0]
    low, high = float(lines.min()), float(lines.max())
    pad = 0.1 * (high - low) or 0.5
    fig, ax = plt.subplots(figsize=(2.6, 1.3))
    if band is not None:
        cmap = plt.get_cmap(SIGNED_CMAP if signed else SEQUENTIAL_CMAP)
        ax.imshow(
            np.asarray(band, float).reshape(1, steps),
            cmap=cmap,
            norm=Normalize(*limits, clip=True),
            aspect="auto",
            extent=(-0.5, steps - 0.5, low - pad, high + pad),
            interpolation="nearest",
        )
    if shade is not None:
        ax.fill_between(
            np.arange(steps), low - pad, high + pad, where=np.asarray(shade).reshape(steps), color="#f0c040", step="mid"
        )
    ax.plot(np.arange(steps), lines, color="black", lw=1)
    ax.set_xlim(-0.5, steps - 0.5)
    ax.set_ylim(low - pad, high + pad)
    ax.tick_params(labelsize=6)
    ax.set_xlabel("time step", fontsize=6, labelpad=1)
    fig.subplots_adjust(left=0.13, right=0.98, top=0.97, bottom=0.25)
    return _figure_uri(fig)
