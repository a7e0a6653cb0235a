"""Whole turns through a running app: the APIs via gradio_client, the UI callbacks, a restarted process."""

from __future__ import annotations

import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from interactive_format.web.api import owner_of
from interactive_format.web.callbacks import chat_ui
from interactive_format.dialogue import Candidate
from interactive_format.ranking.ranking import Reranker, load_ranking
from interactive_format.web.rendering import NOTE_MARK, to_messages
from interactive_format.store.store import Store

from ..conftest import TEST_ENV, free_port

COFFEE_WORDS = ("espresso", "coffee", "cup", "mug")


def chat(client, message="", image=None, audio=None, n=4):
    return client.predict(
        message=message,
        image=handle_file(str(image)) if image else None,
        audio=handle_file(str(audio)) if audio else None,
        candidates=n,
        temperature=0.7,
        max_new_tokens=24,
        api_name="/chat",
    )


def check_reply(result, n=4):
    assert result["reply"].strip()
    assert len(result["candidates"]) == n
    best = min(result["candidates"], key=lambda c: c["rank"])
    # the shown reply: the highest score among the candidates with the fewest defects (the reranker's rule)
    fewest = min(len(c["defects"]) for c in result["candidates"])
    peers = [c["score"] for c in result["candidates"] if len(c["defects"]) == fewest]
    assert best["text"] == result["reply"] and len(best["defects"]) == fewest and best["score"] == max(peers)
    assert all(c["j"] < 0 for c in result["candidates"] if c["text"])


def test_text_turn(client):
    result = chat(client, "Hello! Can you recommend a good book?")
    check_reply(result)
    assert result["transcript"] is None and result["caption"] is None


def test_gradio_client_needs_only_the_message(client):
    """The files and settings are optional: a caller who sends only text gets the app's defaults."""
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    optional = {e: [p["parameter_name"] for p in info[e]["parameters"] if p["parameter_has_default"]] for e in info}
    assert optional["/chat"] == ["image", "audio", "candidates", "temperature", "max_new_tokens"]
    assert optional["/chat_files"] == ["files", "candidates", "temperature", "max_new_tokens"]
    assert optional["/reply"] == ["image", "audio", "candidates", "temperature", "max_new_tokens", "user_id"]
    default_n = next(p["parameter_default"] for p in info["/chat"]["parameters"] if p["parameter_name"] == "candidates")
    result = client.predict(message="Hello! Can you recommend a good book?", api_name="/chat")
    check_reply(result)
    assert len(result["candidates"]) == default_n
    turn = client.predict(conversation_id="", message="Hi!", user_id=uuid.uuid4().hex, api_name="/reply")
    assert turn["conversation_id"] and turn["reply"].strip()
    with pytest.raises(AppError, match="Unknown user"):  # without user_id: told, not a crash
        client.predict(conversation_id="", message="Hi!", api_name="/reply")


def test_replies_are_ranked_by_the_shipped_discriminator_and_ranking(client, engine):
    reranker = engine.reranker
    d = reranker.discriminator
    assert d is not None and reranker.lam == d.meta["lam"]  # λ as chosen on validation (for --ranking off)
    assert reranker.ranking == load_ranking() and not reranker.uses_lam  # the weights fitted on the labels
    result = chat(client, "Do you like hiking?")
    again = [Candidate(c["text"], c["j"], finished=c["finished"]) for c in result["candidates"]]
    order = Reranker(d, reranker.lam, ranking=load_ranking()).rank("user: Do you like hiking?", again)
    assert [c["rank"] for c in result["candidates"]] == [order.index(i) + 1 for i in range(len(again))]
    for c, mine in zip(result["candidates"], again):
        if c["text"].strip():
            assert 0 < c["d"] < 1 and c["score"] == pytest.approx(mine.score, abs=1e-6)
    assert "likelihood only" not in engine.ranking_note


def test_picture_turn(client, media):
    result = chat(client, "What is in this picture?", image=media["coffee"])
    check_reply(result)
    assert any(w in result["caption"].lower() for w in COFFEE_WORDS)


def test_voice_turn(client, media):
    result = chat(client, audio=media["question"])
    check_reply(result)
    assert "weather" in result["transcript"].lower()


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("corrupt", "picture"),
        ("empty", "empty"),
        ("notes", "audio"),
        ("giant", "limit is 4,000"),
    ],
)
def test_bad_input_gives_clear_message_and_next_turn_works(client, media, kind, expected):
    with pytest.raises(AppError) as info:
        if kind == "giant":
            chat(client, "word " * 2000)
        elif kind == "corrupt":
            chat(client, "look", image=media["corrupt"])
        else:
            chat(client, audio=media[kind])
    assert expected in str(info.value).lower() or expected in str(info.value)
    assert "Traceback" not in str(info.value)
    check_reply(chat(client, "Thanks. Say hi.", n=2), n=2)


