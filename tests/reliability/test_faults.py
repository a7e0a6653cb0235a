"""Faults inside the real model — CUDA out of memory, an exception, a stall — end only that turn, with a retry."""

from __future__ import annotations

import dataclasses
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError

from interactive_format.web.callbacks import ChatUI
from interactive_format.config import GenerationConfig
from interactive_format.store.store import Store

from .conftest import engine_with, new_user, reply

FAULTY_BATCH = 3  # turns asking for 3 candidates hit the fault; everyone else is served normally


def inject(monkeypatch, model, fault) -> None:
    """Make the real model's forward call `fault()` for batches of FAULTY_BATCH or more sequences.

    Requests that arrive together share one generate call (generator._Batcher), so the fault also hits
    that shared batch; the generator then runs each request alone, and only the 3-candidate one fails.
    """
    forward = model.forward

    def faulty(*args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] >= FAULTY_BATCH:
            fault()
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", faulty)


def out_of_memory():
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def broken():
    raise RuntimeError("injected fault")


@pytest.mark.parametrize(
    "fault, message",
    [
        (out_of_memory, "ran out of GPU memory for this reply. Please try again, with fewer candidates"),
        (broken, r"failed while answering \(RuntimeError\). Please try again"),
    ],
)
def test_model_fault_ends_that_turn_others_continue_and_a_retry_works(
    rel_server, rel_engine, monkeypatch, fault, message
):
    inject(monkeypatch, rel_engine.generator.model, fault)
    alice, bob = new_user(), new_user()
    clients = [Client(rel_server, verbose=False) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:  # at the same time: Alice's turn fails, Bob's is answered
        failing = pool.submit(reply, clients[0], alice, "Hello there!", n=FAULTY_BATCH)
        fine = pool.submit(reply, clients[1], bob, "Hello too!", n=1)
        assert fine.result()["reply"].strip()
        with pytest.raises(AppError, match=message):
            failing.result()
    cid = clients[0].predict(user_id=alice, api_name="/conversations")[0]["id"]
    retried = reply(clients[0], alice, "Hello there!", cid, n=2)  # the retry the message suggests
    assert retried["reply"].strip() and retried["conversation_id"] == cid
    saved = clients[0].predict(conversation_id=cid, user_id=alice, api_name="/conversation")
    messages = saved["conversations"][0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert "Please try again" in messages[1]["error"] and not messages[3].get("error")


def measured_turn_s(engine, store) -> float:
    """How long one normal turn (1 candidate, 8 tokens) takes on this machine right now."""
    ui, user = ChatUI(engine, store), uuid.uuid4().hex
    chat = ui.history.new()
    started = time.monotonic()
    list(ui.respond({"text": "Hi!", "files": []}, chat, 1, 0.7, 8, 0.5, user))
    assert chat.conversation.turns[-1].reply.strip()
    return time.monotonic() - started


def test_stalled_generation_times_out_with_a_retry_button_and_the_retry_answers(rel_engine, monkeypatch):
    store = Store(":memory:")
    # The budget comes from this machine's measured speed (a neighbour may hold a core), not a constant.
    timeout = round(max(1.5, 4 * measured_turn_s(rel_engine, store)), 1)
    stall = 2 * timeout + 1.0
    config = dataclasses.replace(
        rel_engine.config, generation=dataclasses.replace(rel_engine.config.generation, turn_timeout_s=timeout)
    )
    engine = engine_with(rel_engine, config)
    inject(monkeypatch, engine.generator.model, lambda: time.sleep(stall))
    ui, user = ChatUI(engine, store), uuid.uuid4().hex
    chat = ui.history.new()
    started = time.monotonic()
    view = list(ui.respond({"text": "Hi!", "files": []}, chat, FAULTY_BATCH, 0.7, 8, 0.5, user))[-1]
    assert time.monotonic() - started < stall  # the turn ended at the timeout, not when the model woke up
    reply_turn = chat.conversation.turns[-1]
    said = f"took longer than {timeout:g} seconds"
    assert said in reply_turn.error and view.retry["visible"] is True
    assert said in str(view.chatbot) and view.status == "Ready"
    with engine.generator._lock:  # the stalled forward has returned
        pass
    view = list(ui.regenerate(chat, 1, 0.7, 8, 0.5, user))[-1]  # the Retry button
    assert chat.conversation.turns[-1].reply.strip() and chat.conversation.turns[-1].error is None
    assert view.retry["visible"] is False and len(chat.conversation.turns) == 2
    saved = ui.history.open(f"browser:{user}", chat.id).conversation.turns[-1]
    assert saved.error is None and saved.reply == chat.conversation.turns[-1].reply
    store.close()


def test_turn_timeout_is_configurable(tmp_path):
    from interactive_format.settings.load import load_config

    assert GenerationConfig().turn_timeout_s == 120.0
    assert load_config(environ={"IF_TURN_TIMEOUT": "7.5"}).generation.turn_timeout_s == 7.5
    with pytest.raises(ValueError, match="generation.turn_timeout_s"):
        load_config(environ={"IF_TURN_TIMEOUT": "0"})
