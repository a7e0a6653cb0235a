"""The package's shape: no import circles among its modules, in every subpackage.

Every import counts — at module level, inside functions and under `TYPE_CHECKING` — because a
function-level import is still a dependency (it only runs later), and a circle through one is
the same knot a newcomer has to untie. Read statically with `ast`: nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "interactive_format"


def module_name(path: Path, package_dir: Path) -> str:
    """The module's dotted name inside the package: "errors", "engine.chat", "ranking.signals" (a package)."""
    parts = list(path.relative_to(package_dir).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, module: str, known: set[str], package: str = "interactive_format") -> set[str]:
    """The package's modules (of `known`, dotted) that `module`, the file at `path`, imports anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name.removeprefix(package + ".") for a in node.names if a.name.startswith(package + ".")]
            names.update(t for t in targets if t in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module == package or (node.module or "").startswith(package + ".")):
                    continue
                target = node.module.removeprefix(package).removeprefix(".")
            else:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:  # `from pkg import module` imports the module; else the names of `target`
                sub = f"{target}.{alias.name}" if target else alias.name
                names.add(sub if sub in known else target)
    return names & known


def import_graph(package_dir: Path = PACKAGE) -> dict[str, set[str]]:
    """Module (dotted, subpackages too) -> the package's modules it imports (itself excluded)."""
    paths = {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}
    known = set(paths) - {""}
    return {m: imported_modules(p, m, known) - {m} for m, p in paths.items() if m}


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
        (  # across subpackages: a module of one, a package's face, `from .. import module`
            {"x/__init__": "", "x/a": "from ..y import b", "y/__init__": "from .b import z", "y/b": "from .. import c",
             "c": "from .x.a import w"},
            [["c", "x.a", "y.b"]],
        ),
        ({"x/__init__": "", "x/a": "from ..c import q", "c": "import interactive_format.x"}, []),  # the face only
    ],
)
def test_the_circle_check_sees_every_kind_of_import(tmp_path, sources, expected):
    for name, text in sources.items():
        (tmp_path / f"{name}.py").parent.mkdir(exist_ok=True)
        (tmp_path / f"{name}.py").write_text(text + "\n", encoding="utf-8")
    assert circles(import_graph(tmp_path)) == expected
