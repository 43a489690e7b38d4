"""Shared fixtures: composed configs, the real data sets on this machine, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxdl import config as jaxdl_config

REPO = Path(__file__).resolve().parents[1]
MNIST_TEST_DIR = Path(os.environ.get("JAXDL_MNIST_TEST", REPO.parent / "shared" / "data" / "mnist-test"))
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def require_dir(path: Path, how: str) -> Path:
    """Real data must exist in CI; locally a missing data set skips with the way to get it."""
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI ({how})")
        pytest.skip(f"{path} missing: {how}")
    return path


@pytest.fixture
def mnist_test_dir() -> Path:
    return require_dir(MNIST_TEST_DIR, "the shared/ directory beside the checkout holds it")


@pytest.fixture
def fashion_dir() -> Path:
    return require_dir(FASHION_DIR, "apt-get install dataset-fashion-mnist")


def compose_config(*overrides: str):
    """The config `jaxdl-train OVERRIDES...` would run, without Hydra's run directory machinery."""
    return jaxdl_config.compose_config("config", overrides)


def quick_overrides(*extra: str) -> list[str]:
    """A seconds-long digits run: few epochs, no progress bar."""
    return ["trainer.epochs=2", "trainer.progress=false", "trainer.eval_batch_size=128", *extra]


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a jaxdl app as a user would, returning its exit code and output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def compile_cache_env(tmp_path_factory) -> dict:
    """Environment for app subprocesses sharing one persistent XLA cache, so repeated jobs skip most compiling."""
    return {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("xla_cache")),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
