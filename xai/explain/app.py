"""`jaxdl-explain`: explain a trained run and write a self-contained report.

    jaxdl-explain run_dir=runs/digits-lenet5/<date>
    jaxdl-explain run_dir=PATH explain.methods=[gradcam,lime,shap] explain.images.misclassified=true

The app's own run directory (default `<run_dir>/explain/<date>/`) gets `report.html`,
`maps/<method>.npy` (B, H, W), `images.npy`, `metrics.json` and the resolved `config.yaml`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from jaxdl import logs, tracking, watchdog
from jaxdl.apps import hydra_app, require_path
from jaxdl.runs import TrainedRun, load_run
from xai.explain.inputs import ExplainError, check_images
from xai.explain import compare
from xai.explain.lime import lime_stability
from xai.explain.cam import token_grid
from xai.explain.methods import LAYERED, SEEDED, SIGNED, build_method, default_target_layer, suggest_layer
from xai.explain.metrics import Faithfulness, empty_maps, mean_over_nonempty, random_baseline, sobel_baseline
from xai.explain.probe import Probe
from xai.explain.report import ReportData, title, write_report
from xai.explain.report_figures import SCALES
from xai.explain.reproduce import reproduce_command
from xai.explain.sanity import randomisation_test

log = logging.getLogger("jaxdl.explain")


SPLITS = ("train", "val", "test")
PROBE_BATCH = 1000  # images per forward pass when predicting a whole split
# A method is one compiled computation (LIME's samples, occlusion's copies: a scan inside one jit) that reports
# progress only as it ends: the stall watchdog allows each at least this long (or 4x trainer.stall_timeout_s).
METHOD_MIN_S = 3600.0


def which_checkpoint(cfg: DictConfig) -> str | int:
    """`which`, or the earlier key `checkpoint` when a command still uses it."""
    if cfg.get("checkpoint") is not None:
        log.warning(
            "checkpoint=%s is the earlier name of which=; it still works, but write which=%s", cfg.checkpoint, cfg.checkpoint
        )
        with open_dict(cfg):
            cfg.which = cfg.checkpoint
    return cfg.which


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
    images: np.ndarray  # float32 NHWC in [0, 1]
    labels: np.ndarray  # -1 where unknown (photos)
    probs: np.ndarray
    indices: np.ndarray
    class_names: tuple
    run_dir: Path
    step: int | None
    title: str
    model_name: str
    data_name: str
    source: str  # the split's name, or "photos"


def split_inputs(cfg: DictConfig) -> Inputs:
    """Images of the run's data set split, chosen by explain.images."""
    e = cfg.explain
    if e.images.split not in SPLITS:
        raise ExplainError(f"explain.images.split must be train, val or test, got '{e.images.split}'")
    run = open_run(cfg.run_dir, which_checkpoint(cfg))
    if run.loaded.cfg is None:
        raise ExplainError(
            f"{run.run_dir} holds a model without a data set (an imported or exported network): "
            "explain image files with explain.images.paths=PATH (a folder, files or globs)"
        )
    split = getattr(run.dataset, e.images.split)
    probe = Probe(run.model, (), run.preprocess)
    all_probs = np.asarray(jax.nn.softmax(probe.logits(split.images, batch_size=PROBE_BATCH)))
    indices = select_images(split.labels, all_probs.argmax(-1), e.images)
    return Inputs(
        run.model,
        run.preprocess,
        np.asarray(check_images(split.images[indices])),
        split.labels[indices],
        all_probs[indices],
        indices,
        tuple(run.dataset.class_names),
        run.run_dir,
        run.step,
        f"Explanations of {run.cfg.model.name} on {run.dataset.name} ({run.run_dir.name}, step {run.step})",
        str(run.cfg.model.name),
        str(run.dataset.name),
        str(e.images.split),
    )


def photo_inputs(cfg: DictConfig) -> Inputs:
    """Image files (explain.images.paths: folders, files, globs) fitted to any model artifact's input."""
    from jaxdl.artifacts import load_model
    from jaxdl.data.photos import find_images, read_photos

    e = cfg.explain
    if e.target == "label":
        raise ExplainError("photos have no labels: use explain.target=predicted with explain.images.paths")
    loaded = load_model(cfg.run_dir, which_checkpoint(cfg))
    paths = find_images(list(e.images.paths) if not isinstance(e.images.paths, str) else e.images.paths)
    pixels = read_photos(paths, loaded.preprocess, loaded.spec.channels)
    probs = np.asarray(jax.nn.softmax(Probe(loaded.model, (), loaded.preprocess).logits(pixels, batch_size=16)))
    log.info("photos: %s", ", ".join(p.name for p in paths))
    return Inputs(
        loaded.model,
        loaded.preprocess,
        np.asarray(check_images(pixels)),
        np.full(len(paths), -1),
        probs,
        np.arange(len(paths)),
        tuple(loaded.class_names),
        loaded.path,
        loaded.step,
        f"Explanations of {loaded.card.model.get('name')} ({loaded.path.name}) on {', '.join(p.name for p in paths)}",
        str(loaded.card.model.get("name")),
        str(loaded.provenance.get("data", "photos")),
        "photos",
    )


