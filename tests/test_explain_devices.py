"""The explainers' batched forwards run split over every device, and the split does not change their output.

LIME, SHAP, Score-CAM and occlusion on a trained digits net, in a process with 2 XLA CPU devices (the count is fixed
when JAX starts; tests/explain_devices_worker.py): once on the first device alone, once split over both.
Measured: the outputs are identical to the last bit on this machine; the bound allows for reduction order.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxdl.cpu_devices import xla_threads
from tests.conftest import run_cli

EXPLAINERS = ("lime", "shap", "scorecam", "occlusion")
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[int, dict]:
    path = tmp_path_factory.mktemp("explain") / "devices.npz"
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["PJRT_NPROC"] = str(xla_threads(2))  # XLA's threads for 2 devices, as the apps set them
    result = run_cli("tests/explain_devices_worker.py", str(path), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = dict(np.load(path))
    assert int(saved["devices"]) == 2
    return {d: {k.removeprefix(f"d{d}_"): v for k, v in saved.items() if k.startswith(f"d{d}_")} for d in (1, 2)}


@pytest.mark.parametrize("name", EXPLAINERS)
def test_two_devices_give_the_one_device_explanation(outputs, name):
    one, two = outputs[1][name], outputs[2][name]
    assert one.shape == two.shape and np.abs(one).max() > 0
    np.testing.assert_allclose(two, one, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", EXPLAINERS)
def test_the_model_sees_its_batch_split_over_every_device(outputs, name):
    batch, devices = outputs[2][f"split_{name}"]
    assert batch > 1 and devices == 2, (batch, devices)
    assert list(outputs[1][f"split_{name}"]) == [batch, 1]  # same batches, one device
