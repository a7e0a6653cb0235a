"""Shared fixtures: the persistent model cache, the models, the served app, the browser; the test tiers.

Tiers: every test gets markers from the fixtures it uses, directly or through other fixtures (`TIERS`):
`model` (loads a real model), `browser` (drives Chromium through Playwright), `e2e` (serves the app: Gradio
in-process or `python app.py`); `slow` is set by hand. The fast tier is the rest (logic, files, fakes, tiny
random models written by the tests; about a minute on 2 cores):
`python3 -m pytest -q -m "not slow and not browser and not e2e and not model"`.

The suite runs on every core (pytest-xdist, `-n` in pyproject.toml's addopts); a test marked `alone` (whose
timing is what it checks) runs while no other test does (`pytest_runtest_protocol` below).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest

from interactive_format.config import Limits

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"  # screenshots (CI prints the path)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# The persistent model cache of the tests (IF_TEST_CACHE moves it), one folder per `conversion_key`.
TEST_CACHE = Path(os.environ.get("IF_TEST_CACHE") or Path.home() / ".cache" / "interactive_format-tests")
CONVERTER_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "gguf", "numpy")
UNUSED_CACHE_DAYS = 7  # older folders of other converter versions are removed (each holds a few GB)

# A test gets a tier marker when it uses one of these fixtures, itself or through another fixture.
TIERS = {
    # the model cache and the fixtures of loaded models (a few tests load the small shipped D inline, in ~1 s)
    "model": {"cache_dir", "models", "e5_d", "fresh_d", "reader"},
    "browser": {"playwright"},  # Chromium through Playwright (`browser` and `page` are built on it)
    "e2e": {"serve", "app_process"},  # the app served: Gradio in this process, or `python app.py`
}


def tiers(fixtures) -> list[str]:
    """The tier markers of a test whose fixture closure is `fixtures`."""
    return [name for name, uses in TIERS.items() if uses & set(fixtures)]


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        for name in tiers(item.fixturenames):
            item.add_marker(name)
    heaviest_modules_first(items, json.loads(MODULE_SECONDS.read_text()) if MODULE_SECONDS.exists() else {})


# Each test module's seconds in a full run on 2 cores (`--record-module-seconds` rewrites it): only its order counts.
MODULE_SECONDS = Path(__file__).with_name("module_seconds.json")


def module_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


def heaviest_modules_first(items: list, seconds: dict[str, float]) -> None:
    """xdist's loadscope hands the workers whole modules in collection order: the longest go first, so the short
    ones fill the end (in xdist's own order, by number of tests, the one-test kill and malformed modules came last
    and ran on one core while the other waited).
    A module not in `seconds` keeps its place after them; the tests within a module keep theirs."""
    first = {}
    for k, item in enumerate(items):
        first.setdefault(module_of(item.nodeid), k)
    items.sort(key=lambda item: (-seconds.get(module_of(item.nodeid), 0.0), first[module_of(item.nodeid)]))


def pytest_addoption(parser) -> None:
    parser.addoption("--record-module-seconds", action="store_true",
                     help=f"write each module's seconds in this run to {MODULE_SECONDS.name} (run the whole suite)")


RECORDED: dict[str, float] = {}  # module -> seconds so far in this run


def pytest_runtest_logreport(report) -> None:  # on the xdist controller: every worker's reports come here
    RECORDED[module_of(report.nodeid)] = RECORDED.get(module_of(report.nodeid), 0.0) + report.duration


def pytest_sessionfinish(session) -> None:
    if session.config.getoption("record_module_seconds") and getattr(session.config, "workerinput", None) is None:
        ranked = dict(sorted(((m, round(s, 1)) for m, s in RECORDED.items()), key=lambda ms: -ms[1]))
        MODULE_SECONDS.write_text(json.dumps(ranked, indent=1) + "\n")


def share_the_cores() -> None:
    """Under xdist, torch and llama.cpp in each worker get its share of the CPUs (the app takes them all,
    `configure_threads`, `llm_threads`): two workers with a thread per core each ran a 4 s Whisper test in 37 s,
    their threads spinning on each other. llama.cpp's share goes through IF_LLM_THREADS, so the apps the tests
    start get it too (a test or a caller that sets it keeps its own)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return
    import torch

    from interactive_format.models import device

    share = max(1, device.usable_cpus() // workers)
    torch.set_num_threads(share)
    device.configure_threads = lambda: share  # read at each call: the app's loaders import it when they load
    os.environ.setdefault("IF_LLM_THREADS", str(share))


share_the_cores()


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per CPU this process may run on, at most 4 (each worker loads its own models)."""
    from interactive_format.models.device import usable_cpus

    return min(usable_cpus(), 4)


TURNS = "IF_TEST_TURNS"  # the folder of the workers' turn lock, made by the controller, inherited by the workers


MADE_TURNS = pytest.StashKey[str]()


def pytest_configure(config) -> None:
    """The controller of an xdist run makes the folder (a pytest run inside a test, e.g. pytester's, keeps its
    parent's)."""
    if (
        getattr(config, "workerinput", None) is None
        and config.getoption("numprocesses", None)
        and TURNS not in os.environ
    ):
        import tempfile

        os.environ[TURNS] = config.stash[MADE_TURNS] = tempfile.mkdtemp(prefix="interactive_format-turns-")


def pytest_unconfigure(config) -> None:
    if MADE_TURNS in config.stash:
        shutil.rmtree(config.stash[MADE_TURNS], ignore_errors=True)
        os.environ.pop(TURNS, None)


def turn_file(config) -> Path | None:
    """The lock file the workers of this run share (None when not under xdist)."""
    if getattr(config, "workerinput", None) is None or not os.environ.get(TURNS):
        return None
    return Path(os.environ[TURNS]) / "one-at-a-time"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under xdist, a test marked `alone` waits until no other worker runs a test and holds them off until it is
    done; every other test runs beside the others. The turn spans the whole protocol, so the fixtures a test sets
    up first (a module's server, its models) load inside it too: as an autouse fixture it came after them, so the
    other worker could load two vision models beside an `alone` test."""
    base = turn_file(item.config)
    if base is None:
        return (yield)
    with turn(base, bool(item.get_closest_marker("alone"))):
        return (yield)


@contextmanager
def turn(base: Path, alone: bool):
    """A readers-writer lock between the worker processes (flock): `alone` takes it exclusively. The gate makes a
    waiting exclusive test go first, so the other workers' next tests cannot keep it waiting."""
    with open(f"{base}.gate", "a") as gate, open(f"{base}.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(gate, fcntl.LOCK_UN)


def conversion_key() -> str:
    """What the cached conversions were made with: the converters' code and the packages they run on.

    File names inside the cache already follow the shipped model files (their sha256, or size and mtime), so a
    new model version gets new files; a changed converter or package gets a new folder.
    """
    import hashlib
    import inspect
    from importlib.metadata import version

    from interactive_format.media import ct2whisper
    from interactive_format.models import cache, gguf_file, hub
    from interactive_format.ranking import verifier

    code = [ct2whisper, cache.join_parts, gguf_file.requantize_gguf, hub.convert_gguf, verifier.output_matrix]
    parts = [inspect.getsource(x) for x in code] + [f"{name} {version(name)}" for name in CONVERTER_PACKAGES]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The persistent conversion cache: models are converted on the first run and reused by later ones.

    The conversion from scratch is tested by test_models.py's embedded SmolLM2, on an empty cache of its own.
    """
    path = TEST_CACHE / conversion_key()
    path.mkdir(parents=True, exist_ok=True)
    os.utime(path)  # in use: kept by `forget_unused_caches`
    forget_unused_caches(path)
    return path


def forget_unused_caches(current: Path) -> None:
    """Remove the cache folders of other converter versions that no run used for `UNUSED_CACHE_DAYS`."""
    import re

    cutoff = time.time() - UNUSED_CACHE_DAYS * 86400
    for folder in current.parent.iterdir():
        key = re.fullmatch(r"[0-9a-f]{16}", folder.name)  # only folders named like a key: IF_TEST_CACHE may hold more
        if key and folder != current and folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture(scope="session")
def generator(cache_dir):
    """The embedded chat model (converted once per session)."""
    from interactive_format.llm.generator import TransformersGenerator

    return TransformersGenerator.from_spec("embedded:smollm2-135m", cache_dir, "cpu")


@pytest.fixture(scope="session")
def models():
    """Loaded models shared by every engine of the session that names the same specs (flows, the app)."""
    from interactive_format.engine.engines import ModelCache

    return ModelCache()


@pytest.fixture(scope="session")
def engine(cache_dir, models):
    """The real engine on the embedded defaults (models load once per session)."""
    from interactive_format.config import AppConfig, GenerationConfig
    from interactive_format.engine.engines import build_engine

    config = AppConfig(models=TEST_MODELS(cache_dir), generation=GenerationConfig(max_new_tokens=24))
    return build_engine(config, models)


TEST_ENV = {"IF_LLM": "embedded:smollm2-135m", "IF_LLM_BACKEND": "transformers"}  # TEST_MODELS, for IF_* configs


def TEST_MODELS(cache_dir: Path, **changes):
    """The models every app test runs on: the smallest chat model (SmolLM2-135M, whatever the app's default is)
    on the transformers path, whose internals (model, lock) the fault tests reach into; test_llamacpp.py covers
    the llama.cpp engine."""
    from interactive_format.config import ModelsConfig

    return ModelsConfig(**{"cache_dir": cache_dir, "device": "cpu", "llm": "embedded:smollm2-135m",
                           "llm_backend": "transformers", **changes})  # fmt: skip


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """The served app's conversation database."""
    from interactive_format.store.store import Store

    store = Store(tmp_path_factory.mktemp("db") / "chats.db")
    yield store
    store.close()


@pytest.fixture(scope="session")
def server(engine, store, serve):
    """The Gradio app served on loopback; yields its URL."""
    from interactive_format.web.ui import build_demo

    with serve(build_demo(engine, store)) as url:
        yield url


@pytest.fixture(scope="session")
def flow_server(cache_dir, models, engine, store, serve):
    """The app as `python app.py` serves it: the playground first, every shipped flow in the menu."""
    from interactive_format.engine.engines import FlowSet, build_engine
    from interactive_format.settings.load import flow_configs, load_config
    from interactive_format.web.ui import build_demo

    environ = {"IF_CACHE_DIR": str(cache_dir), "IF_DEVICE": "cpu", "IF_MAX_NEW_TOKENS": "24", **TEST_ENV}
    start = build_engine(load_config(environ=environ), models)  # the session's models, not loaded again
    flows = FlowSet.serving(start, flow_configs(start.config, environ=environ), models)
    with serve(build_demo(start, store, flows)) as url:
        yield url


@pytest.fixture(scope="session")
def serve():
    """`served`: every test that serves the app in this process does it through this fixture (the e2e tier)."""
    return served


@contextmanager
def served(demo, **launch):
    """`demo` served on a free loopback port; yields its URL; closed afterwards."""
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch
    )
    try:
        yield url.rstrip("/")
    finally:
        demo.close()


@pytest.fixture(scope="session")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def speak(text: str, path: Path, voice: str = "en") -> Path:
    """A real spoken WAV from espeak-ng."""
    import subprocess

    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Good and bad files for turns: a real photo, real speech, and broken ones."""
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("media")
    Image.fromarray(data.coffee()).save(d / "coffee.png")
    speak("What is the weather like today?", d / "question.wav")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.wav").write_text("these are my meeting notes, not audio\n" * 20)
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture(scope="session")
def app_process():
    """`run_app`: every test that starts `python app.py` and waits for its page does it through this (e2e)."""
    return run_app


@contextmanager
def run_app(env: dict, timeout: float = 240, log: Path | None = None):
    """`python app.py` with `env`; yields its URL once it answers; killed (SIGKILL) afterwards.

    Its output goes to `log` when given (read it after the block), else to a pipe shown if it exits early.
    """
    url = f"http://127.0.0.1:{env['IF_PORT']}/"
    with open(log, "w") if log else nullcontext(subprocess.PIPE) as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            _wait_until_up(proc, url, timeout, log)
            yield url
        finally:
            proc.kill()  # no clean shutdown: what was answered must already be on disk
            proc.wait(timeout=30)


def _wait_until_up(proc: subprocess.Popen, url: str, timeout: float, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the app exited: {log.read_text() if log else proc.stdout.read()}"[-3000:])
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail("the app did not start in time")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def playwright():
    """Playwright's sync API, started once per module: every browser test drives Chromium through it."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    """Debian's Chromium, headless, shared by a module's tests (each opens its own pages)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    yield browser
    browser.close()
