"""Grad-CAM against the PyTorch `grad-cam` package on CPU: one ResNet-18 in both frameworks, same weights, same maps.

    python experiments/bench_gradcam_torch.py --run-dir PATH [--batch 256]

PATH is a trained (or compressed) small-variant ResNet-18 run. Its weights, dequantized if
the checkpoint is quantized, fill a float32 jaxdl model and a PyTorch mirror of it
written here (same layer names, NCHW, OIHW kernels), so both frameworks run the same float32
function: their logits are compared first. Maps of the last block (`stages.3.1`) for the
predicted classes are compared per image by Pearson correlation, at the layer's resolution
(ReLU'd, before scaling) and at the input size (the final [0, 1] maps). The package scales
then resizes with OpenCV, jaxdl resizes then scales; the correlation is blind to both.
Per-image times at `--batch` exclude compilation; torch uses every core unless `--torch-threads` says otherwise.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
import types
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx
from torch import nn

from jaxdl import models
from jaxdl.runs import TrainedRun, load_run
from xai.compress.quantize import dequantized
from xai.explain.cam import GradCAM
from xai.explain.inputs import check_images

LAYER = "stages.3.1"
BN_EPS = 1e-5  # jaxdl.models.layers.ConvBN's default, as torch's


class TorchConvBN(nn.Module):
    """jaxdl's ConvBN with norm: bias-free conv, batch norm, optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.norm = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return torch.relu(x) if self.relu else x


class TorchBasicBlock(nn.Module):
    """jaxdl's BasicBlock: two 3x3 ConvBNs, identity or 1x1 strided projection shortcut, ReLU after the sum."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1 = TorchConvBN(cin, width, 3, stride, 1)
        self.conv2 = TorchConvBN(width, width, 3, 1, 1, relu=False)
        self.shortcut = TorchConvBN(cin, width, 1, stride, relu=False) if stride != 1 or cin != width else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return torch.relu(self.conv2(self.conv1(x)) + identity)


class TorchResNet18(nn.Module):
    """jaxdl's small-variant ResNet-18: 3x3/1 stem, four stages of two blocks, global average pool, `head`."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(TorchConvBN(channels, 64, 3, 1, 1))
        stages, cin = [], 64
        for i in range(4):
            width = 64 * 2**i
            stages.append(nn.Sequential(TorchBasicBlock(cin, width, 2 if i > 0 else 1), TorchBasicBlock(width, width, 1)))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))


def float32_model(run: TrainedRun) -> nnx.Module:
    """The run's architecture computing in float32, with its weights (quantized ones dequantized)."""
    model = dequantized(run.model, models.build(run.cfg.model, run.experiment.spec, run.cfg.trainer.seed, dtype=jnp.float32))
    model.eval()
    return model


TORCH_NAMES = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


def torch_twin(model: nnx.Module, channels: int, num_classes: int) -> TorchResNet18:
    """The PyTorch mirror with every jaxdl array copied to the tensor of the same path (HWIO -> OIHW, (in, out) -> (out, in))."""
    twin = TorchResNet18(channels, num_classes)
    tensors = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        value = np.array(var[...], np.float32)  # a writable copy: torch.from_numpy warns on jax's read-only views
        value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T if value.ndim == 2 else value
        tensors[".".join(map(str, (*path[:-1], TORCH_NAMES[path[-1]])))] = torch.from_numpy(np.ascontiguousarray(value))
    result = twin.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"the torch mirror does not match the model: missing {missing}, unexpected {result.unexpected_keys}")
    return twin.eval()


# What pytorch-grad-cam 1.5 imports from torchvision (for image preprocessing, SESS and box targets).
TORCHVISION_IMPORTS = {
    "torchvision": (),
    "torchvision.transforms": ("Compose", "Normalize", "ToTensor"),
    "torchvision.transforms.functional": ("resize",),
}


def import_grad_cam() -> tuple[type, type, bool]:
    """The package's GradCAM and ClassifierOutputTarget, and whether torchvision had to be stood in for.

    The package imports torchvision but its Grad-CAM path never calls it. PyPI's torchvision wheel is a
    CUDA build that cannot load beside a CPU-only torch ('operator torchvision::nms does not exist'),
    so there empty stand-in modules take its place."""
    try:
        import torchvision  # noqa: F401

        stand_in = False
    except (ImportError, RuntimeError):
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        for name, attributes in TORCHVISION_IMPORTS.items():
            sys.modules[name] = types.ModuleType(name)
            sys.modules[name].__dict__.update(dict.fromkeys(attributes))
        stand_in = True
    from pytorch_grad_cam import GradCAM as TorchGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    return TorchGradCAM, ClassifierOutputTarget, stand_in


def correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each pair of maps (B, h, w); NaN where a map is constant."""
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def summary(corr: np.ndarray) -> dict:
    return {"mean": float(np.nanmean(corr)), "min": float(np.nanmin(corr)), "constant_maps": int(np.isnan(corr).sum())}


def compare(
    jax_cam: GradCAM, jax_low: GradCAM, torch_cam, images: jax.Array, x: torch.Tensor, classes: np.ndarray, targets: list
) -> dict:
    """Per-image correlation of the two packages' maps: low resolution (ReLU'd, unscaled) and final."""
    jax_maps, jax_low_maps = np.asarray(jax_cam(images, classes)), np.asarray(jax_low(images, classes))
    torch_maps = torch_cam(x, targets)
    recorded = torch_cam.activations_and_grads  # the package's own weighting, without its scaling and resize
    torch_low_maps = np.maximum(
        torch_cam.get_cam_image(
            x, torch_cam.target_layers[0], targets, recorded.activations[0].numpy(), recorded.gradients[0].numpy()
        ),
        0,
    )
    return {
        "correlation": {
            "layer_resolution": summary(correlations(jax_low_maps, torch_low_maps)),
            "input_resolution": summary(correlations(jax_maps, torch_maps)),
        },
        "maps_max_abs_diff": float(np.abs(jax_maps - torch_maps).max()),
    }


def best_seconds(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each call over `repeats` rounds, after one untimed warm-up (jaxdl's compilation).

    Each round runs every call in turn, so load from other processes, which slows torch's OpenMP
    threads far more than XLA's, falls on all of them alike rather than on whichever ran last."""
    for call in calls.values():
        call()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def ms_per_image(
    jax_cam: GradCAM, torch_cam, images: jax.Array, x: torch.Tensor, classes: np.ndarray, targets: list, repeats: int
) -> dict[str, float]:
    """Both packages on the whole batch, and jaxdl on 32 images one per call."""
    single = [
        lambda i=i: jax.block_until_ready(jax_cam(images[i : i + 1], classes[i : i + 1])) for i in range(min(32, len(images)))
    ]
    seconds = best_seconds(
        {
            "jaxdl": lambda: jax.block_until_ready(jax_cam(images, classes)),
            "grad_cam_torch": lambda: torch_cam(x, targets),
            "jaxdl_batch1": lambda: [call() for call in single],
        },
        repeats,
    )
    counts = {"jaxdl": len(images), "grad_cam_torch": len(images), "jaxdl_batch1": len(single)}
    return {name: 1e3 * seconds[name] / counts[name] for name in seconds}


def cpu_name() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())


def versions(torchvision_stand_in: bool) -> dict[str, str | None]:
    found = {}
    for name in ("jax", "flax", "torch", "grad-cam", "torchvision", "opencv-python-headless", "numpy"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    if torchvision_stand_in:
        found["torchvision"] = "stand-in (cannot load beside this torch)"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    TorchGradCAM, ClassifierOutputTarget, stand_in = import_grad_cam()

    run = load_run(args.run_dir)
    if run.cfg.model.name != "resnet18" or run.cfg.model.get("variant", "small") != "small":
        raise SystemExit(
            f"{args.run_dir} holds a {run.cfg.model.name} ({run.cfg.model.get('variant')}); the torch mirror is the small ResNet-18"
        )
    spec = run.experiment.spec
    model = float32_model(run)
    twin = torch_twin(model, spec.channels, spec.num_classes)
    images = check_images(run.dataset.test.images[: args.batch])
    inputs = np.asarray(run.preprocess(images))
    x = torch.from_numpy(np.array(inputs.transpose(0, 3, 1, 2)))
    logits = np.asarray(model(jnp.asarray(inputs)))
    with torch.no_grad():
        torch_logits = twin(x).numpy()
    classes = logits.argmax(-1)
    targets = [ClassifierOutputTarget(int(c)) for c in classes]

    jax_cam = GradCAM(model, LAYER, preprocess=run.preprocess)
    jax_low = GradCAM(model, LAYER, preprocess=run.preprocess, upsample=False)
    torch_cam = TorchGradCAM(twin, [twin.stages[3][1]])
    load_before = os.getloadavg()[0]
    result = {
        "model": run.cfg.model.name,
        "layer": LAYER,
        "batch": args.batch,
        "run_dir": str(args.run_dir),
        "machine": f"{cpu_name()}, {platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
        "versions": versions(stand_in),
        "logits_max_abs_diff": float(np.abs(logits - torch_logits).max()),
        "logits_max_abs": float(np.abs(logits).max()),
        "predictions_agree": float((torch_logits.argmax(-1) == classes).mean()),
        **compare(jax_cam, jax_low, torch_cam, images, x, classes, targets),
        "ms_per_image": ms_per_image(jax_cam, torch_cam, images, x, classes, targets, args.repeats),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }
    result["speedup"] = result["ms_per_image"]["grad_cam_torch"] / result["ms_per_image"]["jaxdl"]
    print_table(result)
    out = Path(__file__).parent / "results" / f"gradcam_torch_{run.cfg.model.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


def print_table(result: dict) -> None:
    ms, corr, load = result["ms_per_image"], result["correlation"], result["load_average_1min"]
    print(
        f"{result['model']} {result['layer']}, batch {result['batch']}, {result['machine']}, "
        f"torch threads {result['torch_threads']}, load average {load['before']:.1f} -> {load['after']:.1f}"
    )
    print(
        f"logits max |diff| {result['logits_max_abs_diff']:.2e} (max |logit| {result['logits_max_abs']:.1f}), "
        f"predictions agree {result['predictions_agree']:.3f}"
    )
    for name, c in corr.items():
        print(
            f"map correlation at {name.replace('_', ' ')}: mean {c['mean']:.6f}, min {c['min']:.6f}, constant maps {c['constant_maps']}"
        )
    print(f"final maps max |diff| {result['maps_max_abs_diff']:.2e}")
    print(f"{'':26}{'ms/image':>10}")
    print(f"{'jaxdl, batch ' + str(result['batch']):26}{ms['jaxdl']:10.3f}")
    print(f"{'jaxdl, 1 image per call':26}{ms['jaxdl_batch1']:10.3f}")
    print(f"{'grad-cam (torch), batch ' + str(result['batch']):26}{ms['grad_cam_torch']:10.3f}")
    print(f"speed-up of jaxdl at batch {result['batch']}: {result['speedup']:.2f}x")


if __name__ == "__main__":
    main()
