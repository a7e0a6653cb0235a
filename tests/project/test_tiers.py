"""The test tiers: each test is marked model / browser / e2e from the fixtures it uses (tests/conftest.py TIERS)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from ..conftest import MODULE_SECONDS, TIERS, heaviest_modules_first, tiers

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parents[1]
MARKERS = {*TIERS, "slow"}


BROWSER_MODULES = sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("test_*browser*.py"))
MODULES = [*BROWSER_MODULES, "store/test_store.py", "app/test_app.py", "media/test_speech.py"]


@pytest.fixture(scope="module")
def imported() -> None:
    """The modules collected below, imported before `pytester` starts (it forgets the modules imported while it
    runs, and torch cannot be imported twice in one process)."""
    for f in MODULES:
        folder = (TESTS / f).parent
        if folder != TESTS and (folder / "conftest.py").exists():
            importlib.import_module(f"tests.{folder.name}.conftest")
        importlib.import_module("tests." + f.removesuffix(".py").replace("/", "."))


def collected(pytester, *files: str) -> dict[str, set[str]]:
    """Collect `files` of this suite as pytest would (hooks included, nothing run): test id -> its tier markers."""
    items, _ = pytester.inline_genitems(*(str(TESTS / f) for f in files), "-p", "no:cacheprovider")
    return {item.nodeid.split("tests/", 1)[1]: {m.name for m in item.iter_markers()} & MARKERS for item in items}


def test_a_test_is_marked_by_the_fixtures_it_uses_and_theirs(imported, pytester):
    marks = collected(pytester, *MODULES)
    assert marks["app/test_browser.py::test_text_turn_streams_a_reply"] == {"browser", "e2e", "model"}  # page
    assert marks["reliability/test_browser_xss.py::test_img_onerror_message_renders_inert"] == {
        "browser", "e2e", "model"
    }  # fmt: skip
    assert marks["app/test_app.py::test_text_turn"] == {"e2e", "model"}  # client -> server -> serve, engine
    assert marks["app/test_app.py::test_ui_history_survives_bad_turns"] == {"model"}  # the engine, no server
    assert marks["app/test_app.py::test_restart_keeps_the_conversation_its_candidates_and_picks"] == {
        "e2e", "model", "slow"
    }  # app_process; slow by hand  # fmt: skip
    assert marks["media/test_speech.py::test_librivox_word_error_rate_on_default_model"] == {"model", "slow"}
    store = {name: m for name, m in marks.items() if name.startswith("store/test_store.py")}
    assert store and not any(store.values())  # a database on a temporary path: no tier
    browser = {name: m for name, m in marks.items() if name.split("::")[0] in BROWSER_MODULES}
    assert {name.split("::")[0] for name in browser} == set(BROWSER_MODULES)
    assert all("browser" in m for m in browser.values()), [n for n, m in browser.items() if "browser" not in m]


def test_servers_and_browsers_start_only_through_the_tier_fixtures():
    """A server or browser started in a test's own code would escape its tier: conftest.py owns those starts."""
    for path in TESTS.rglob("*.py"):
        if path != TESTS / "conftest.py" and path != Path(__file__):
            text = path.read_text()
            assert "sync_playwright" not in text and not re.search(r"\.launch\(\s*server_name", text), path


def test_the_rules_are_unions_of_fixture_names():
    assert tiers(["tmp_path", "monkeypatch"]) == []
    assert tiers(["page", "browser", "playwright", "server", "serve", "engine", "cache_dir"]) == [
        "model", "browser", "e2e"
    ]  # fmt: skip
    assert tiers(["app_process", "cache_dir"]) == ["model", "e2e"]


def test_a_test_marked_alone_runs_while_no_other_does(tmp_path):
    """The turns under xdist: an `alone` test waits for the test running beside it, and a test that comes
    while it waits or runs waits for it (the workers are processes; flock holds between threads the same way)."""
    import threading
    import time

    from ..conftest import turn

    base, log = tmp_path / "one-at-a-time", []

    def test(name: str, alone: bool, seconds: float) -> threading.Thread:
        def run() -> None:
            with turn(base, alone):
                log.append(f"{name} starts")
                time.sleep(seconds)
                log.append(f"{name} ends")

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    running = test("beside", False, 0.6)
    while not log:  # "beside" holds its turn
        time.sleep(0.01)
    load = test("load", True, 0.6)  # comes while "beside" runs
    time.sleep(0.2)
    later = test("later", False, 0.1)  # comes while "load" waits
    for thread in (running, load, later):
        thread.join(timeout=10)
    assert log == ["beside starts", "beside ends", "load starts", "load ends", "later starts", "later ends"]
    both = [test("a", False, 0.5), test("b", False, 0.5)]  # two ordinary tests run side by side
    for thread in both:
        thread.join(timeout=10)
    assert log[6:8] in (["a starts", "b starts"], ["b starts", "a starts"])


def _holds(path: Path) -> bool:
    """Whether this process holds a flock on `path` (Linux's /proc/locks: type, mode, kind, pid, device:inode)."""
    import os

    if not path.exists():
        return False
    inode = path.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and str(os.getpid()) in fields and any(f.endswith(f":{inode}") for f in fields):
            return True
    return False


HOOKS = "from tests.conftest import pytest_configure, pytest_runtest_protocol, pytest_unconfigure  # the suite's"
INNER = """
from pathlib import Path

import pytest

from tests.conftest import turn_file


@pytest.fixture(scope="module")
def held(request):
    base = turn_file(request.config)
    return base is not None and _holds(Path(f"{base}.lock"))


def test_held(held):
    assert held
"""


def test_a_tests_turn_spans_the_setup_of_its_module_fixtures(pytester, monkeypatch):
    """A module's server or models load inside the turn, so an `alone` test runs with no other worker loading:
    a run of two xdist workers with this suite's hooks, whose module fixture finds its process holding the lock."""
    import inspect

    monkeypatch.delenv("IF_TEST_TURNS", raising=False)  # its own controller makes its own folder
    monkeypatch.setenv("PYTHONPATH", str(TESTS.parent))
    pytester.makeconftest(HOOKS)
    pytester.makepyfile(test_inner=INNER + "\n\n" + inspect.getsource(_holds))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_the_longest_modules_are_handed_out_first_each_module_in_one_piece():
    from types import SimpleNamespace

    ids = ["a.py::t1", "a.py::t2", "b.py::t1", "c.py::t1", "c.py::t2", "d.py::t1"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    heaviest_modules_first(items, {"c.py": 60.0, "b.py": 5.0, "gone.py": 99.0})
    assert [i.nodeid for i in items] == ["c.py::t1", "c.py::t2", "b.py::t1", "a.py::t1", "a.py::t2", "d.py::t1"]


def test_the_module_seconds_name_modules_that_exist_and_xdist_keeps_the_order():
    """The recorded seconds are of today's modules (a renamed module would lose its place), and xdist's own
    reordering (by number of tests: the one-test kill module came last and ran alone at the end) is off."""
    import json

    seconds = json.loads(MODULE_SECONDS.read_text())
    assert len(seconds) > 40 and all((TESTS.parent / m).is_file() for m in seconds)
    assert "--no-loadscope-reorder" in (TESTS.parent / "pyproject.toml").read_text()
