"""`jaxdl-explain`: explain a trained run and write a self-contained report.

    jaxdl-explain run_dir=runs/digits-lenet5/<date>
    jaxdl-explain run_dir=PATH explain.methods=[gradcam,lime,shap] explain.images.misclassified=true

The app's own run directory (default `<run_dir>/explain/<date>/`) gets `report.html`,
`maps/<method>.npy` (B, H, W), `images.npy`, `metrics.json` and the resolved `config.yaml`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from jaxdl.config import CONF_DIR, check_group_overrides
from jaxdl.errors import report_user_errors
from jaxdl.runs import TrainedRun, load_run
from xai.explain.inputs import ExplainError, check_images
from xai.explain.lime import lime_stability
from xai.explain.cam import token_grid
from xai.explain.methods import LAYERED, build_method, default_target_layer
from xai.explain.metrics import Faithfulness, random_baseline, sobel_baseline
from xai.explain.probe import Probe
from xai.explain.report import ReportData, write_report
from xai.explain.sanity import randomisation_test

log = logging.getLogger("jaxdl.explain")


def open_run(path: str | Path, which: str | int = "best") -> TrainedRun:
    """The one place a checkpoint becomes a model: compressed checkpoints (xai.compress) plug in here."""
    return load_run(path, which)


def select_images(labels: np.ndarray, predictions: np.ndarray, spec: DictConfig) -> np.ndarray:
    """Indices into the split: explicit ones, the first `count` of some classes, or the first misclassified ones."""
    count = int(spec.count)
    if spec.indices:
        chosen = np.asarray(list(spec.indices), int)
        bad = chosen[(chosen < 0) | (chosen >= len(labels))]
        if bad.size:
            raise ExplainError(f"image index {bad[0]} is out of range; the split has {len(labels)} images")
        return chosen
    candidates = np.arange(len(labels))
    if spec.classes:
        candidates = candidates[np.isin(labels, list(spec.classes))]
    if spec.misclassified:
        candidates = candidates[labels[candidates] != predictions[candidates]]
    if not candidates.size:
        raise ExplainError("no image matches explain.images (classes / misclassified); widen the selection")
    return candidates[:count]


@dataclasses.dataclass
class Inputs:
    """A model and the images to explain: a run's split, or photo files."""

    model: Any
    preprocess: Any
    images: np.ndarray          # float32 NHWC in [0, 1]
    labels: np.ndarray          # -1 where unknown (photos)
    probs: np.ndarray
    indices: np.ndarray
    class_names: tuple
    run_dir: Path
    step: int | None
    title: str


def split_inputs(cfg: DictConfig) -> Inputs:
    """Images of the run's data set split, chosen by explain.images."""
    e = cfg.explain
    run = open_run(cfg.run_dir, cfg.checkpoint)
    split = getattr(run.dataset, e.images.split, None)
    if split is None:
        raise ExplainError(f"explain.images.split must be train, val or test, got '{e.images.split}'")
    all_probs = np.asarray(jax.nn.softmax(Probe(run.model, (), run.preprocess).logits(split.images, batch_size=1000)))
    indices = select_images(split.labels, all_probs.argmax(-1), e.images)
    return Inputs(run.model, run.preprocess, np.asarray(check_images(split.images[indices])), split.labels[indices],
                  all_probs[indices], indices, tuple(run.dataset.class_names), run.run_dir, run.step,
                  f"Explanations of {run.cfg.model.name} on {run.dataset.name} ({run.run_dir.name}, step {run.step})")


def photo_inputs(cfg: DictConfig) -> Inputs:
    """Image files (explain.images.paths: folders, files, globs) fitted to any model artifact's input."""
    from jaxdl.artifacts import load_model
    from jaxdl.data.photos import find_images, read_photos

    e = cfg.explain
    if e.target == "label":
        raise ExplainError("photos have no labels: use explain.target=predicted with explain.images.paths")
    loaded = load_model(cfg.run_dir, cfg.checkpoint)
    paths = find_images(list(e.images.paths) if not isinstance(e.images.paths, str) else e.images.paths)
    pixels = read_photos(paths, loaded.preprocess, loaded.spec.channels)
    probs = np.asarray(jax.nn.softmax(Probe(loaded.model, (), loaded.preprocess).logits(pixels, batch_size=16)))
    log.info("photos: %s", ", ".join(p.name for p in paths))
    return Inputs(loaded.model, loaded.preprocess, np.asarray(check_images(pixels)), np.full(len(paths), -1), probs,
                  np.arange(len(paths)), tuple(loaded.class_names), loaded.path, loaded.step,
                  f"Explanations of {loaded.card.model.get('name')} ({loaded.path.name}) on "
                  f"{', '.join(p.name for p in paths)}")


