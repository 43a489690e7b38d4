"""How often each method's time-step attribution peaks in the window that decides the class (RESULTS, issue 26).

    python experiments/sequence_window_peaks.py

The task and the trained GRU are the ones `tests/test_explain_sequences.py` asserts on; this prints every method,
asserted or not, with the peak taken on the signed map and on its absolute value.
"""

from __future__ import annotations

import numpy as np

from tests.test_explain_sequences import BLOCK, WINDOW, window_gru, window_task
from xai.explain.methods import build_method

METHODS = {
    "integrated_gradients": {"n_steps": 16},
    "saliency": {},
    "input_x_gradient": {},
    "occlusion": {"mask_size": BLOCK, "stride": 2},
    "occlusion (default windows)": {},
    "lime": {"num_samples": 300},
}


def main() -> None:
    model = window_gru.__wrapped__()
    images, labels = window_task(40, seed=7)
    print("accuracy", float((np.asarray(model(images)).argmax(-1) == labels).mean()))
    for name, options in METHODS.items():
        maps = np.asarray(build_method(name.split()[0], model, None, options)(images, labels))[:, 0]
        for kind, peak in (("signed", maps.argmax(1)), ("|map|", np.abs(maps).argmax(1))):
            print(f"{name} {kind}: {((peak >= WINDOW[0]) & (peak < WINDOW[1])).mean():.3f}")


if __name__ == "__main__":
    main()
