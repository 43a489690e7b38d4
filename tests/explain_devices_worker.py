"""The explainers' device-count test: LIME, SHAP, Score-CAM and occlusion on a trained digits net, in one process
with 2 XLA CPU devices, their batches kept on the first device and then split over both.

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python tests/explain_devices_worker.py OUT.npz

Writes, per device count d (keys `d1_...`, `d2_...`), each explainer's output and the largest batch the model saw
with how many devices that batch was split over (read inside the compiled forward by `jax.debug.inspect_array_sharding`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.explain_models import DigitsConvNet, trained_digits_convnet  # noqa: E402
from xai.explain import probe  # noqa: E402
from xai.explain.cam import ScoreCAM  # noqa: E402
from xai.explain.lime import LimeImage  # noqa: E402
from xai.explain.occlusion import Occlusion  # noqa: E402
from xai.explain.shap_partition import PartitionShap  # noqa: E402

SEEN: list[tuple[int, int]] = []  # (batch, devices it is split over) of every compiled forward


class Recording(DigitsConvNet):
    """The trained net, reporting how its input batch is laid out over the devices."""

    def __call__(self, x):
        jax.debug.inspect_array_sharding(x, callback=lambda s, n=x.shape[0]: SEEN.append((n, len(s.device_set))))
        return super().__call__(x)


def largest_batch_split() -> list[int]:
    """[batch, devices] of the largest batch the model saw since the last call."""
    batch, devices = max(SEEN)
    SEEN.clear()
    return [batch, devices]


def explain_all(model, images, targets) -> dict[str, np.ndarray]:
    """Each explainer's output and the [batch, devices] of the largest batch the model saw while it ran."""
    out = {}
    out["lime"] = LimeImage(model, num_samples=300, batch_size=256)(images, targets).weights
    out["split_lime"] = largest_batch_split()
    out["shap"] = PartitionShap(model, max_evals=300, batch_size=100)(images[:2], targets[:2])
    out["split_shap"] = largest_batch_split()
    out["scorecam"] = np.asarray(ScoreCAM(model, "conv2", batch_size=64)(images, targets))
    out["split_scorecam"] = largest_batch_split()
    out["occlusion"] = np.asarray(Occlusion(model, mask_size=3, stride=1, batch_size=128)(images, targets))
    out["split_occlusion"] = largest_batch_split()
    return out


def main(out: Path) -> None:
    # The sharding callback fires while XLA compiles: a program read back from the tests' persistent cache would skip it.
    jax.config.update("jax_enable_compilation_cache", False)
    model, images, labels = trained_digits_convnet(steps=100)  # trained enough for maps to follow it
    model.__class__ = Recording
    images, targets = images[:4], labels[:4]
    results = {"devices": jax.device_count()}
    for devices, shard in ((1, False), (2, True)):  # off: the first device alone (xai/explain/probe.py)
        probe.SHARD_ON_CPU = shard
        results |= {f"d{devices}_{k}": v for k, v in explain_all(model, images, targets).items()}
    np.savez(out, **results)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