def _timed(fn, *args) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = np.asarray(jax.block_until_ready(fn(*args)))
    return out, time.perf_counter() - start


def _faithfulness(faith: Faithfulness, images, maps: np.ndarray, targets, seed: int) -> dict[str, float]:
    scores = {**faith.deletion_insertion(images, maps, targets), **faith.road(images, maps, targets, key=seed)}
    return {k: float(np.mean(v)) for k, v in scores.items() if not k.endswith("_curve")}


def explain(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Everything the app does; returns the metrics it wrote to `metrics.json`."""
    out_dir = Path(out_dir)
    (out_dir / "maps").mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    e = cfg.explain
    if e.target not in ("predicted", "label"):
        raise ExplainError(f"explain.target must be 'predicted' or 'label', got '{e.target}'")
    run = photo_inputs(cfg) if e.images.get("paths") else split_inputs(cfg)
    images, labels, probs, indices = run.images, run.labels, run.probs, run.indices
    targets = probs.argmax(-1) if e.target == "predicted" else labels
    probe = Probe(run.model, (), run.preprocess)
    layer = e.target_layer or default_target_layer(run.model, run.preprocess, images)
    log.info("explaining %d images of %s (layer %s) with %s", len(indices), run.run_dir, layer, list(e.methods))

    maps, timings, explainers, lime_result = {}, {}, {}, None
    for name in e.methods:
        options = dict(e.options.get(name) or {})
        if name == "lime":
            options["seed"] = int(e.seed)
        if e.get("token_prefix") is not None and name in LAYERED:  # ViT: drop the class token, tokens to a grid
            options["reshape"] = token_grid(int(e.token_prefix))
        explainers[name] = build_method(name, run.model, run.preprocess, options, layer)
        maps[name], timings[name] = _timed(explainers[name], images, targets)
        lime_result = explainers[name].result if name == "lime" else lime_result
        np.save(out_dir / "maps" / f"{name}.npy", maps[name])
    np.save(out_dir / "images.npy", images)

    metrics: dict[str, dict[str, float]] = {}
    sanity: dict[str, dict[str, list]] = {}
    if e.metrics.faithfulness:
        faith = Faithfulness(probe, steps=int(e.metrics.steps))
        baselines = {"random": random_baseline(images.shape[:3], int(e.seed)), "sobel": sobel_baseline(images)}
        for name, saliency in {**maps, **baselines}.items():
            metrics[name] = _faithfulness(faith, images, saliency, targets, int(e.seed))
    if e.metrics.sanity:
        few = slice(0, int(e.metrics.sanity_images))
        for name, explainer in explainers.items():
            sanity[name] = randomisation_test(explainer, explainer.probe, images[few], targets[few], key=int(e.seed))
            metrics.setdefault(name, {})["sanity_spearman_final"] = sanity[name]["spearman"][-1]

    lime_top = lime_r2 = stability = None
    if lime_result is not None:
        top = lime_result.top_features(5)
        lime_top = np.stack([np.isin(seg, t) for seg, t in zip(lime_result.segments, top)])
        lime_r2 = lime_result.r2
        metrics.setdefault("lime", {})["lime_r2"] = float(np.mean(lime_r2))
        seeds = tuple(e.metrics.lime_stability_seeds or ())
        if len(seeds) >= 2:
            stability = lime_stability(explainers["lime"].lime, images, targets, seeds)[1]
            metrics["lime"]["lime_top5_agreement"] = float(np.mean(stability))

    summary = {"run_dir": str(run.run_dir), "checkpoint_step": run.step, "indices": indices.tolist(),
               "target_layer": layer, "seed": int(e.seed), "metrics": metrics, "sanity": sanity, "seconds": timings}
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    report = ReportData(
        title=run.title, images=images, indices=indices.tolist(), labels=labels, predictions=probs.argmax(-1),
        confidences=probs.max(-1), targets=np.asarray(targets), class_names=list(run.class_names), maps=maps,
        metrics=metrics, sanity=sanity,
        lime_top=lime_top, lime_r2=lime_r2, lime_stability=stability, timings=timings,
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True))
    path = write_report(report, out_dir / "report.html")
    log.info("report %s", path)
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="explain_app")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    report_user_errors(explain)(cfg, HydraConfig.get().runtime.output_dir)


@report_user_errors
def main() -> None:
    check_group_overrides(sys.argv[1:])
    if not any(arg.startswith("run_dir=") for arg in sys.argv[1:]):
        raise ExplainError("say which trained run to explain: jaxdl-explain run_dir=PATH (a jaxdl-train run directory)")
    _hydra_main()


if __name__ == "__main__":
    main()
