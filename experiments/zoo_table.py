"""Parameter counts and forward FLOPs of the model zoo next to the published (torchvision) figures.

    python experiments/zoo_table.py                       # print the tables
    python experiments/zoo_table.py --results experiments/RESULTS.md   # also refresh them there

Everything is abstract (`nnx.eval_shape`, `jax.jit(...).lower(...).cost_analysis()`): no weights
are allocated and nothing runs, so the 224x224 networks cost seconds on a CPU. XLA counts a
multiply-add as 2 FLOPs; MACs = FLOPs / 2 is what torchvision's "GFLOPS" column reports.
XLA counts only the kernel taps that land inside the input (a 3x3 conv on 8x8 with zero
padding 1 is 484 MACs, not 576), so padded networks come out a few per cent lower; and it
counts the body of a `scan` (the recurrent models) once, so those are not reported.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx
from omegaconf import OmegaConf

from jaxdl import models
from jaxdl.config import CONF_DIR
from jaxdl.models import InputSpec

# torchvision's model documentation: parameters (M) and GFLOPS (multiply-adds, G) at its input size.
PUBLISHED = {
    "alexnet_imagenet": (61.1, 0.71),
    "vgg11_imagenet": (132.9, 7.61),
    "vgg16_imagenet": (138.4, 15.47),
    "vgg19_imagenet": (143.7, 19.63),
    "googlenet_imagenet": (6.6, 1.50),
    "inception_v3_imagenet": (27.2, 5.71),  # torchvision counts the auxiliary head (23.8M without)
    "resnet18_imagenet": (11.7, 1.81),
    "resnet34_imagenet": (21.8, 3.66),
    "resnet50_imagenet": (25.6, 4.09),
    "squeezenet1_0_imagenet": (1.2, 0.82),
    "squeezenet1_1_imagenet": (1.2, 0.35),
    "vit_imagenet": (86.6, 17.56),
}
START, END = "<!-- zoo_table:start -->", "<!-- zoo_table:end -->"


def measure(config: str, spec: InputSpec) -> tuple[int, float | None]:
    """(parameters, forward FLOPs for one example in eval mode, None for loops) of a conf/model config."""
    cfg = OmegaConf.load(CONF_DIR / "model" / f"{config}.yaml")
    spec = InputSpec(models.input_size(cfg, spec.size), spec.channels, spec.num_classes)
    model = nnx.eval_shape(lambda: models.build(cfg, spec, 0))
    model.eval()
    params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    graphdef, state = nnx.split(model)
    example = jax.ShapeDtypeStruct((1, *spec.size, spec.channels), jnp.float32)
    lowered = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)).lower(state, example)
    if "stablehlo.while" in lowered.as_text():
        return params, None
    return params, float(lowered.cost_analysis()["flops"])


def imagenet_table() -> str:
    rows = [
        "| model | input | parameters | published | forward GMACs (XLA FLOPs / 2) | published GMACs |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for config, (pub_params, pub_macs) in PUBLISHED.items():
        params, flops = measure(config, InputSpec((224, 224), 3, 1000))
        size = OmegaConf.load(CONF_DIR / "model" / f"{config}.yaml").input_size
        rows.append(f"| `model={config}` | {size}x{size}x3 | {params:,} | {pub_params}M | {flops / 2e9:.2f} | {pub_macs} |")
    return "\n".join(rows)


def small_table() -> str:
    rows = ["| model | input | parameters | forward MMACs |", "| --- | --- | ---: | ---: |"]
    configs = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if not p.stem.endswith("_imagenet"))
    for config in configs:
        spec = InputSpec((28, 28), 1, 10)
        params, flops = measure(config, spec)
        size = models.input_size(OmegaConf.load(CONF_DIR / "model" / f"{config}.yaml"), spec.size)
        macs = "n/a (scan)" if flops is None else f"{flops / 2e6:.1f}"
        rows.append(f"| `model={config}` | {size[0]}x{size[1]}x1 | {params:,} | {macs} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help=f"a Markdown file whose {START} ... {END} block is replaced")
    args = parser.parse_args()
    text = (
        "ImageNet variants (1000 classes):\n\n"
        + imagenet_table()
        + "\n\nSmall variants as configured (Fashion-MNIST: 28x28x1, 10 classes):\n\n"
        + small_table()
    )
    print(text)
    if args.results:
        old = args.results.read_text()
        if START not in old or END not in old:
            raise SystemExit(f"error: {args.results} has no {START} ... {END} block to replace")
        block = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        args.results.write_text(block.sub(lambda _: f"{START}\n{text}\n{END}", old))


if __name__ == "__main__":
    main()
