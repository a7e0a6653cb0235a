"""A served app with small, explicit limits for the reliability suite (loopback only).

It reuses the session's loaded models (tests/conftest.py `engine`) under its own config:
one short candidate per turn, a queue that fills quickly, a per-turn timeout and a rate limit.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid

import pytest
from gradio_client import Client

from interactive_format.engine.chat import ChatEngine
from interactive_format.config import AppConfig, GenerationConfig, Limits, ServerConfig
from interactive_format.store.store import Store
from interactive_format.web.ui import build_demo

TURN_TIMEOUT_S = 20.0
RATE_LIMIT = 30  # turns per user per minute
MAX_QUEUE = 8
CONCURRENCY = 2


def reliability_config(base: AppConfig, **server) -> AppConfig:
    """The base config with the limits this suite checks."""
    return dataclasses.replace(
        base,
        generation=GenerationConfig(num_candidates=1, max_new_tokens=8, turn_timeout_s=TURN_TIMEOUT_S),
        limits=Limits(max_audio_seconds=5.0, max_file_bytes=2 * 2**20),
        server=ServerConfig(concurrency_limit=CONCURRENCY, max_queue=MAX_QUEUE, rate_limit=RATE_LIMIT, **server),
    )


def engine_with(engine: ChatEngine, config: AppConfig) -> ChatEngine:
    """The same loaded models under another config (the speech and picture readers get its limits)."""
    transcriber, captioner = copy.copy(engine.transcriber), copy.copy(engine.captioner)
    transcriber.limits = captioner.limits = config.limits
    return ChatEngine(config, engine.generator, transcriber, captioner, engine.reranker)


@pytest.fixture(scope="package")
def rel_engine(engine) -> ChatEngine:
    return engine_with(engine, reliability_config(engine.config))


@pytest.fixture(scope="package")
def rel_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("reliability-db") / "chats.db")
    yield store
    store.close()


@pytest.fixture(scope="package")
def rel_server(rel_engine, rel_store, serve):
    """The app on 127.0.0.1; yields its URL."""
    with serve(build_demo(rel_engine, rel_store)) as url:
        yield url


@pytest.fixture(scope="package")
def rel_client(rel_server) -> Client:
    return Client(rel_server, verbose=False)


def new_user() -> str:
    return uuid.uuid4().hex


def reply(client: Client, user: str, text: str = "", conversation_id: str = "", image=None, audio=None, **kw):
    """One /reply turn (files are gradio_client file handles or FileData dicts)."""
    return client.predict(
        conversation_id=conversation_id,
        message=text,
        image=image,
        audio=audio,
        candidates=kw.get("n", 1),
        temperature=0.7,
        max_new_tokens=kw.get("max_new_tokens", 8),
        user_id=user,
        api_name="/reply",
    )