@pytest.fixture
def ui(engine):
    store = Store(":memory:")
    yield chat_ui(engine, store)
    store.close()


USER = uuid.uuid4().hex


def test_ui_history_survives_bad_turns(ui, media):
    chat = ui.history.new()
    conv = chat.conversation
    settings = (2, 0.7, 16, 0.5, USER)

    def turn(message):
        return list(ui.respond(message, chat, *settings))[-1]

    turn({"text": "Hi there!", "files": []})
    turn({"text": "", "files": [str(media["empty"])]})
    turn({"text": "what is it?", "files": [str(media["coffee"])]})
    turn({"text": "z" * 5000, "files": []})
    last = turn({"text": "Thank you!", "files": []})
    chatbot, _, state, status = last[:4]
    state = state.conversation
    roles = [t.role for t in state.turns]
    assert roles == ["user", "assistant", "user", "user", "assistant", "user", "user", "assistant"]
    assert state.turns[2].error and "empty" in state.turns[2].error
    assert state.turns[5].error and state.turns[5].text.endswith("[5,000 characters]")
    assert all(t.reply for t in state.turns if t.role == "assistant")
    # the prompt for the last turn carried the good turns only
    assert "z" * 50 not in str(conv.messages())
    text = str(chatbot)
    assert "⚠️" in text and "Picture tags" in text and "candidates, ranked" not in text  # they are in their panel
    assert last.candidate_list.startswith("#### 2 candidates, ranked")
    assert status == "Ready"
    saved = ui.history.open(owner_of(USER), chat.id).conversation  # every turn was saved, failed ones too
    assert [t.error for t in saved.turns] == [t.error for t in state.turns] and len(chat.turn_ids) == 8


def test_stream_yields_partial_replies(ui):
    chat = ui.history.new()
    conv = chat.conversation
    updates = list(ui.respond({"text": "Tell me a story about a cat.", "files": []}, chat, 2, 0.7, 24, 0.5, USER))
    pending = [u for u in updates if u.status.startswith("Sampling")]
    assert len(pending) >= 3  # the reply grew in steps
    lengths = [len(u.chat.conversation.turns[-1].reply) for u in pending]
    assert lengths[-1] >= lengths[0]
    messages = to_messages(conv)
    first = next(k for k, m in enumerate(messages) if m["role"] == "assistant")
    assert messages[first]["content"] == conv.turns[-1].reply  # the reply itself, no candidates bubble
    # after it at most the note that the streamed draft was replaced (the draft, cut off at 24 tokens, lost)
    assert all(NOTE_MARK in m["content"] for m in messages[first + 1 :]) and len(messages) <= first + 2


def test_empty_submission_adds_nothing(ui):
    chat = ui.history.new()
    with pytest.warns(UserWarning, match="Type a message"):
        updates = list(ui.respond({"text": "   ", "files": []}, chat, 2, 0.7, 16, 0.5, USER))
    assert chat.conversation.turns == [] and updates[-1].status == "Ready" and chat.id is None


def test_stop_keeps_the_partial_reply(ui):
    chat = ui.history.new()
    conv = chat.conversation
    turn = ui.respond({"text": "Write a long story about a dragon.", "files": []}, chat, 2, 0.7, 400, 0.5, USER)
    streamed = 0
    for update in turn:
        streamed += update.status.startswith("Sampling")
        if streamed == 4:
            ui.stop()
            break
    final = list(turn)[-1]
    reply = conv.turns[-1]
    assert final.status == "Ready" and "Stopped" in reply.notice
    assert reply.reply and all(len(c.text.split()) < 200 for c in reply.candidates)
    assert "Stopped" in str(final.chatbot)
    assert "Stopped" in ui.history.open(owner_of(USER), chat.id).conversation.turns[-1].notice  # saved as it was


def test_regenerate_and_edit_with_the_real_model(ui):
    chat = ui.history.new()
    list(ui.respond({"text": "Name a fruit.", "files": []}, chat, 2, 0.7, 12, 0.5, USER))
    view = list(ui.regenerate(chat, 2, 0.7, 12, 0.5, USER))[-1]
    reply = chat.conversation.turns[1]
    assert len(reply.candidates) == 4 and reply.chosen in (2, 3) and "/4**" in view.candidate
    assert all(c.d is not None and 0 < c.d < 1 for c in reply.candidates if c.text.strip())  # D scored them all
    edit = type("Edit", (), {"index": 0, "value": "Name a vegetable."})
    view = list(ui.edit(chat, 2, 0.7, 12, 0.5, USER, edit))[-1]
    assert chat.conversation.turns[0].text == "Name a vegetable." and chat.conversation.turns[1].reply.strip()
    assert view.branch.choices[0][0] == "2/2: “Name a vegetable.”"
    ui.older_version(chat, 0, USER)
    assert chat.conversation.turns[0].text == "Name a fruit." and len(chat.conversation.turns[1].candidates) == 4


