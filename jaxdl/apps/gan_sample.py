"""`jaxdl-gan-sample`: write N labelled synthetic images of a conditional GAN run as IDX files.

    jaxdl-gan-sample run_dir=runs/gan/fashion_mnist-cdcgan/... n=6000 out=synthetic/fashion

The output directory then loads like any MNIST-format data set (`data=idx data.dirs=[OUT]`)
or augments a real one (`data.extra_train_dirs=[OUT]`). Classes are balanced.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from omegaconf import MISSING

from jaxdl.apps.cli import parse_options
from jaxdl.data.base import Split
from jaxdl.data.idx_writer import write_pair
from jaxdl.errors import ConfigError, report_user_errors
from jaxdl.apps.gan import GANExperiment, GANState, build_gan_experiment, checkpoint_rank, make_generate
from jaxdl.apps.image_grid import save_grid
from jaxdl.artifacts import run_config
from jaxdl.rundir import restore_finished


@dataclasses.dataclass
class SampleOptions:
    run_dir: str = MISSING  # a jaxdl-gan run directory (gan=cdcgan)
    n: int = 1000  # training images written (train-*-idx files)
    test_n: int | None = None  # test images (t10k-*-idx files); default n // 5
    out: str | None = None  # default RUN_DIR/synthetic
    seed: int = 0
    which: str = "best"  # best | last | a checkpoint step


def sample_split(exp: GANExperiment, state: GANState, n: int, seed: int) -> Split:
    """`n` generated images with balanced, shuffled class labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % exp.dataset.num_classes).astype(np.int32)
    z = rng.standard_normal((n, exp.latent_dim)).astype(np.float32)
    return Split(make_generate(exp)(state, z, labels), labels)


def write_samples(options: SampleOptions) -> Path:
    if options.n <= 0:
        raise ConfigError(f"n must be a positive number of images, got {options.n}")
    cfg = run_config(Path(options.run_dir))
    exp = build_gan_experiment(cfg)
    if not exp.conditional:
        raise ConfigError(f"{options.run_dir} is an unconditional GAN ({cfg.gan.name}); labelled samples need gan=cdcgan")
    state, _ = restore_finished(options.run_dir, exp.state, *checkpoint_rank(cfg), which=options.which)
    out = Path(options.out or Path(options.run_dir) / "synthetic")
    test_n = options.n // 5 if options.test_n is None else options.test_n
    train = sample_split(exp, state, options.n, options.seed)
    write_pair(out, "train", train)
    if test_n:
        write_pair(out, "t10k", sample_split(exp, state, test_n, options.seed + 1))
    order = np.argsort(train.labels[:100], kind="stable")
    save_grid(train.images[:100][order], out / "preview.png", 10)
    (out / "meta.json").write_text(
        json.dumps(
            {
                "gan_run": str(Path(options.run_dir).absolute()),
                "which": options.which,
                "train": options.n,
                "test": test_n,
                "class_names": list(exp.dataset.class_names),
                "seed": options.seed,
            },
            indent=2,
        )
    )
    return out


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    out = write_samples(parse_options(SampleOptions, sys.argv[1:] if argv is None else argv))
    print(f"wrote {out}; train with: jaxdl-train data=idx data.dirs=[{out}]  or  data.extra_train_dirs=[{out}]")


if __name__ == "__main__":
    main()
