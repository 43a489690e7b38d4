"""Compressed vs float, side by side: does compression change what the model looks at?

Both models are explained by the same methods on the same images for the same target classes; per
method the table gives the Spearman rank correlation of the two maps of each image, the overlap of their
top `TOP_FRACTION` pixels, and each model's own faithfulness (deletion / insertion AUC of its maps on
itself). A method whose maps correlate below `FLAG_BELOW` on average is flagged: the compressed model
answers from other evidence, whatever its accuracy says.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from omegaconf import OmegaConf
from scipy.stats import rankdata

from jaxdl.artifacts import LoadedModel, load_model
from jaxdl.errors import CheckpointError
from xai.explain.inputs import ExplainError, check_images
from xai.explain.metrics import Faithfulness, empty_maps, mean_over_nonempty
from xai.explain.probe import Probe

log = logging.getLogger("jaxdl.explain")

TOP_FRACTION = 0.1
FLAG_BELOW = 0.5
Build = Callable[[str, Any, Any], Any]  # (method, model, preprocess) -> explainer


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B,) rank correlation of each pair of maps (ties share their mean rank); NaN where a map is constant."""
    ra = rankdata(np.asarray(a, np.float64).reshape(len(a), -1), axis=1)
    rb = rankdata(np.asarray(b, np.float64).reshape(len(b), -1), axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(1) / np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))


