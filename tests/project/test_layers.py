"""The package's layers: each subpackage names one part of the architecture, and nothing imports upward.

    training, bench        on top: they drive everything below, and nothing imports them
    web                    the page and its API (Gradio)
    engine                 one turn end to end, and what runs it
    llm, media, ranking, store, settings
    models                 model specs and files
    core                   the top-level modules: errors, knobs, config, flows, dialogue, uploads, strictjson
    inputs                 the input kinds, which the core's dialogue and flows name

A module may import its own package and any lower layer; a package of the same layer only where `SIDEWAYS`
allows it, with the reason; a higher layer never. Read statically (test_layout's import graph: every import,
also inside functions and under TYPE_CHECKING). The top-level `python -m` aliases import nothing: each only
runs the module its command now lives in.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from .test_layout import PACKAGE, circles, import_graph

CORE = "core"  # the top-level modules
LAYERS: list[set[str]] = [  # bottom first
    {"inputs"},
    {CORE},
    {"models"},
    {"llm", "media", "ranking", "store", "settings"},
    {"engine"},
    {"web"},
    {"training", "bench"},
]
SIDEWAYS = {  # imports between packages of one layer, each with its reason
    ("llm", "media"): "the vision-language model decodes the picture as the captioner does (media/vision.load_image)",
    ("ranking", "llm"): "the verifier signal's model is a second chat model run by llama.cpp (llm/llamacpp)",
}
# `python -m interactive_format.X`, as the README has it, for modules that moved into a package.
COMMANDS = {"train": "training.train", "evaluate": "training.evaluate", "llamacpp": "llm.llamacpp"}


def package_of(module: str) -> str:
    """ "engine" for "engine.chat"; CORE for a top-level module."""
    return module.split(".")[0] if "." in module or (PACKAGE / module).is_dir() else CORE


def rank(package: str) -> int:
    found = [i for i, layer in enumerate(LAYERS) if package in layer]
    assert found, f"{package!r} is on no layer of test_layers.LAYERS: give the new package its place"
    return found[0]


def wrong_imports(graph: dict[str, set[str]], sideways=SIDEWAYS) -> list[str]:
    """Every import that runs upward, or sideways without a reason, as "a.b -> c.d (why)"."""
    wrong = []
    for module, imported in sorted(graph.items()):
        low = package_of(module)
        for target in sorted(imported):
            high = package_of(target)
            if low == high or (low, high) in sideways:
                continue
            if rank(high) > rank(low):
                wrong.append(f"{module} -> {target} (upward: {low} is below {high})")
            elif rank(high) == rank(low):
                wrong.append(f"{module} -> {target} (sideways: {low} and {high} are one layer)")
    return wrong


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package -> the packages its modules import."""
    out: dict[str, set[str]] = {}
    for module, imported in graph.items():
        out.setdefault(package_of(module), set()).update(package_of(t) for t in imported)
    return {p: targets - {p} for p, targets in out.items()}


def test_every_package_has_a_layer():
    packages = {package_of(m) for m in import_graph()}
    assert {p for layer in LAYERS for p in layer} == packages  # a layer named for nothing is a stale table too


def test_nothing_imports_upward_or_sideways():
    wrong = wrong_imports(import_graph())
    assert wrong == [], "imports against the layers (test_layers.py):\n" + "\n".join(wrong)


def test_no_package_imports_in_a_circle():
    assert circles(package_graph(import_graph())) == []


def test_the_sideways_imports_are_there_and_one_way():
    edges = {(a, b) for a, targets in package_graph(import_graph()).items() for b in targets}
    assert set(SIDEWAYS) <= edges  # a reason for an import that is gone is stale
    assert not any((b, a) in SIDEWAYS for a, b in SIDEWAYS)


@pytest.mark.parametrize(
    "imports, expected",
    [
        ({"errors": set(), "engine.chat": {"errors"}}, []),  # downward is fine
        ({"errors": {"engine.chat"}, "engine.chat": set()}, ["errors -> engine.chat (upward: core is below engine)"]),
        ({"llm.vlm": {"media.vision"}, "media.vision": set()}, []),  # sideways with its reason
        (
            {"media.vision": {"llm.vlm"}, "llm.vlm": set()},
            ["media.vision -> llm.vlm (sideways: media and llm are one layer)"],
        ),
        ({"training.train": {"bench.bench"}, "bench.bench": set()},
         ["training.train -> bench.bench (sideways: training and bench are one layer)"]),
        (
            {"inputs.readers": {"dialogue"}, "dialogue": set()},
            ["inputs.readers -> dialogue (upward: inputs is below core)"],
        ),
    ],
)
def test_the_layer_check_sees_an_import_against_the_layers(imports, expected):
    assert wrong_imports(imports) == expected


def test_the_check_reads_an_upward_import_from_the_files(tmp_path, monkeypatch):
    """A fabricated package: a core module importing the engine (inside a function) is found by reading it."""
    for name, text in {
        "__init__": "",
        "errors": "def f():\n    from .engine.chat import x",
        "engine/__init__": "",
        "engine/chat": "from ..errors import f",
    }.items():
        (tmp_path / f"{name}.py").parent.mkdir(exist_ok=True)
        (tmp_path / f"{name}.py").write_text(text + "\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    graph = import_graph(tmp_path)
    assert wrong_imports(graph) == ["errors -> engine.chat (upward: core is below engine)"]
    assert circles(package_graph(graph)) == [["core", "engine"]]


@pytest.mark.slow  # each runs the command in a new Python (up to ~7 s)
@pytest.mark.parametrize("alias, module", sorted(COMMANDS.items()))
def test_a_moved_command_keeps_its_name_and_imports_nothing(alias, module):
    source = (PACKAGE / f"{alias}.py").read_text(encoding="utf-8")
    imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(n) for n in imports] == ["import runpy"]
    assert f'runpy.run_module("interactive_format.{module}", run_name="__main__", alter_sys=True)' in source
    direct = subprocess.run([sys.executable, "-m", f"interactive_format.{module}", "--help"],
                            cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    aliased = subprocess.run([sys.executable, "-m", f"interactive_format.{alias}", "--help"],
                             cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert aliased.returncode == direct.returncode == 0 and aliased.stdout == direct.stdout, aliased.stderr[-2000:]
