"""The import graph of jaxdl and xai: edges, core -> plugin edges, and import cycles (strongly connected files).

    python experiments/import_graph.py [REPO_DIR]      # prints the counts and writes import_graph.dot

Every import statement counts, including those inside functions (how the core used to reach into xai).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(root, p): p for pkg in ("jaxdl", "xai") for p in (root / pkg).rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    edges = graph(root)
    back = sorted((a, b) for a, bs in edges.items() for b in bs if a.startswith("jaxdl") and b.startswith("xai"))
    loops = cycles(edges)
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} import edges")
    print(f"core -> plugin (jaxdl -> xai) edges: {len(back)}" + "".join(f"\n  {a} -> {b}" for a, b in back))
    print(f"import cycles: {len(loops)}" + "".join(f"\n  {' <-> '.join(c)}" for c in loops))
    lines = ["digraph imports {", "  rankdir=LR;"]
    lines += [
        f'  "{a}" -> "{b}"{" [color=red]" if (a, b) in back else ""};' for a, bs in sorted(edges.items()) for b in sorted(bs)
    ]
    Path("import_graph.dot").write_text("\n".join(lines + ["}"]) + "\n")


if __name__ == "__main__":
    main()
