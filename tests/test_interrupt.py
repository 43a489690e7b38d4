"""Ctrl-C during an app's start-up (jaxdl/interrupt.py): exit code 130 and one line, whenever it comes.

Before this, a SIGINT in the first seconds of `jaxdl-train` was swallowed by JAX's garbage-collector
callback (the run trained on to exit 0) or ended in a segfault after the "interrupted" line. The delays
land in the imports, in Hydra's composing and in JAX's start-up on a quiet 2-core machine.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxdl.errors import EXIT_INTERRUPTED
from jaxdl.interrupt import MESSAGE
from tests.conftest import REPO, quick_overrides

DELAYS_S = (0.0, 1.1, 3.6)  # after the handler is installed, about 0.4 s into a quiet start-up


def wait_for_the_handler(app: subprocess.Popen, timeout: float = 60) -> None:
    """Until jaxdl.interrupt's watcher thread runs (the process's second thread): a SIGINT that lands before,
    in Python's own start-up (its `site` import, slow under load), is Python's, not an app's, to handle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and app.poll() is None:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{app.pid}/status").read_text()
            if int(status.split("Threads:")[1].split()[0]) >= 2:
                return
        time.sleep(0.01)
    pytest.fail("the app never installed its Ctrl-C handler")


def test_ctrl_c_during_start_up_exits_130_in_one_line(tmp_path):
    for delay in DELAYS_S:
        run = tmp_path / f"run-{delay}"
        app = subprocess.Popen(
            [sys.executable, "-m", "jaxdl.apps.train", *quick_overrides(), f"hydra.run.dir={run}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_the_handler(app)
        time.sleep(delay)
        app.send_signal(signal.SIGINT)
        _, stderr = app.communicate(timeout=120)
        assert app.returncode == EXIT_INTERRUPTED, (delay, app.returncode, stderr[-3000:])
        lines = stderr.splitlines()  # at once before the run directory opens; after, the run records where it stopped
        assert len(lines) == 1 and lines[0].startswith("interrupted; "), (delay, stderr[-3000:])
        assert lines[0] == MESSAGE.decode().strip() or "checkpoints written so far are kept" in lines[0]


def test_ctrl_c_while_explain_or_compress_imports_jax_exits_130_in_one_line(tmp_path):
    """xai's apps import JAX before `jaxdl.apps`: the handler is installed by `xai/__init__.py` first."""
    for module in ("xai.explain.app", "xai.compress.app"):
        app = subprocess.Popen(
            [sys.executable, "-m", module, f"run_dir={tmp_path}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_the_handler(app)  # then inside the package's imports (JAX, Flax), before the app module runs
        app.send_signal(signal.SIGINT)
        _, stderr = app.communicate(timeout=120)
        assert app.returncode == EXIT_INTERRUPTED and stderr.splitlines() == [MESSAGE.decode().strip()], (module, stderr[-3000:])
