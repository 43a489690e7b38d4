"""The core stays closed: no module of `jaxdl` imports `xai`, at any depth, not even inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement anywhere in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            found.append((node.lineno, base))
    return found


def test_the_finder_sees_imports_inside_functions(tmp_path):
    probe = REPO / "jaxdl" / "_probe_for_test.py"
    probe.write_text("def f():\n    from xai.compress import storage\n    import xai.explain\n")
    try:
        assert [m for _, m in imported_modules(probe)] == ["xai.compress", "xai.explain"]
    finally:
        probe.unlink()


@pytest.mark.parametrize("path", sorted((REPO / "jaxdl").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_core_never_imports_xai(path):
    bad = [f"line {line}: {module}" for line, module in imported_modules(path) if module == "xai" or module.startswith("xai.")]
    assert not bad, f"{path.relative_to(REPO)} imports the xai plugin package: {bad}"


def test_plugins_reach_the_core_through_its_registries():
    from jaxdl.artifacts import FORMATS
    from jaxdl.models import ADAPTERS
    from jaxdl.optim import WRAPPERS

    assert "compressed" in FORMATS and "pruning" in WRAPPERS and "channels" in ADAPTERS
