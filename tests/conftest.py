"""Shared fixtures: an isolated conversion cache per test session, default limits."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A fresh conversion cache: every session proves the one-time conversions work."""
    return tmp_path_factory.mktemp("model-cache")


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
def server(engine, store):
    """The Gradio app served on loopback; yields its URL."""
    from interactive_format.web.ui import build_demo

    with served(build_demo(engine, store)) as url:
        yield url


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


@contextmanager
def app_process(env: dict, timeout: float = 240, log: Path | None = None):
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
