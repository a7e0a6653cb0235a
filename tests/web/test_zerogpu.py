"""ZeroGPU: the turn wrapper is a no-op without `spaces`, the real package leaves it callable, and turns still stream."""

from __future__ import annotations

import copy
import sys
import threading

import pytest

from interactive_format.web import zerogpu
from interactive_format.web.callbacks import chat_ui
from interactive_format.store.store import Store
from interactive_format.web.zerogpu import on_gpu, turn_steps

USER = "0123456789abcdef0123456789abcdef"


def test_without_spaces_the_wrapper_is_the_function_itself(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # `import spaces` raises ImportError, as off Spaces
    assert on_gpu(turn_steps) is turn_steps


def test_with_the_spaces_package_off_zerogpu_the_turn_is_unchanged(monkeypatch):
    spaces = pytest.importorskip("spaces")  # installed on every Space; requirements-dev.txt installs it for tests
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert spaces.GPU(duration=zerogpu.GPU_SECONDS)(turn_steps) is turn_steps
    assert on_gpu(turn_steps) is turn_steps


def test_a_wrapped_engine_turn_streams(engine):
    steps = on_gpu(turn_steps)
    conversation = engine.new_conversation()

    def run(stop: threading.Event):
        return engine.respond(conversation, "Hello! Tell me about tea.", stop=stop)

    out = list(steps(run, conversation, threading.Event()))
    statuses = [status for status, _ in out]
    assert sum(s.startswith("Sampling") for s in statuses) >= 3 and statuses[-1] == "Done"
    assert all(c is conversation for _, c in out) and conversation.turns[-1].reply.strip()


def pickled_steps(run, conversation, stop):
    """What ZeroGPU does: the turn runs in a forked worker and every yield comes back as a copy."""
    for status, conv in turn_steps(run, conversation, stop):
        yield status, copy.deepcopy(conv)


@pytest.mark.parametrize("forked", [False, True], ids=["in-process", "copies-like-zerogpu"])
def test_the_ui_turn_streams_and_keeps_the_reply(engine, tmp_path, forked):
    store = Store(tmp_path / "chats.db")
    ui = chat_ui(engine, store)
    if forked:
        ui._steps = pickled_steps
    chat = ui.history.new()
    views = list(ui.respond({"text": "What should I cook tonight?", "files": []}, chat, 3, 0.7, 24, 0.5, USER))
    streamed = [v for v in views if isinstance(v.status, str) and v.status.startswith("Sampling")]
    assert len(streamed) >= 2 and views[-1].status == "Ready"
    final = views[-1].chat
    reply = final.conversation.turns[-1]
    assert reply.role == "assistant" and reply.reply.strip() and len(reply.candidates) == 3
    saved = store.load(f"browser:{USER}", final.id)
    assert saved.turns[-1].reply == reply.reply  # what was shown is what was kept
    store.close()