def _timed(fn, *args) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = np.asarray(jax.block_until_ready(fn(*args)))
    return out, time.perf_counter() - start


def _faithfulness(faith: Faithfulness, images, maps: np.ndarray, targets, seed: int) -> dict[str, float]:
    """Mean scores over the non-empty maps (an empty map's "ranking" is raster order), with the counts."""
    scores = {**faith.deletion_insertion(images, maps, targets), **faith.road(images, maps, targets, key=seed)}
    empty = empty_maps(maps)
    return {**mean_over_nonempty(scores, empty), "empty_maps": int(empty.sum())}


def _layer_notes(maps: dict[str, np.ndarray], model, preprocess, options: dict, images, targets, layer) -> list[str]:
    """A note per layered method whose maps are empty more than 10% of the time, naming a better layer if one exists."""
    notes = []
    for name in [m for m in maps if m in LAYERED]:
        fraction = float(empty_maps(maps[name]).mean())
        if fraction <= 0.1 or not isinstance(layer, str):
            continue
        note = f"{fraction:.0%} of {title(name)} maps at layer '{layer}' are empty (no positive evidence at this layer)"
        better = suggest_layer(name, model, preprocess, options[name], images, targets, layer)
        if better is not None and better[1] < fraction:
            note += f"; layer '{better[0]}' leaves {better[1]:.0%} empty: explain.target_layer={better[0]}"
        notes.append(note)
    return notes


