"""`explain.images.count=all`: a whole split explained in fixed-size batches, maps written to disk, resumable.

Every batch (padded to `explain.images.batch_size`, a multiple of the explain mesh's device count, so one
compiled program serves them all) goes through each method's explainer, whose probe splits it over the
devices `xai.explain.probe.explain_mesh` chooses (every GPU; on a CPU what the reliability rule allows).
Maps, images and each image's faithfulness scores go into `.npy` files opened as memory maps, so a split of
any size costs one batch of RAM. After a batch is flushed, `progress.json` records it: a killed explain re-run
into the same directory (`hydra.run.dir=<that directory>`) continues at the next unfinished batch, and since a
batch's results depend only on its images and the seed, its maps equal an uninterrupted run's.
The run ends with the faithfulness means over the whole split, the sanity check on its first images, and a
report with the table and the first images.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from jaxdl.runs import TrainedRun
from xai.explain.inputs import ExplainError, check_images
from xai.explain.methods import SEEDED, SIGNED, build_method, default_target_layer
from xai.explain.metrics import Faithfulness, empty_maps, random_baseline, sobel_baseline
from xai.explain.probe import Probe, explain_mesh
from xai.explain.report import ReportData, write_report
from xai.explain.sanity import randomisation_test

log = logging.getLogger("jaxdl.explain")

SCORES = ("deletion_auc", "insertion_auc", "road_morf", "road_lerf", "road_gap")
REPORT_IMAGES = 8  # the report shows the table over the whole split and this many images


def _open(path: Path, shape: tuple[int, ...], dtype: Any, resume: bool) -> np.memmap:
    return np.lib.format.open_memmap(path, mode="r+" if resume else "w+", dtype=dtype, shape=shape)


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _options(e: DictConfig, name: str) -> dict:
    options = dict(e.options.get(name) or {})
    if name in SEEDED:
        options["seed"] = int(e.seed)
    return options


def explain_whole_split(cfg: DictConfig, out_dir: Path, run: TrainedRun) -> dict[str, Any]:
    """Explain every image of the split; returns the summary also written to `metrics.json`."""
    e = cfg.explain
    if e.images.split not in ("train", "val", "test"):
        raise ExplainError(f"explain.images.split must be train, val or test, got '{e.images.split}'")
    if run.loaded.cfg is None:
        raise ExplainError(f"{run.run_dir} holds a model without a data set: explain.images.count=all needs a run's split")
    split = getattr(run.dataset, e.images.split)
    total = len(split.labels)
    devices = explain_mesh().devices.size
    batch = -(-max(1, min(int(e.images.batch_size), total)) // devices) * devices
    probe = Probe(run.model, (), run.preprocess)
    first = check_images(split.images[:1])
    layer = e.target_layer or default_target_layer(run.model, run.preprocess, first)
    explainers = {name: build_method(name, run.model, run.preprocess, _options(e, name), layer) for name in e.methods}
    names = [*explainers, "random", "sobel"] if e.metrics.faithfulness else list(explainers)
    faith = Faithfulness(probe, steps=int(e.metrics.steps))

    plan = {"split": str(e.images.split), "images": total, "batch_size": batch, "methods": list(e.methods)}
    plan |= {"seed": int(e.seed), "target": str(e.target), "target_layer": layer, "checkpoint_step": run.step}
    progress_path = out_dir / "progress.json"
    previous = json.loads(progress_path.read_text()) if progress_path.is_file() else None
    resume = previous is not None and previous["plan"] == plan
    if previous is not None and not resume:
        raise ExplainError(f"{out_dir} holds a different explanation ({previous['plan']}); use a new hydra.run.dir")
    done = previous["batches_done"] if resume else 0
    batches = -(-total // batch)
    shape = tuple(split.images.shape[1:])
    images_out = _open(out_dir / "images.npy", (total, *shape), np.float32, resume)
    targets_out = _open(out_dir / "targets.npy", (total,), np.int32, resume)
    maps_out = {n: _open(out_dir / "maps" / f"{n}.npy", (total, *shape[:2]), np.float32, resume) for n in explainers}
    (out_dir / "scores").mkdir(exist_ok=True)
    # per image: the faithfulness scores, whether the map is empty, IG's relative completeness gap (NaN: none)
    scores_out = {n: _open(out_dir / "scores" / f"{n}.npy", (total, len(SCORES) + 2), np.float32, resume) for n in names}
    if resume:
        log.info("resuming %s at batch %d of %d", out_dir, done + 1, batches)
    else:
        _write_json(progress_path, {"plan": plan, "batches_done": 0})
        log.info("explaining all %d %s images in %d batches of %d (%d device(s))", total, e.images.split, batches, batch, devices)

    seconds = dict.fromkeys(explainers, 0.0)
    bar = tqdm(range(done, batches), initial=done, total=batches, unit="batch", desc="explain", disable=None)
    for b in bar:
        lo, hi = b * batch, min(total, (b + 1) * batch)
        padded = np.concatenate([split.images[lo:hi], np.repeat(split.images[lo : lo + 1], batch - (hi - lo), axis=0)])
        images = check_images(padded)
        labels = np.concatenate([split.labels[lo:hi], np.repeat(split.labels[lo : lo + 1], batch - (hi - lo))])
        targets = np.asarray(probe.logits(images).argmax(-1)) if e.target == "predicted" else labels.astype(np.int32)
        maps = {}
        for name, explainer in explainers.items():
            start = time.perf_counter()
            maps[name] = np.asarray(jax.block_until_ready(explainer(images, targets)))
            seconds[name] += time.perf_counter() - start
            check = getattr(explainer, "completeness", None)
            scores_out[name][lo:hi, -1] = np.asarray(check["relative_gap"])[: hi - lo] if check else np.nan
            maps_out[name][lo:hi] = maps[name][: hi - lo]
        if e.metrics.faithfulness:
            maps |= {"random": random_baseline(images.shape[:3], int(e.seed) + b), "sobel": sobel_baseline(images)}
            for name in names:
                result = {
                    **faith.deletion_insertion(images, maps[name], targets),
                    **faith.road(images, maps[name], targets, int(e.seed)),
                }
                scores_out[name][lo:hi, : len(SCORES)] = np.stack([result[k] for k in SCORES], 1)[: hi - lo]
                scores_out[name][lo:hi, len(SCORES)] = empty_maps(maps[name])[: hi - lo]
        images_out[lo:hi] = np.asarray(images)[: hi - lo]
        targets_out[lo:hi] = targets[: hi - lo]
        for array in (images_out, targets_out, *maps_out.values(), *scores_out.values()):
            array.flush()
        _write_json(progress_path, {"plan": plan, "batches_done": b + 1})
    bar.close()
    return _finish(cfg, out_dir, run, explainers, names, scores_out, images_out, targets_out, maps_out, seconds, layer)


def _summary_metrics(scores: np.ndarray) -> dict[str, float]:
    """Means over the images whose map is not empty, as the batch app reports them."""
    empty = scores[:, len(SCORES)] > 0
    used = ~empty
    means = {k: float(scores[used, i].mean()) if used.any() else float("nan") for i, k in enumerate(SCORES)}
    gaps = scores[:, -1]
    if np.isfinite(gaps).any():
        means["completeness_gap_max"] = float(np.nanmax(gaps))
    return {**means, "images_used": int(used.sum()), "images_total": len(scores), "empty_maps": int(empty.sum())}


def _finish(cfg, out_dir, run, explainers, names, scores_out, images_out, targets_out, maps_out, seconds, layer) -> dict:
    from xai.explain.app import _json_safe
    from xai.explain.reproduce import reproduce_command

    e = cfg.explain
    metrics = {name: _summary_metrics(np.asarray(scores_out[name])) for name in names} if e.metrics.faithfulness else {}
    sanity = {}
    if e.metrics.sanity:
        few = slice(0, int(e.metrics.sanity_images))
        for name, explainer in explainers.items():
            images, targets = np.asarray(images_out[few]), np.asarray(targets_out[few])
            sanity[name] = randomisation_test(explainer, explainer.probe, images, targets, key=int(e.seed))
            metrics.setdefault(name, {})["sanity_spearman_final"] = sanity[name]["spearman"][-1]
    total = len(targets_out)
    summary = {
        "run_dir": str(run.run_dir),
        "checkpoint_step": run.step,
        "images": total,
        "target_layer": layer,
        "seed": int(e.seed),
        "metrics": metrics,
        "sanity": sanity,
        "seconds": seconds,
    }
    (out_dir / "metrics.json").write_text(json.dumps(_json_safe(summary), indent=2))
    shown = min(REPORT_IMAGES, total)
    split = getattr(run.dataset, e.images.split)
    probs = np.asarray(jax.nn.softmax(Probe(run.model, (), run.preprocess).logits(images_out[:shown])))
    report = ReportData(
        title=f"Explanations of {run.cfg.model.name} on all {total} {e.images.split} images of {run.dataset.name}",
        images=np.asarray(images_out[:shown]),
        indices=list(range(shown)),
        labels=split.labels[:shown],
        predictions=probs.argmax(-1),
        confidences=probs.max(-1),
        targets=np.asarray(targets_out[:shown]),
        class_names=list(run.dataset.class_names),
        maps={n: np.asarray(m[:shown]) for n, m in maps_out.items()},
        metrics=metrics,
        sanity=sanity,
        timings=seconds,
        header={
            "model": str(run.cfg.model.name),
            "data": str(run.dataset.name),
            "split": f"{e.images.split}: all {total} images (faithfulness over all; the first {shown} shown)",
            "target layer": str(layer),
            "checkpoint": f"step {run.step} ({cfg.which}) of {run.run_dir}",
            "explained class": str(e.target),
        },
        command=reproduce_command(cfg, layer, run.step),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        signed=frozenset(SIGNED),
    )
    log.info("report %s", write_report(report, out_dir / "report.html"))
    return summary
