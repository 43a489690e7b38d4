"""A headless Chromium for tests that render HTML pages (Debian's chromium + chromium-driver, selenium)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def chromedriver() -> str | None:
    return shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).exists()), None
    )


def headless_chromium(width: int, height: int):
    """A selenium driver logging the browser console (missing in CI fails, locally it skips); quit it after use."""
    if chromedriver() is None:
        if os.environ.get("CI"):
            pytest.fail("chromedriver is missing in CI (apt-get install chromium chromium-driver)")
        pytest.skip("chromedriver missing: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=chromedriver()), options=options)
