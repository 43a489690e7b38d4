"""Import a torchvision / timm network as a jaxdl model artifact.

    jaxdl-import source=torchvision:resnet50 weights=IMAGENET1K_V2 out=models/resnet50
    jaxdl-import source=timm:vit_base_patch16_224.augreg2_in21k_ft_in1k out=models/vit
    jaxdl-import source=torchvision:resnet18 file=resnet18.pth out=models/mine   # offline: .pth/.pt/.safetensors

Online the library downloads through its own cache; `weights=none` imports random weights.
The artifact (model.json + weights/) loads with `jaxdl.load_model` and needs no torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import jax
from flax import nnx
from omegaconf import MISSING

from jaxdl.apps.cli import parse_options
from jaxdl.errors import ConfigError, report_user_errors


@dataclasses.dataclass
class ImportOptions:
    source: str = MISSING  # torchvision:<name> or timm:<name>[.<tag>]
    out: str = MISSING  # the artifact directory to write
    weights: Optional[str] = None  # torchvision weights name (default DEFAULT); none: random weights
    file: Optional[str] = None  # a .pth / .pt state dict or a .safetensors file instead of a download
    input_size: Optional[int] = None  # default: the source's crop size
    mean: Optional[List[float]] = None  # default: the source's normalisation
    std: Optional[List[float]] = None
    class_names: Optional[List[str]] = None  # default: the source's ImageNet classes when it has 1,000 outputs
    transform_input: Optional[bool] = None  # GoogLeNet / Inception-v3 input re-normalisation (default: as the weights)
    overwrite: bool = False
    verify: bool = True  # compare with the torch model on two photographs (not with file=)


def check_out(out: Path, overwrite: bool) -> None:
    """`out` must be a new or empty directory, or (with overwrite) one the import may replace whole: never a
    run directory, whose checkpoints and model card an import would mix with (or destroy)."""
    from jaxdl.artifacts import resolve_run_dir
    from jaxdl.rundir import used
    from jaxdl.run_status import STATUS_FILE

    run_dir, _ = resolve_run_dir(out)
    if out.is_file():
        raise ConfigError(f"out={out} is a file; pass a directory")
    if used(out) or (out / STATUS_FILE).exists() or (out / "config.yaml").exists() or used(run_dir):
        raise ConfigError(f"out={out} is a training run directory; an import never writes into one: pass another directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"out={out} exists and is not empty; pass overwrite=true (it is replaced whole) or another directory")


def check_options(options: ImportOptions) -> None:
    """The arguments that need no network: a size of at least one pixel, a positive std."""
    if options.input_size is not None and options.input_size < 1:
        raise ConfigError(f"input_size must be a positive number of pixels, got {options.input_size}")
    if options.std is not None and not all(s > 0 and math.isfinite(s) for s in options.std):
        raise ConfigError(f"std must be positive numbers (the inputs are divided by it), got {list(options.std)}")
    if options.mean is not None and not all(math.isfinite(m) for m in options.mean):
        raise ConfigError(f"mean must be finite numbers, got {list(options.mean)}")


def check_normalisation(options: ImportOptions, channels: int) -> None:
    """mean= and std= give one value per input channel of the network."""
    for key in ("mean", "std"):
        values = getattr(options, key)
        if values is not None and len(values) != channels:
            raise ConfigError(
                f"{key}={list(values)} has {len(values)} value(s); the network takes {channels} channel(s): give {channels}"
            )


def _offline(err: BaseException) -> bool:
    """A failed download (no network, a proxy, a server error) rather than a local problem."""
    from urllib.error import URLError

    return isinstance(err, (URLError, ConnectionError, TimeoutError, socket.gaierror)) or type(err).__module__.startswith(
        ("requests", "urllib3", "huggingface_hub")
    )


def download(options: ImportOptions, source_model: Callable) -> Any:
    """The source's torch model with its weights; a failed download is one line saying how to import offline."""
    try:
        return source_model(options.source, options.weights)
    except Exception as err:  # noqa: BLE001 - only download failures are turned into a line, the rest re-raised
        if not _offline(err):
            raise
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"downloading the weights of {options.source} failed ({reason}); without a network, import a saved "
            f"state dict: jaxdl-import source={options.source} file=PATH.pth (or .safetensors) out={options.out}"
        ) from err


def run_import(options: ImportOptions) -> dict:
    """Import, save, and describe the artifact."""
    from jaxdl.artifacts import save_model
    from jaxdl.pretrained import import_model, source_metadata, source_model
    from jaxdl.pretrained.verify import agreement

    check_options(options)
    out = Path(options.out).expanduser()
    check_out(out, options.overwrite)
    torch_model = None if options.file else download(options, source_model)
    module, card = import_model(
        options.source,
        weights=options.weights or "DEFAULT",
        file=options.file,
        torch_model=torch_model,
        input_size=options.input_size,
        mean=options.mean,
        std=options.std,
        class_names=options.class_names,
        transform_input=options.transform_input,
    )
    check_normalisation(options, card.spec.channels)
    save_model(out, module, card, replace=True)
    p = card.preprocess
    summary = {
        "out": str(out),
        "source": options.source,
        "weights": card.provenance["weights"],
        "model": card.model["name"],
        "classes": card.spec.num_classes,
        "input": [*card.spec.size, card.spec.channels],
        "parameters": int(sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))),
        "preprocess": {
            "resize_shorter": p.resize_shorter,
            "crop": list(p.size),
            "interpolation": p.interpolation,
            "mean": list(p.mean),
            "std": list(p.std),
        },
    }
    if options.verify and torch_model is not None:
        meta = source_metadata(options.source, options.weights)
        summary["verified_against_torch"] = agreement(module, card, torch_model, meta["mean"], meta["std"])
    return summary


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    print(json.dumps(run_import(parse_options(ImportOptions, sys.argv[1:] if argv is None else argv))))


if __name__ == "__main__":
    main()
