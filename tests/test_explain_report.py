import os
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from tests.browser import headless_chromium
from xai.explain.report import COLUMNS, ReportData, best_per_column, colour_limits, render, write_report
from xai.explain.report_figures import SIGNED_CMAP, limits, overlay


def _report(scale: str = "per_method") -> ReportData:
    """Three 12x12 images; Grad-CAM's second map is empty (all zero), LIME's maps are signed."""
    rng = np.random.default_rng(0)
    gradcam = rng.random((3, 12, 12))
    gradcam[1] = 0.0
    lime = rng.normal(size=(3, 12, 12))
    metrics = {
        "gradcam": {
            "deletion_auc": 0.21,
            "insertion_auc": 0.80,
            "road_morf": 0.35,
            "road_lerf": 0.83,
            "road_gap": 0.48,
            "images_used": 2,
            "images_total": 3,
            "empty_maps": 1,
            "sanity_spearman_final": -0.04,
        },
        "lime": {
            "deletion_auc": 0.18,
            "insertion_auc": 0.93,
            "road_morf": 0.23,
            "road_lerf": 0.93,
            "road_gap": 0.70,
            "images_used": 3,
            "images_total": 3,
            "empty_maps": 0,
            "sanity_spearman_final": 0.44,
            "lime_r2": 0.57,
        },
        "random": {
            "deletion_auc": 0.48,
            "insertion_auc": 0.75,
            "road_morf": 0.75,
            "road_lerf": 0.79,
            "road_gap": 0.04,
            "images_used": 3,
            "images_total": 3,
            "empty_maps": 0,
        },
        "sobel": {
            "deletion_auc": 0.36,
            "insertion_auc": 0.85,
            "road_morf": 0.43,
            "road_lerf": 0.83,
            "road_gap": 0.40,
            "images_used": 3,
            "images_total": 3,
            "empty_maps": 0,
        },
    }
    sanity = {
        "gradcam": {
            "layers": ["trained", "head", "conv1"],
            "spearman": [1.0, 0.4, float("nan")],
            "ssim": [1.0, 0.3, 0.1],
            "empty": [1, 1, 3],
            "images_used": 2,
            "images_total": 3,
        }
    }
    return ReportData(
        title="Explanations of a test model",
        images=rng.random((3, 12, 12, 1)),
        indices=[4, 7, 9],
        labels=np.array([0, 1, 2]),
        predictions=np.array([0, 1, 1]),
        confidences=np.array([0.9, 0.8, 0.6]),
        targets=np.array([0, 1, 1]),
        class_names=["zero", "one", "two"],
        maps={"gradcam": gradcam, "lime": lime},
        metrics=metrics,
        sanity=sanity,
        header={
            "target layer": "features (resolved: explain.target_layer was null)",
            "images": "3",
            "split": "test",
            "checkpoint": "step 3374 (best)",
        },
        command="jaxdl-explain run_dir=/tmp/run checkpoint=3374 explain.target_layer=features",
        scale=scale,
        notes=["33% of Grad-CAM maps at layer 'features' are empty"],
    )


def test_table_has_fixed_readable_columns_blank_cells_best_marks_and_baselines_apart():
    page = render(_report())
    table = page[page.index("<table class='metrics'>") : page.index("</table>")]
    titles = [t for _, t, _ in COLUMNS if t in table]
    empty = ("LIME top-5 agreement across seeds", "IG completeness gap (largest, relative)")  # columns without values
    assert titles == [t for _, t, _ in COLUMNS if t not in empty]
    assert [table.index(t) for t in titles] == sorted(table.index(t) for t in titles)
    assert "↓ better" in table and "↑ better" in table and "nan" not in table.lower()
    assert "<td></td>" in table  # Grad-CAM has no LIME R²
    methods, baselines = table.split("<tbody class='baselines'>")
    assert "random map" in baselines and "Sobel edge map" in baselines and "random map" not in methods
    assert "2 / 3, 1 empty" in methods
    best = best_per_column(_report().metrics, ("random", "sobel"))
    assert best == {
        "deletion_auc": "lime",
        "insertion_auc": "lime",
        "road_morf": "lime",
        "road_lerf": "lime",
        "road_gap": "lime",
        "sanity_spearman_final": "gradcam",
    }  # closest to 0; random's 0.04 gap never wins
    assert table.count("★") == 6


def test_header_command_notes_and_empty_maps_are_shown():
    page = render(_report())
    for text in (
        "features (resolved: explain.target_layer was null)",
        "step 3374 (best)",
        "split",
        "jaxdl-explain run_dir=/tmp/run checkpoint=3374 explain.target_layer=features",
        "33% of Grad-CAM maps at layer",
        "empty: no positive evidence at this layer",
    ):
        assert text in page
    assert page.count("<figcaption>empty: no positive evidence at this layer") == 1
    assert page.count("class='bar'") == 2  # one colour bar per method


def test_signed_maps_are_centred_at_zero_and_per_method_scales_compare_across_images():
    image = np.full((4, 4, 1), 0.5)
    zero = overlay(image, np.zeros((4, 4)), *limits(np.array([-2.0, 1.0]), True), signed=True)
    np.testing.assert_allclose(zero[0, 0], 0.4 * 0.5 + 0.6 * np.array(plt.get_cmap(SIGNED_CMAP)(0.5)[:3]))
    assert limits(np.array([-2.0, 1.0]), True) == (-2.0, 2.0) and limits(np.array([0.0, 3.0]), False) == (0.0, 3.0)
    maps = np.stack([np.full((2, 2), 0.5), np.full((2, 2), 2.0)])
    assert colour_limits(maps, False, "per_method") == [(0.0, 2.0), (0.0, 2.0)]  # the same value, the same colour
    assert colour_limits(maps, False, "per_image") == [(0.0, 0.5), (0.0, 2.0)]
    assert "One colour scale per method" in render(_report("per_method"))
    assert "Each map on its own colour scale" in render(_report("per_image"))
    with pytest.raises(ValueError, match="scale must be one of"):
        render(_report("per_pixel"))


def test_report_renders_in_headless_chromium_without_console_errors(tmp_path):
    """The page loads in a real browser with no console error and every inline image decodes.

    Set JAXDL_REPORT_SCREENSHOT=path.png to keep the screenshot for a look. Needs Debian's chromium and
    chromium-driver and selenium (.ci/run installs them: missing in CI fails, locally it skips)."""
    path = write_report(_report(), tmp_path / "report.html")
    driver = headless_chromium(1400, 2000)
    try:
        driver.get(path.as_uri())
        images = driver.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        screenshot = os.environ.get("JAXDL_REPORT_SCREENSHOT", str(tmp_path / "report.png"))
        driver.set_window_size(1400, driver.execute_script("return document.body.scrollHeight") + 100)
        assert driver.save_screenshot(screenshot)
    finally:
        driver.quit()
    assert errors == []
    assert len(images) == 3 * 3 + 2 + 1 and all(done and width > 0 for done, width in images)
    assert re.match(rb"\x89PNG", Path(screenshot).read_bytes()[:4])
