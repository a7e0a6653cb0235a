"""The package's shape: no import circles among its modules.

Every import counts — at module level, inside functions and under `TYPE_CHECKING` — because a
function-level import is still a dependency (it only runs later), and a circle through one is
the same knot a newcomer has to untie. Read statically with `ast`: nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "interactive_format"


def imported_modules(path: Path, package: str = "interactive_format") -> set[str]:
    """The package's modules that the file at `path` imports anywhere in it (by short name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(package + "."):
                    names.add(alias.name.split(".")[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith(package):
                parts = node.module.split(".")[1:]
            elif node.level == 1:
                parts = node.module.split(".") if node.module else []
            else:
                continue
            if parts:
                names.add(parts[0])
            else:  # `from . import x`: x is a module of the package
                names.update(alias.name for alias in node.names)
    return names


def import_graph(package_dir: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (itself excluded)."""
    modules = {p.stem for p in package_dir.glob("*.py")}
    graph = {}
    for path in sorted(package_dir.glob("*.py")):
        graph[path.stem] = (imported_modules(path) & modules) - {path.stem}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_package_has_no_import_circles():
    found = circles(import_graph())
    assert found == [], "import circles in interactive_format/: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize(
    "sources, expected",
    [
        ({"a": "from .b import x", "b": "def f():\n    from .a import y"}, [["a", "b"]]),  # function-level
        (
            {"a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import x", "b": "from . import a"},
            [["a", "b"]],
        ),
        (
            {"a": "import interactive_format.b", "b": "from interactive_format.c import z", "c": "from .a import q"},
            [["a", "b", "c"]],
        ),
        ({"a": "from .b import x", "b": "import json", "c": "from .a import y"}, []),  # a chain is fine
    ],
)
def test_the_circle_check_sees_every_kind_of_import(tmp_path, sources, expected):
    for name, text in sources.items():
        (tmp_path / f"{name}.py").write_text(text + "\n", encoding="utf-8")
    assert circles(import_graph(tmp_path)) == expected
