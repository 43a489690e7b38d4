"""`trainer.live_plot` and the self-contained `summary.html`, checked in a headless Chromium."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from jaxdl import plots
from jaxdl.trainer import train_and_evaluate
from tests.browser import headless_chromium
from tests.conftest import compose_config, quick_overrides


def test_live_plot_redraws_every_epoch_and_summary_renders_in_headless_chromium(tmp_path, monkeypatch):
    drawn = []
    real = plots.learning_curves

    def recording(records, path):
        real(records, path)
        drawn.append(([r["epoch"] for r in records if "val/accuracy" in r], Path(path).stat().st_size))

    monkeypatch.setattr(plots, "learning_curves", recording)
    run_dir = tmp_path / "run"
    summary = train_and_evaluate(compose_config(*quick_overrides("trainer.live_plot=true")), run_dir)
    assert [epochs for epochs, _ in drawn] == [[1], [1, 2], [1, 2]]  # after each epoch, then the final one
    assert all(size > 0 for _, size in drawn)

    page = (run_dir / "summary.html").read_text()
    assert 'src="http' not in page and "<link" not in page and "<script" not in page  # self-contained
    results = json.loads((run_dir / "results.json").read_text())
    assert f"test accuracy {results['test/accuracy']:.4f}" in page
    for row in csv.DictReader((run_dir / "eval/per_class_accuracy.csv").read_text().splitlines()):
        assert f'<td>{row["class"]}</td><td class="num">{float(row["accuracy"]):.4f}</td>' in page
    assert "lenet5" in page and summary["test/accuracy"] == results["test/accuracy"]

    driver = headless_chromium(1200, 1600)
    try:
        driver.get((run_dir / "summary.html").as_uri())
        images = driver.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        headings = driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        screenshot = tmp_path / "summary.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    assert errors == []
    assert [alt for alt, _, _ in images] == ["Learning curves", "Confusion matrix", "Misclassified test images"]
    assert all(done and width > 0 for _, done, width in images)
    assert {"Per-class test accuracy", "Epochs and timings", "Config"} <= set(headings)
    assert re.match(rb"\x89PNG", screenshot.read_bytes()[:4])
