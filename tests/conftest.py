"""Shared fixtures: composed configs, the real data sets on this machine, a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def _xla_cache_of_this_worker() -> dict[str, str]:
    """One persistent XLA cache per test worker, set before JAX loads and inherited by every app subprocess.

    Most tests train or explain the same few small programs, in this process or in a CLI subprocess: with the cache
    each program compiles once per worker instead of once per test. One directory per xdist worker, because JAX
    writes cache entries in place and two workers compiling the same program at once could read a half-written one.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    cache = tempfile.mkdtemp(prefix=f"jaxdl-tests-xla-{worker}-")
    return {
        "JAX_COMPILATION_CACHE_DIR": cache,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


XLA_CACHE_ENV = _xla_cache_of_this_worker()
os.environ.update(XLA_CACHE_ENV)

from jaxdl import config as jaxdl_config  # noqa: E402  (after the cache is set: JAX reads it when it loads)

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
def compile_cache_env() -> dict:
    """The worker's persistent XLA cache, for tests that build a subprocess environment from scratch."""
    return dict(XLA_CACHE_ENV)


def pytest_sessionfinish(session) -> None:
    shutil.rmtree(XLA_CACHE_ENV["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items) -> None:
    """Tests sharing a module-scoped fixture (often a whole training run) go to one xdist worker, which builds it once.

    Runs before xdist's own hook, which turns `xdist_group` marks into the scheduling groups of `--dist loadgroup`.
    """
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        fixtures = getattr(item, "_fixtureinfo", None)
        defs = fixtures.name2fixturedefs.values() if fixtures else ()
        if any(d[-1].scope in ("module", "package") for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
