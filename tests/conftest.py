"""Shared fixtures: an isolated conversion cache per test session, default limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interactive_format.config import Limits

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


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
    from interactive_format.generator import TransformersGenerator

    return TransformersGenerator.from_spec("embedded:smollm2-135m", cache_dir, "cpu")


@pytest.fixture(scope="session")
def models():
    """Loaded models shared by every engine of the session that names the same specs (flows, the app)."""
    from interactive_format.chat import ModelCache

    return ModelCache()


@pytest.fixture(scope="session")
def engine(cache_dir, models):
    """The real engine on the embedded defaults (models load once per session)."""
    from interactive_format.chat import ChatEngine
    from interactive_format.config import AppConfig, GenerationConfig, ModelsConfig

    config = AppConfig(
        models=ModelsConfig(cache_dir=cache_dir, device="cpu"),
        generation=GenerationConfig(max_new_tokens=24),
    )
    return ChatEngine.build(config, models)


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """The served app's conversation database."""
    from interactive_format.store import Store

    store = Store(tmp_path_factory.mktemp("db") / "chats.db")
    yield store
    store.close()


@pytest.fixture(scope="session")
def server(engine, store):
    """The Gradio app served on loopback; yields its URL."""
    from interactive_format.ui import build_demo

    demo = build_demo(engine, store)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield url.rstrip("/")
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
