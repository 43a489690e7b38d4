"""The analytic FLOP count behind MFU figures, and `trainer.profile=true`'s trace of a few steps."""

from __future__ import annotations

import gzip
import json

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jaxdl import models
from jaxdl.flops import forward_macs, module_macs
from jaxdl.profiling import top_ops
from jaxdl.trainer import train_and_evaluate
from tests.conftest import compose_config, quick_overrides


class GroupedConvThenScan(nnx.Module):
    """A grouped strided conv, a dense layer, and a 7-step scan of a matrix product: each counted by hand below."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(4, 8, (3, 3), strides=2, feature_group_count=2, padding="SAME", rngs=rngs)
        self.dense = nnx.Linear(8 * 8 * 8, 16, rngs=rngs)
        self.recurrent = nnx.Param(jnp.ones((16, 16)))

    def __call__(self, x):
        h = self.dense(self.conv(x).reshape(x.shape[0], -1))
        h, _ = jax.lax.scan(lambda carry, _: (carry @ self.recurrent.value, None), h, None, length=7)
        return h


def test_multiply_adds_match_a_hand_count():
    model = GroupedConvThenScan(nnx.Rngs(0))
    conv = 3 * 8 * 8 * 8 * (4 // 2) * 3 * 3  # batch x output positions x channels x (inputs per group x window)
    dense = 3 * (8 * 8 * 8) * 16
    scan = 7 * 3 * 16 * 16
    assert forward_macs(model, (3, 16, 16, 4)) == conv + dense + scan


@pytest.mark.parametrize("zoo, weights", [("resnet50_imagenet", "ResNet50_Weights"), ("vit_imagenet", "ViT_B_16_Weights")])
def test_zoo_counts_equal_torchvisions_published_ones(zoo, weights):
    """torchvision's weight tables give each network's multiply-adds per 224 px image (`_ops`, in G)."""
    torchvision = pytest.importorskip("torchvision")
    published = getattr(torchvision.models, weights).IMAGENET1K_V1.meta["_ops"]
    cfg = compose_config(f"model={zoo}")
    macs = module_macs(lambda: models.build(cfg.model, models.InputSpec((224, 224), 3, 1000), seed=0), (1, 224, 224, 3))
    assert macs / 1e9 == pytest.approx(published, abs=5e-4)  # published to three decimals


def test_profile_writes_a_trace_of_the_chosen_steps(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_config(*quick_overrides("trainer.epochs=1", "trainer.profile=true", "trainer.profile_steps=3"))
    train_and_evaluate(cfg, run_dir)
    traces = list((run_dir / "profile").glob("plugins/profile/*/*"))
    assert {p.name for p in traces} >= {"perfetto_trace.json.gz"}
    assert any(p.suffix == ".pb" and p.name.endswith("xplane.pb") for p in traces)  # what TensorBoard's plugin reads
    (trace,) = [p for p in traces if p.name == "perfetto_trace.json.gz"]
    calls = [e for e in json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"] if e.get("name") == "PjitFunction(step)"]
    outermost = [
        e for e in calls if not any(f is not e and f["ts"] <= e["ts"] and f["ts"] + f["dur"] >= e["ts"] + e["dur"] for f in calls)
    ]
    assert len(outermost) == 3  # trainer.profile_steps train-step calls, no more
    ops = top_ops(run_dir / "profile")
    assert ops and all(ms > 0 for _, ms, _ in ops)
    assert sum(share for *_, share in ops) <= 1.0 + 1e-9
    table = (run_dir / "profile" / "top_ops.txt").read_text().splitlines()
    assert table[0].split() == ["ms", "share", "op"] and len(table) == len(ops) + 1