def _json_safe(tree: Any) -> Any:
    """NaN (an undefined mean) as JSON null."""
    if isinstance(tree, dict):
        return {k: _json_safe(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_json_safe(v) for v in tree]
    return None if isinstance(tree, float) and not np.isfinite(tree) else tree


def _no_report(out_dir: Path, cause: str) -> str:
    """A stalled explain call leaves nothing that could pass for a finished report."""
    for name in ("report.html", "metrics.json"):
        (out_dir / name).unlink(missing_ok=True)
    return f"no report was written (the maps finished so far are in {out_dir / 'maps'}); run the same command again"


def _compare(original, run: Inputs, e: DictConfig, options: dict, layer, images, targets, maps) -> dict[str, Any]:
    """A compressed checkpoint's maps beside its float original's (same methods, options, layer, images, classes)."""
    log.info("explaining the float original %s beside the compressed model", original.path)
    build = lambda name, model, preprocess: build_method(name, model, preprocess, options[name], layer)
    models = {"float": (original.model, original.preprocess), "compressed": (run.model, run.preprocess)}
    steps = int(e.metrics.steps)
    return compare.compare_models(models, list(e.methods), build, images, targets, steps=steps, maps={"compressed": maps})


def explain(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Everything the app does, under the stall watchdog (trainer.stall_timeout_s, as in training: an explain
    batch without progress ends the call in one line); returns the metrics it wrote to `metrics.json`."""
    out_dir = Path(out_dir)
    stall_timeout_s = watchdog.check_timeout((cfg.get("trainer") or {}).get("stall_timeout_s"))
    (out_dir / "maps").mkdir(parents=True, exist_ok=True)
    log_file = logs.write_to(out_dir)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    on_stall = functools.partial(_no_report, out_dir)
    watchdog.watch(
        stall_timeout_s, log_file, on_stall, what="explain call", unit="batch", units="batch(es)", first_min_s=METHOD_MIN_S
    )
    try:
        return _explain(cfg, out_dir)
    finally:
        watchdog.stop()


def _explain(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    e = cfg.explain
    if e.target not in ("predicted", "label"):
        raise ExplainError(f"explain.target must be 'predicted' or 'label', got '{e.target}'")
    if str(e.images.count) == "all":  # the whole split, streamed in batches to on-disk maps, resumable
        from xai.explain.whole_set import explain_whole_split

        return explain_whole_split(cfg, out_dir, open_run(cfg.run_dir, which_checkpoint(cfg)))
    if not str(e.images.count).isdigit():
        raise ExplainError(f"explain.images.count must be a number of images or all, got '{e.images.count}'")
    run = photo_inputs(cfg) if e.images.get("paths") else split_inputs(cfg)
    images, labels, probs, indices = run.images, run.labels, run.probs, run.indices
    targets = probs.argmax(-1) if e.target == "predicted" else labels
    probe = Probe(run.model, (), run.preprocess)
    layer = e.target_layer or default_target_layer(run.model, run.preprocess, images)
    scale = (e.get("report") or {}).get("scale", "per_method")
    if scale not in SCALES:
        raise ExplainError(f"explain.report.scale must be one of {', '.join(SCALES)}, got '{scale}'")
    log.info("explaining %d %s images of %s (layer %s) with %s", len(indices), run.source, run.run_dir, layer, list(e.methods))

    maps, timings, explainers, lime_result, all_options = {}, {}, {}, None, {}
    for name in e.methods:
        options = all_options[name] = dict(e.options.get(name) or {})
        if name in SEEDED:
            options["seed"] = int(e.seed)
        if e.get("token_prefix") is not None and name in LAYERED:  # ViT: drop the class token, tokens to a grid
            options["reshape"] = token_grid(int(e.token_prefix))
        watchdog.long_phase()  # each method compiles its own functions
        explainers[name] = build_method(name, run.model, run.preprocess, options, layer)
        maps[name], timings[name] = _timed(explainers[name], images, targets)
        lime_result = explainers[name].result if name == "lime" else lime_result
        np.save(out_dir / "maps" / f"{name}.npy", maps[name])
        if getattr(explainers[name], "raw", None) is not None:  # gradient methods: the signed (N, H, W, C) attribution
            np.save(out_dir / "maps" / f"{name}_raw.npy", explainers[name].raw)
        watchdog.beat()  # a method done
    np.save(out_dir / "images.npy", images)
    completeness = {n: x.completeness for n, x in explainers.items() if getattr(x, "completeness", None)}

    metrics: dict[str, dict[str, float]] = {}
    sanity: dict[str, dict[str, list]] = {}
    if e.metrics.faithfulness:
        watchdog.long_phase()
        faith = Faithfulness(probe, steps=int(e.metrics.steps))
        baselines = {"random": random_baseline(images.shape[:3], int(e.seed)), "sobel": sobel_baseline(images)}
        for name, saliency in {**maps, **baselines}.items():
            metrics[name] = _faithfulness(faith, images, saliency, targets, int(e.seed))
    if e.metrics.sanity:
        few = slice(0, int(e.metrics.sanity_images))
        for name, explainer in explainers.items():
            watchdog.long_phase()  # the randomised copies compile afresh
            cascade = bool(e.metrics.get("sanity_cascade", True))
            sanity[name] = randomisation_test(explainer, explainer.probe, images[few], targets[few], int(e.seed), cascade)
            metrics.setdefault(name, {})["sanity_spearman_final"] = sanity[name]["spearman"][-1]  # NaN: every map empty
    for name, check in completeness.items():  # Integrated Gradients: sum of attributions vs f(x) - f(baseline)
        metrics.setdefault(name, {})["completeness_gap_max"] = float(max(check["relative_gap"]))

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

    original = compare.float_original(run.run_dir) if e.get("compare", True) else None
    comparison = None if original is None else _compare(original, run, e, all_options, layer, images, targets, maps)

    summary = {
        "compared_with_float": comparison,
        "run_dir": str(run.run_dir),
        "checkpoint_step": run.step,
        "indices": indices.tolist(),
        "target_layer": layer,
        "seed": int(e.seed),
        "metrics": metrics,
        "sanity": sanity,
        "seconds": timings,
        "completeness": completeness,
    }
    (out_dir / "metrics.json").write_text(json.dumps(_json_safe(summary), indent=2))
    header = {
        "model": run.model_name,
        "data": run.data_name,
        "split": run.source,
        "images": f"{len(indices)} (indices {', '.join(map(str, indices.tolist()))})",
        "target layer": f"{layer}" + ("" if e.target_layer else " (resolved: explain.target_layer was null)"),
        "checkpoint": f"step {run.step} ({cfg.which}) of {run.run_dir}",
        "explained class": e.target,
    }
    report = ReportData(
        title=run.title,
        images=images,
        indices=indices.tolist(),
        labels=labels,
        predictions=probs.argmax(-1),
        confidences=probs.max(-1),
        targets=np.asarray(targets),
        class_names=list(run.class_names),
        maps=maps,
        metrics=metrics,
        sanity=sanity,
        lime_top=lime_top,
        lime_r2=lime_r2,
        lime_stability=stability,
        timings=timings,
        header=header,
        command=reproduce_command(cfg, layer, run.step),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        signed=frozenset(SIGNED),
        scale=scale,
        notes=_layer_notes(maps, run.model, run.preprocess, all_options, images, targets, layer)
        + (compare.notes(comparison) if comparison else []),
        sections=[compare.html_section(comparison)] if comparison else [],
    )
    path = write_report(report, out_dir / "report.html")
    log.info("report %s", path)
    tracking.attach_to_run(run.run_dir, {"explain/report.html": path})  # beside the training run's MLflow record
    return summary


USAGE = "jaxdl-explain run_dir=PATH (a jaxdl-train run directory, or any model jaxdl.load_model reads)"
main = hydra_app("explain_app", explain, check=lambda argv: require_path(argv, "run_dir", USAGE))


if __name__ == "__main__":
    main()
