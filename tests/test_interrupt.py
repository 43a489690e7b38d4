"""Ctrl-C during an app's start-up (jaxdl/interrupt.py): exit code 130 and one line, whenever it comes.

Before this, a SIGINT in the first seconds of `jaxdl-train` was swallowed by JAX's garbage-collector
callback (the run trained on to exit 0) or ended in a segfault after the "interrupted" line. The delays
land in the imports, in Hydra's composing and in JAX's start-up on a quiet 2-core machine.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from jaxdl.errors import EXIT_INTERRUPTED
from jaxdl.interrupt import MESSAGE
from tests.conftest import REPO, quick_overrides

DELAYS_S = (0.4, 1.5, 4.0)


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
        time.sleep(0.4)  # inside the package's imports (JAX, Flax), before the app module runs
        app.send_signal(signal.SIGINT)
        _, stderr = app.communicate(timeout=120)
        assert app.returncode == EXIT_INTERRUPTED and stderr.splitlines() == [MESSAGE.decode().strip()], (module, stderr[-3000:])
