"""The locks: every package the app imports is pinned with a hash, the files agree, and a missing one is one line.

These read the repository's own files; the end-to-end proof that the README's command installs a
working app from them is `.ci/readme_run.py`, which `.ci/run` runs in a fresh virtual environment.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_layout import import_graph, imported_modules, module_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "interactive_format"
PLATFORM = {"torch"}  # each platform installs its own build first; the locks leave it out (README: Run it)
OPTIONAL = {"spaces"}  # zerogpu.py: on every Space (ZeroGPU's decorator); without it the turn runs as is


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements file."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", path.read_text(), re.M)
    return {canonical(name): version for name, version in found}


def external_imports(source: Path) -> set[str]:
    """Top-level names of the absolute imports in one file (also those inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


def app_modules() -> list[Path]:
    """app.py and every package module it reaches through imports (what `python app.py` may load), subpackages'
    `__init__.py` included (importing `a.b` runs `a` first)."""
    graph = import_graph(PACKAGE)
    paths = {module_name(p, PACKAGE): p for p in PACKAGE.rglob("*.py")}
    seen: set[str] = set()
    todo = sorted(imported_modules(ROOT / "app.py", "app", set(graph)))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        todo += sorted(graph[module] | set(parents))
    return sorted([ROOT / "app.py", *(paths[m] for m in seen)])


@functools.cache
def installed() -> dict[str, list[str]]:
    """import name -> the installed distributions that provide it."""
    return importlib.metadata.packages_distributions()


def distributions(module: str) -> set[str]:
    return {canonical(d) for d in installed().get(module, [])}


def unlocked(sources: list[Path], lock: Path) -> dict[str, set[str]]:
    """import name -> its distributions, for every import of `sources` that `lock` does not pin."""
    locked = set(pins(lock)) | PLATFORM
    missing = {}
    for source in sources:
        for module in external_imports(source) - {"interactive_format"} - OPTIONAL:
            dists = distributions(module)
            if not dists or not dists & locked:
                missing[f"{module} ({source.relative_to(ROOT)})"] = dists
    return missing


def test_every_package_the_app_imports_is_in_the_app_lock():
    modules = app_modules()
    assert ROOT / "interactive_format" / "engine" / "chat.py" in modules and len(modules) > 10
    assert unlocked(modules, ROOT / "requirements.lock") == {}


def test_every_package_any_module_imports_is_in_the_dev_lock():
    sources = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "tests").rglob("*.py")) + [ROOT / ".ci" / "readme_run.py"]
    assert unlocked(sources, ROOT / "requirements-dev.lock") == {}


def test_the_check_sees_a_package_left_out_of_the_lock(tmp_path):
    """The check above is not vacuous: a lock without gradio fails it, naming gradio."""
    lock = (ROOT / "requirements.lock").read_text()
    without = re.sub(r"^gradio==.*?(?=^\S)", "", lock, flags=re.M | re.S)
    assert "\ngradio==" not in without and "\nhf-gradio==" in without
    (tmp_path / "requirements.lock").write_text(without)
    missing = unlocked(app_modules(), tmp_path / "requirements.lock")
    assert any(k.startswith("gradio ") for k in missing), missing


def test_locks_pin_exact_versions_with_hashes():
    for name in (
        "requirements.lock",
        "requirements-dev.lock",
        "requirements-models.txt",
        "requirements-models-extra.txt",
    ):
        text = (ROOT / name).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 1)[1])
        entries = [e for e in entries if not e.startswith("#") and e.strip()]
        assert entries, name
        for entry in entries:
            assert re.match(r"[A-Za-z0-9][A-Za-z0-9._\[\],-]*==\S+", entry), (name, entry[:80])
            assert "--hash=sha256:" in entry, (name, entry[:80])


def test_the_locks_and_requirements_txt_agree():
    app, dev, spaces = (pins(ROOT / n) for n in ("requirements.lock", "requirements-dev.lock", "requirements.txt"))
    assert {k: dev.get(k) for k in app} == app  # the app's lock is the dev lock's subset, same versions
    torch = pins(ROOT / ".ci" / "torch.txt")["torch"]
    assert spaces == app | {"torch": torch}  # what Spaces installs is what CI tested, torch pinned too
    assert "torch" not in app and not any(k.startswith("nvidia-") for k in app | dev)


def test_readme_installs_the_tested_torch_and_spaces_the_tested_gradio():
    readme = (ROOT / "README.md").read_text()
    torch = pins(ROOT / ".ci" / "torch.txt")["torch"]
    assert f"pip install torch=={torch} " in readme
    assert f"sdk_version: {pins(ROOT / 'requirements.lock')['gradio']}\n" in readme


def test_every_embedded_weight_package_is_locked():
    from interactive_format.models.specs import EMBEDDED

    locked = pins(ROOT / "requirements-models.txt") | pins(ROOT / "requirements-models-extra.txt")
    for model in EMBEDDED.values():
        version = model.pip.rsplit("==", 1)[1]  # every package of one model has the same version
        for package in model.packages:  # import names; the pip names are the same with dashes
            assert locked.get(canonical(package)) == version, (package, model.pip)


MISSING = [
    ("gradio", ["app.py"], "The app needs the Python package 'gradio'"),
    ("mcp", ["app.py", "--mcp"], "--mcp needs the Python package 'mcp'"),
    ("PIL", ["app.py"], "The app needs the Python package 'pillow'"),
    ("matplotlib", ["-m", "interactive_format.train"], "Training needs the Python package 'matplotlib'"),
]


@pytest.fixture(scope="module")
def without(tmp_path_factory):
    """Each start of MISSING with its package made unimportable, all at once (separate processes: they share the
    cores instead of queueing for them); blocked package -> (process, the file its stderr goes to)."""
    runs = {}
    for blocked, command, _ in MISSING:
        if command[0] == "-m":
            run = f"sys.argv = [{command[1]!r}]; runpy.run_module({command[1]!r}, run_name='__main__', alter_sys=True)"
        else:
            run = f"sys.argv = {command!r}; runpy.run_path('app.py', run_name='__main__')"
        code = f"import sys, runpy; sys.modules[{blocked!r}] = None; {run}"
        stderr = tmp_path_factory.mktemp("missing") / "stderr"
        with open(stderr, "w") as err:
            proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        runs[blocked] = proc, stderr
    yield runs
    for proc, _ in runs.values():
        proc.kill()
        proc.wait()


@pytest.mark.slow  # each starts the app in a new Python (~7 s)
@pytest.mark.parametrize("blocked, command, expected", MISSING)
def test_a_missing_package_is_one_clear_line(without, blocked, command, expected):
    """With one package made unimportable, the start ends in one line naming it and the install command."""
    proc, stderr = without[blocked]
    returncode = proc.wait(timeout=120)
    done = stderr.read_text()
    assert returncode == 1, done[-2000:]
    lines = done.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done, done[-2000:]
    lock = "requirements-dev.lock" if "train" in " ".join(command) else "requirements.lock"
    assert expected in lines[0] and f"Run: pip install --require-hashes -r {lock}" in lines[0]