def top_overlap(a: np.ndarray, b: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """(B,) share of the top `fraction` pixels of map `a` that are also among the top of map `b`."""
    flat_a, flat_b = (np.asarray(m, np.float64).reshape(len(m), -1) for m in (a, b))
    k = max(1, int(round(fraction * flat_a.shape[1])))
    top_a, top_b = (np.argsort(-m, axis=1, kind="stable")[:, :k] for m in (flat_a, flat_b))
    return np.array([len(np.intersect1d(x, y)) / k for x, y in zip(top_a, top_b)])


def faithfulness(scorer: Faithfulness, images: np.ndarray, maps: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Mean deletion / insertion AUC of `maps` on the model that made them (`scorer`'s), over the non-empty maps."""
    scores = scorer.deletion_insertion(images, maps, targets)
    kept = {k: v for k, v in scores.items() if k.endswith("_auc")}
    return mean_over_nonempty(kept, empty_maps(maps))


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Spearman and top-pixel overlap of two sets of maps. Pairs where both maps are empty are left out;
    where only one is, the pair counts as no agreement (0): an empty map ranks nothing."""
    both, one = empty_maps(a) & empty_maps(b), empty_maps(a) ^ empty_maps(b)
    rho = np.where(one, 0.0, spearman(a, b))[~both]
    overlap = np.where(one, 0.0, top_overlap(a, b))[~both]
    mean = lambda v, f: float(f(v)) if v.size else float("nan")
    return {
        "spearman_mean": mean(rho, np.mean),
        "spearman_min": mean(rho, np.min),
        "top_overlap": mean(overlap, np.mean),
        "pairs_compared": int(rho.size),
        "flagged": bool(rho.size) and float(np.mean(rho)) < FLAG_BELOW,
    }


def compare_models(
    models: Mapping[str, tuple[Any, Any]],
    methods: Sequence[str],
    build: Build,
    images: np.ndarray,
    targets: np.ndarray,
    *,
    steps: int = 20,
    maps: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Per method: the two models' map agreement and faithfulness. `models` holds exactly two entries,
    float first: name -> (model, preprocess); `maps[model][method]` reuses maps already computed."""
    first, second = list(models)
    scorers = {name: Faithfulness(Probe(model, (), preprocess), steps=steps) for name, (model, preprocess) in models.items()}
    table = {}
    for method in methods:
        pair = {}
        for name, (model, preprocess) in models.items():
            given = (maps or {}).get(name, {}).get(method)
            pair[name] = np.asarray(given if given is not None else build(method, model, preprocess)(images, targets))
        table[method] = {
            **agreement(pair[first], pair[second]),
            "faithfulness": {name: faithfulness(scorers[name], images, pair[name], targets) for name in models},
        }
    return {"models": [first, second], "top_fraction": TOP_FRACTION, "flag_below": FLAG_BELOW, "methods": table}


def notes(comparison: Mapping[str, Any]) -> list[str]:
    """One warning per flagged method."""
    first, second = comparison["models"]
    return [
        f"{method}: the {second} model's maps correlate only {row['spearman_mean']:.2f} (Spearman, mean) with the "
        f"{first} model's (below {FLAG_BELOW}): compression changed what the model looks at"
        for method, row in comparison["methods"].items()
        if row["flagged"]
    ]


def _rows(comparison: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    first, second = comparison["models"]
    header = [
        "method",
        "Spearman (mean / min)",
        f"top-{comparison['top_fraction']:.0%} overlap",
        *(f"{kind} AUC {name}" for kind in ("deletion", "insertion") for name in (first, second)),
        "flag",
    ]
    rows = []
    for method, row in comparison["methods"].items():
        faith = row["faithfulness"]
        rows.append(
            [
                method,
                f"{row['spearman_mean']:.3f} / {row['spearman_min']:.3f} ({row['pairs_compared']} images)",
                f"{row['top_overlap']:.3f}",
                *(f"{faith[name][f'{kind}_auc']:.3f}" for kind in ("deletion", "insertion") for name in (first, second)),
                "FLAGGED" if row["flagged"] else "",
            ]
        )
    return header, rows


def markdown(comparison: Mapping[str, Any]) -> str:
    header, rows = _rows(comparison)
    lines = ["| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header), *rows]]
    return "\n".join(lines)


def html_section(comparison: Mapping[str, Any]) -> str:
    first, second = comparison["models"]
    header, rows = _rows(comparison)
    cells = lambda row, tag: "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row)
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return (
        f"<h2>{html.escape(second)} vs {html.escape(first)}, side by side</h2><p>Both models explained on the same images "
        f"for the same classes. Spearman: rank correlation of the two maps of each image; overlap: share of the top "
        f"{comparison['top_fraction']:.0%} pixels in common; deletion (↓) / insertion (↑) AUC: each model's maps on itself. "
        f"Flagged: mean Spearman below {comparison['flag_below']}. Images where both maps are empty are left out.</p>"
        f"<table><tr>{cells(header, 'th')}</tr>{body}</table>"
    )


def float_original(path: str | Path) -> LoadedModel | None:
    """The float model a compressed checkpoint came from (its recorded source run and step, else the `original/`
    that jaxdl-compress writes beside it); None if `path` is not a compressed checkpoint."""
    from xai.compress.storage import find_compressed, read_manifest

    directory = find_compressed(path)
    if directory is None or OmegaConf.load(directory / "recipe.yaml").get("name") == "original":
        return None  # not compressed, or jaxdl-compress's float baseline itself
    source = read_manifest(directory).get("source") or {}
    try:
        return load_model(source["run_dir"], source.get("step") if source.get("step") is not None else "best")
    except (KeyError, CheckpointError) as err:
        sibling = directory.parent / "original"
        if find_compressed(sibling) is None:
            raise ExplainError(
                f"{directory} is compressed, but its float original is gone ({err}) and {sibling} does not exist; "
                "pass explain.compare=false to explain the compressed model alone"
            ) from None
        log.info("float original: %s (the source run %s does not load)", sibling, source.get("run_dir"))
        return load_model(sibling)


def explain_compression(
    original: tuple[Any, Any], compressed: tuple[Any, Any], name: str, images: np.ndarray, methods: Sequence[str], steps: int
) -> dict[str, Any]:
    """`jaxdl-compress ... explain=true`: both models explained for the float model's predicted classes, each
    method with its default options and each model's default target layer."""
    from xai.explain.methods import build_method, default_target_layer

    images = np.asarray(check_images(images))
    targets = np.asarray(Probe(original[0], (), original[1]).logits(images)).argmax(-1)
    build = lambda method, model, preprocess: build_method(
        method, model, preprocess, {}, default_target_layer(model, preprocess, images)
    )
    return compare_models({"float": original, name: compressed}, methods, build, images, targets, steps=steps)


def add_to_compress_report(out_dir: Path, report: dict, comparison: Mapping[str, Any]) -> dict:
    """The side-by-side table in the compress report: `explanations` in report.json, a section in report.md."""
    report = {**report, "explanations": comparison}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    flagged = "".join(f"\n\n**Flagged** {note}." for note in notes(comparison))
    with open(out_dir / "report.md", "a") as f:
        f.write(
            f"\n## Explanations, float vs {comparison['models'][1]}\n\nBoth models explained on the same test images for "
            f"the float model's predicted classes. Spearman: rank correlation of the two maps of each image; overlap: "
            f"share of the top {comparison['top_fraction']:.0%} pixels in common; deletion (lower is better) / insertion "
            f"(higher is better) AUC: each model's maps on itself.\n\n{markdown(comparison)}{flagged}\n"
        )
    return report