def reply(client, user, text, conversation_id="", n=2):
    return client.predict(
        conversation_id=conversation_id,
        message=text,
        image=None,
        audio=None,
        candidates=n,
        temperature=0.7,
        max_new_tokens=8,
        user_id=user,
        api_name="/reply",
    )


def test_api_conversations_belong_to_their_user(client):
    alice, bob = uuid.uuid4().hex, uuid.uuid4().hex
    first = reply(client, alice, "Remember the number 42.")
    cid = first["conversation_id"]
    assert reply(client, alice, "What was it?", cid)["conversation_id"] == cid
    exported = client.predict(conversation_id=cid, user_id=alice, api_name="/conversation")
    assert [m["content"] for m in exported["conversations"][0]["messages"][::2]] == ["Remember the number 42.", "What was it?"]
    guesses = [
        {"conversation_id": cid, "user_id": bob, "api_name": "/conversation"},
        {"conversation_id": uuid.uuid4().hex, "user_id": alice, "api_name": "/conversation"},
        {"conversation_id": cid, "candidate": 1, "user_id": bob, "api_name": "/pick"},
    ]
    for guess in guesses:
        with pytest.raises(AppError, match="No such conversation"):
            client.predict(**guess)
    with pytest.raises(AppError, match="No such conversation"):
        reply(client, bob, "let me in", cid)
    with pytest.raises(AppError, match="Unknown user"):
        client.predict(conversation_id=cid, user_id="alice", api_name="/conversation")
    assert client.predict(user_id=bob, api_name="/conversations") == []
    assert [c["id"] for c in client.predict(user_id=alice, api_name="/conversations")] == [cid]


def test_eight_sessions_at_once_lose_nothing(server, store):
    users = [uuid.uuid4().hex for _ in range(8)]

    def session(user):
        client = Client(server, verbose=False)
        result = reply(client, user, f"Hello from {user[:6]}", n=2)
        client.predict(conversation_id=result["conversation_id"], candidate=1, user_id=user, api_name="/pick")
        return result["conversation_id"]

    with ThreadPoolExecutor(8) as pool:
        cids = list(pool.map(session, users))
    for user, cid in zip(users, cids, strict=True):
        conv = store.load(owner_of(user), cid)
        assert conv.turns[0].text == f"Hello from {user[:6]}" and conv.turns[1].chosen == 1
        assert len(conv.turns[1].candidates) == 2


@pytest.mark.slow
def test_restart_keeps_the_conversation_its_candidates_and_picks(engine, cache_dir, tmp_path, app_process):
    db = tmp_path / "chats.db"
    # not about warm-up: both starts skip it
    env = {**os.environ, "IF_DB": str(db), "IF_CACHE_DIR": str(cache_dir), "IF_PORT": str(free_port()),
           "IF_HOST": "127.0.0.1", "HF_HUB_OFFLINE": "1", "IF_WARMUP": "0", **TEST_ENV}
    user = uuid.uuid4().hex
    with app_process(env) as url:
        client = Client(url, verbose=False)
        first = reply(client, user, "Suggest a name for a cat.", n=3)
        cid = first["conversation_id"]
        other = next(i for i, c in enumerate(first["candidates"]) if i != first["chosen"] and c["text"].strip())
        client.predict(conversation_id=cid, candidate=other, user_id=user, api_name="/pick")
        before = client.predict(conversation_id=cid, user_id=user, api_name="/conversation")

    with app_process(env) as url:  # a new process on the same database
        client = Client(url, verbose=False)
        assert [c["id"] for c in client.predict(user_id=user, api_name="/conversations")] == [cid]
        after = client.predict(conversation_id=cid, user_id=user, api_name="/conversation")
        assert after == before
        message = after["conversations"][0]["messages"][1]
        assert message["chosen"] == other and [c["text"] for c in message["candidates"]] == [c["text"] for c in first["candidates"]]
        assert reply(client, user, "And a name for a dog?", cid)["conversation_id"] == cid  # it goes on
    store = Store(db)
    pairs = [json.loads(line) for line in store.preferences_jsonl(owner_of(user)).splitlines()]
    assert pairs and all(p["chosen"] == first["candidates"][other]["text"] for p in pairs)
    assert len(store.load(owner_of(user), cid).turns) == 4
    store.close()
