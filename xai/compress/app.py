"""`jaxdl-compress`: compress a trained run with a recipe and report what it really bought.

    jaxdl-compress run_dir=runs/fashion_mnist-lenet5/2026-11-25_15-25-00 compress=int8

Writes `<run_dir>/compress/<recipe>/`: `checkpoint/` (the compressed checkpoint, loadable
wherever a run directory is: `jaxdl.runs.load_run`, `jaxdl-train trainer.init_from=...`,
the explanation app), `original/` (the float model in the same format, the size baseline),
`report.md` and `report.json`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
from omegaconf import DictConfig, OmegaConf

from jaxdl.config import check_group_overrides, compose_config
from jaxdl import logs
from jaxdl.apps import hydra_app, require_path
from jaxdl.artifacts import resolve_run_dir
from jaxdl.errors import ConfigError
from jaxdl.run_status import read_status
from jaxdl.runs import load_run
from xai.compress.loading import load_compressed
from xai.compress.pipeline import compress
from xai.compress.report import Measurement, accuracy, disk_bytes, jitted_forward, latencies, parameter_counts, write_report
from xai.compress.storage import save_compressed

log = logging.getLogger("jaxdl.compress")


def _measure(name: str, forward, float_model, directory: Path, split, latency: tuple[dict, dict]) -> Measurement:
    params, nonzeros = parameter_counts(float_model)
    raw, gz = disk_bytes(directory)
    return Measurement(name, accuracy(forward, split), params, nonzeros, raw, gz, *latency)


def compress_and_report(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Compress `cfg.run_dir` with recipe `cfg.compress`, write checkpoint and report to `out_dir`."""
    if not cfg.get("run_dir"):
        raise ConfigError(f"run_dir is required: {USAGE}")
    status = read_status(resolve_run_dir(cfg.run_dir)[0]).get("status")
    if status not in (None, "completed") and not cfg.get("allow_unfinished"):
        raise ConfigError(
            f"{cfg.run_dir} is a {status} run, not a completed one; finish it (run its command again) "
            "or pass allow_unfinished=true to compress it as it is"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logs.write_to(out_dir)
    recipe = OmegaConf.to_container(cfg.compress, resolve=True)
    run = load_run(cfg.run_dir, cfg.which)
    source = {"run_dir": str(run.run_dir), "step": run.step}
    calibration = run.preprocess(jnp.asarray(run.dataset.train.images[: int(cfg.calibration_examples)]))
    compressed_cfg, model = compress(run, recipe, out_dir, calibration)

    card = run.loaded.card
    original_dir = save_compressed(out_dir / "original", run.model, run.cfg, {"name": "original"}, card, source)
    compressed_card = dataclasses.replace(
        card,
        model=OmegaConf.to_container(compressed_cfg.model, resolve=True),
        provenance={**card.provenance, "compressed_with": recipe["name"], "source": source},
    )
    checkpoint_dir = save_compressed(out_dir / "checkpoint", model, compressed_cfg, recipe, compressed_card, source)
    loaded = load_compressed(checkpoint_dir)  # measure what was written, as a user will load it

    def forwards_on(device=None):  # both models, on the CPU unless told otherwise
        return {
            "original": jitted_forward(run.model, run.preprocess, device),
            recipe["name"]: jitted_forward(loaded.model, loaded.preprocess, device),
        }

    forwards = forwards_on()
    times = latencies(forwards, run.dataset.test.images, list(cfg.latency.batch_sizes), int(cfg.latency.repeats))
    if jax.default_backend() != "cpu":  # accuracy does not depend on where it is computed: use the accelerator
        forwards = forwards_on(jax.devices()[0])
    test = run.dataset.test
    original = _measure("original (float32)", forwards["original"], run.experiment.model, original_dir, test, times["original"])
    result = _measure(
        recipe["name"], forwards[recipe["name"]], loaded.extras["float_model"], checkpoint_dir, test, times[recipe["name"]]
    )
    report = write_report(out_dir, recipe, source, original, result)
    if cfg.explanations.enabled:  # the float and compressed models explained side by side on the same test images
        from xai.explain.compare import add_to_compress_report, explain_compression

        compared = explain_compression(
            (run.model, run.preprocess),
            (loaded.model, loaded.preprocess),
            recipe["name"],
            test.images[: int(cfg.explanations.images)],
            list(cfg.explanations.methods),
            int(cfg.explanations.steps),
        )
        report = add_to_compress_report(out_dir, report, compared)
    r = report["ratios"]
    log.info(
        "%s: accuracy %.4f -> %.4f, gzip size %.3fx, batch-256 speedup %.2fx; report in %s",
        recipe["name"],
        original.accuracy,
        result.accuracy,
        r["bytes_gzip"],
        r.get("speedup_batch256", float("nan")),
        out_dir,
    )
    return report


def compress_run(run_dir: str | Path, recipe: str = "int8", *overrides: str) -> dict:
    """`jaxdl-compress run_dir=... compress=recipe ...` from Python (notebooks, the quickstart)."""
    check_group_overrides([f"compress={recipe}"])
    cfg = compose_config("compress_app", [f"run_dir={run_dir}", f"compress={recipe}", *overrides])
    return compress_and_report(cfg, Path(run_dir) / "compress" / cfg.compress.name)


USAGE = "jaxdl-compress run_dir=PATH_OF_A_TRAINED_RUN compress=int8"
main = hydra_app("compress_app", compress_and_report, check=lambda argv: require_path(argv, "run_dir", USAGE))


if __name__ == "__main__":
    main()
