"""Conversations in the UI without models: saving, restarts, candidates, branches, feedback, owners, import/export.

The callbacks of `ChatUI` run against a fake generator (tests/fakes.py) and a real SQLite
store, so these tests are fast; tests/app/test_app.py repeats the key ones on the real models.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from interactive_format.web.api import owner_of
from interactive_format.engine.admission import Admission
from interactive_format.engine.ratelimit import RateLimiter
from interactive_format.web.api import ChatAPI
from interactive_format.web.callbacks import ChatUI, View, chat_ui
from interactive_format.dialogue import Attachment, Candidate, Turn
from interactive_format.errors import InputError
from interactive_format.engine.history import Chat, History
from interactive_format.web.rendering import render
from interactive_format.store.store import Store

from ..fakes import fake_engine
from ..store.test_store import rows

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script><b>bold</b>'


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "chats.db"


@pytest.fixture
def ui(db_path):
    store = Store(db_path)
    yield chat_ui(fake_engine(), store)
    store.close()


def new_user() -> str:
    return uuid.uuid4().hex


def start(ui, user):
    """The page-load callback's view (without the browser id)."""
    return View(*ui.load(user)[1:])


def say(ui, chat, user, text, files=None):
    """One finished turn; returns the last view."""
    return list(ui.respond({"text": text, "files": files or []}, chat, 3, 0.7, 16, 0.5, user))[-1]


def choices(view) -> list[tuple[str, str]]:
    return [tuple(c) for c in view.chats.choices]


def test_a_turn_is_saved_and_survives_a_restart_with_its_candidates_and_picks(ui, db_path):
    user = new_user()
    chat = start(ui, user).chat
    view = say(ui, chat, user, "Hello there")
    assert view.status == "Ready" and view.chat.id and len(view.chat.turn_ids) == 2
    assert choices(view) == [("Hello there", chat.id)] and view.chats.value == chat.id
    ui.next_candidate(chat)
    view = ui.pick(chat, user)
    assert chat.conversation.turns[1].chosen == 1
    ui.history.store.close()

    store = Store(db_path)  # a restarted app, same database
    again = chat_ui(fake_engine(), store)
    listed = start(again, user)
    assert choices(listed) == [("Hello there", chat.id)]
    opened = again.open(chat.id, listed.chat, user)
    turn = opened.chat.conversation.turns[1]
    assert [c.text for c in turn.candidates] == ["1.0 re: Hello there", "1.1 re: Hello there", "1.2 re: Hello there"]
    assert turn.chosen == 1 and opened.chatbot["value"][1]["content"] == "1.1 re: Hello there"
    assert [c.j for c in turn.candidates] == [-1.0, -1.1, -1.2]
    assert store.preferences_jsonl(owner_of(user)).count("\n") == 2
    say(again, opened.chat, user, "And then?")  # the conversation goes on after the restart
    assert [t.reply for t in again.open(chat.id, opened.chat, user).chat.conversation.turns][2:] == [
        "And then?",
        "1.0 re: And then?",  # a new process: the fake counts from 1 again
    ]
    store.close()


def test_browsing_candidates_and_picking_one_logs_preference_pairs(ui, db_path):
    user = new_user()
    chat = start(ui, user).chat
    view = say(ui, chat, user, "Tell me a joke")
    assert view.candidate.startswith("**Candidate 1/3**") and "· shown" in view.candidate
    assert view.candidate_bar["visible"] is True
    _, info, pick = ui.next_candidate(chat)
    assert "**Candidate 2/3**" in info and "not shown" in info and "1.1 re: Tell me a joke" in info
    assert pick.interactive is True
    _, info, _ = ui.previous_candidate(chat)
    _, info, _ = ui.previous_candidate(chat)  # wraps around to the last
    assert "**Candidate 3/3**" in info and "score -1.200" in info
    assert " J " not in info  # without D the score is J: one number, not the same one twice
    view = ui.pick(chat, user)
    assert chat.conversation.turns[1].reply == "1.2 re: Tell me a joke"
    assert view.chatbot["value"][1]["content"] == "1.2 re: Tell me a joke" and "· shown" in view.candidate
    assert view.pick.interactive is False
    pairs = [json.loads(line) for line in ui.history.store.preferences_jsonl(owner_of(user)).splitlines()]
    assert pairs == [
        {"context": "user: Tell me a joke", "chosen": "1.2 re: Tell me a joke", "rejected": "1.0 re: Tell me a joke"},
        {"context": "user: Tell me a joke", "chosen": "1.2 re: Tell me a joke", "rejected": "1.1 re: Tell me a joke"},
    ]
    say(ui, chat, user, "Another one")  # the picked reply is what the model saw next
    assert ui.engine.generator.prompts[-1][2] == {"role": "assistant", "content": "1.2 re: Tell me a joke"}
    assert rows(db_path, "SELECT candidate_idx, kind FROM feedback") == [(2, "pick")]


def test_the_page_runs_on_the_parts_it_is_given(db_path):
    """ChatUI makes none of its parts: the history and rate limit passed in (through ChatAPI) are the ones its
    turns save through and are counted by."""
    engine, store = fake_engine(), Store(db_path)
    history = History(store, engine.config.generation.system_prompt)
    api = ChatAPI(engine, history, RateLimiter(1), Admission(1, 30, 4), keep_uploads=True)
    ui, user = ChatUI(api), new_user()
    assert (ui.api, ui.history, ui.engine) == (api, history, engine)
    chat = start(ui, user).chat
    say(ui, chat, user, "Hello")
    assert [c.id for c in history.conversations(owner_of(user))] == [chat.id]  # saved through that history
    with pytest.warns(UserWarning, match="the limit is 1 a minute"):
        say(ui, chat, user, "Hello again")
    store.close()


def test_regenerate_adds_siblings_and_keeps_the_old_ones(ui, db_path):
    user = new_user()
    chat = start(ui, user).chat
    say(ui, chat, user, "Name a colour")
    view = list(ui.regenerate(chat, 2, 0.7, 16, 0.5, user))[-1]
    reply = chat.conversation.turns[1]
    assert [c.text for c in reply.candidates][3:] == ["2.0 re: Name a colour", "2.1 re: Name a colour"]
    assert len(reply.candidates) == 5 and reply.reply == "2.0 re: Name a colour"  # the best new one
    assert sorted(reply.ranked) == list(range(5)) and "/5**" in view.candidate
    assert len(chat.turn_ids) == 2  # no new turn, more candidates on the same one
    assert rows(db_path, "SELECT idx, seed FROM candidates ORDER BY idx") == [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2)]
    assert ui.history.open(owner_of(user), chat.id).conversation.turns[1].reply == "2.0 re: Name a colour"
    say(ui, chat, user, "z" * 5000)  # refused: the reply before it is still the last reply
    assert chat.conversation.turns[2].error and chat.last_reply() == 1
    list(ui.regenerate(chat, 1, 0.7, 16, 0.5, user))
    assert len(reply.candidates) == 6 and reply.reply == "3.0 re: Name a colour"
    assert ui.engine.generator.prompts[-1][-1] == {"role": "user", "content": "Name a colour"}
    assert len(ui.history.open(owner_of(user), chat.id).conversation.turns[1].candidates) == 6
    with pytest.warns(UserWarning, match="no reply to regenerate"):
        list(ui.regenerate(start(ui, user).chat, 2, 0.7, 16, 0.5, user))


def test_editing_a_message_branches_and_the_old_branch_stays_reachable(ui):
    user = new_user()
    chat = start(ui, user).chat
    say(ui, chat, user, "What is 2+2?")
    say(ui, chat, user, "And 3 < 4?")
    assert render(chat.conversation)[2][0]["content"] == "And 3 &lt; 4?"  # shown escaped (the candidates are not
    edit = SimpleNamespace(index=2, value="And 3 &lt; 5?", previous_value="And 3 &lt; 4?")  # chat messages)
    view = list(ui.edit(chat, 3, 0.7, 16, 0.5, user, edit))[-1]
    turns = chat.conversation.turns
    assert [t.reply for t in turns] == ["What is 2+2?", "1.0 re: What is 2+2?", "And 3 < 5?", "3.0 re: And 3 < 5?"]
    assert view.branch_bar["visible"] is True
    assert [tuple(c) for c in view.branch.choices] == [("2/2: “And 3 < 5?”", 2)] and view.branch.value == 2

    view = ui.older_version(chat, 2, user)
    assert [t.reply for t in chat.conversation.turns][2:] == ["And 3 < 4?", "2.0 re: And 3 < 4?"]
    assert view.branch.choices[0][0] == "1/2: “And 3 < 4?”"
    ui.newer_version(chat, 2, user)
    assert chat.conversation.turns[3].reply == "3.0 re: And 3 < 5?"
    assert len(ui.history.store.list(owner_of(user))) == 1  # one conversation, two branches

    first = SimpleNamespace(index=0, value="What is 2+3?", previous_value="What is 2+2?")
    list(ui.edit(chat, 3, 0.7, 16, 0.5, user, first))  # editing the first message: a second root
    assert [t.reply for t in chat.conversation.turns] == ["What is 2+3?", "4.0 re: What is 2+3?"]
    assert ui.view(chat, owner_of(user)).branch.choices[0][0] == "2/2: “What is 2+3?”"


def test_editing_refuses_replies_and_empty_text_and_keeps_the_chat(ui):
    user = new_user()
    chat = start(ui, user).chat
    say(ui, chat, user, "Hi")
    for index, value, reason in [
        (1, "I am the bot now", "Only your messages"),
        (0, "  ", "cannot be empty"),
        (9, "x", "no longer there"),
    ]:
        with pytest.warns(UserWarning, match=reason):
            view = list(ui.edit(chat, 3, 0.7, 16, 0.5, user, SimpleNamespace(index=index, value=value)))[-1]
        assert view.chatbot["value"][0]["content"] == "Hi" and len(chat.conversation.turns) == 2


def test_editing_a_caption_reruns_with_the_new_caption(ui):
    user = new_user()
    owner = owner_of(user)
    cid = ui.history.store.create(owner, "")
    picture = Turn("user", "what is it?", attachments=[Attachment("image", "", "a red cup", {"kind": "tags"})])
    u = ui.history.store.add_turn(owner, cid, picture)
    ui.history.store.add_turn(owner, cid, Turn("assistant", candidates=[Candidate("A cup.", -1.0)]), u)
    chat = ui.open(cid, start(ui, user).chat, user).chat
    shown = render(chat.conversation)
    assert shown[0][0]["content"] == "*Picture tags:* a red cup" and shown[0][1] == (0, "caption", 0)
    edit = SimpleNamespace(index=0, value="*Picture tags:* a <blue> mug")
    list(ui.edit(chat, 3, 0.7, 16, 0.5, user, edit))
    assert chat.conversation.turns[0].attachments[0].text == "a <blue> mug"
    assert ui.engine.generator.prompts[-1][-1]["content"] == "[The user sent a picture. a <blue> mug]\nwhat is it?"
    assert ui.view(chat, owner).branch.choices[0][0] == "2/2: “what is it?”"


def test_like_and_dislike_are_logged_for_the_shown_reply(ui, db_path):
    user = new_user()
    chat = start(ui, user).chat
    say(ui, chat, user, "Hi")
    ui.like(chat, user, SimpleNamespace(index=1, liked=True))
    ui.like(chat, user, SimpleNamespace(index=1, liked=False))  # changed to a dislike
    ui.like(chat, user, SimpleNamespace(index=0, liked=True))  # a user message: ignored
    assert ui.view(chat, owner_of(user)).chatbot["feedback_value"] == ["Dislike"]  # the latest, on the reply
    ui.like(chat, user, SimpleNamespace(index=1, liked=""))  # clicked again: taken back
    assert rows(db_path, "SELECT turn_id, candidate_idx, kind FROM feedback ORDER BY id") == [
        (chat.turn_ids[1], 0, "like"),
        (chat.turn_ids[1], 0, "dislike"),
        (chat.turn_ids[1], 0, "clear"),
    ]
    assert ui.open(chat.id, chat, user).chatbot["feedback_value"] == [None]

    say(ui, chat, user, "And again")
    ui.like(chat, user, SimpleNamespace(index=3, liked=True))  # messages: Hi, reply, And again, reply
    reopened = ui.open(chat.id, chat, user)  # e.g. after a reload: the like is shown on the second reply only
    assert reopened.chatbot["feedback_value"] == [None, "Like"]
    ui.browse(reopened.chat, +1)
    ui.pick(reopened.chat, user)  # another candidate shown: the like was for the old one
    assert ui.view(reopened.chat, owner_of(user)).chatbot["feedback_value"] == [None, None]


def test_two_users_never_see_each_others_conversations(ui):
    alice, bob = new_user(), new_user()
    alice_chat = start(ui, alice).chat
    say(ui, alice_chat, alice, "my secret plan")
    bob_view = start(ui, bob)
    assert choices(bob_view) == []
    with pytest.warns(UserWarning, match="No such conversation"):
        view = ui.open(alice_chat.id, bob_view.chat, bob)
    assert view.chatbot is not None and bob_view.chat.id is None and isinstance(view.chatbot, type(gr.skip()))
    forged = Chat(copy.deepcopy(alice_chat.conversation), alice_chat.id, list(alice_chat.turn_ids), browse=1)
    for attempt in (  # bob guessed every id
        lambda: ui.rename(forged, "mine", bob),
        lambda: ui.delete(forged, bob),
        lambda: ui.pick(forged, bob),
        lambda: ui.older_version(forged, 0, bob),
    ):
        with pytest.warns(UserWarning, match="No such conversation"):
            attempt()
    with pytest.warns(UserWarning, match="No such conversation"):
        assert ui.export_chat(forged, bob) is None
    with pytest.raises(gr.Error, match="No such conversation"):
        ui.api.conversation(alice_chat.id, bob)
    assert ui.api.conversation(alice_chat.id, alice)["conversations"][0]["messages"][0]["content"] == "my secret plan"
    assert [c["title"] for c in ui.api.conversations(alice)] == ["my secret plan"] and ui.api.conversations(bob) == []
    assert ui.history.store.list(owner_of(alice))[0].title == "my secret plan"


def test_owner_comes_from_the_oauth_profile_or_a_well_formed_browser_id():
    user = new_user()
    assert owner_of(user) == f"browser:{user}"
    assert (
        owner_of(user, gr.OAuthProfile({"name": "A", "preferred_username": "alice", "profile": "", "picture": ""}))
        == "hf:alice"
    )
    for bad in (None, "", "hf:alice", "browser:" + user, user.upper(), user + "0", {"id": user}):
        with pytest.raises(InputError, match="Unknown user"):
            owner_of(bad)


def test_load_gives_a_new_browser_an_id_and_keeps_a_known_one(ui):
    made = ui.load(None)[0]
    assert len(made) == 32 and owner_of(made)
    assert ui.load("not-an-id")[0] != made
    assert ui.load(made)[0] == made


def test_export_import_round_trip_and_preference_pairs_file(ui):
    user, other = new_user(), new_user()
    chat = start(ui, user).chat
    say(ui, chat, user, "Hi")
    ui.next_candidate(chat)
    ui.pick(chat, user)
    path = ui.export_chat(chat, user)
    exported = json.loads(Path(path).read_text())
    assert exported["format"] == "interactive-format/conversations" and exported["version"] == 1
    assert exported["conversations"][0]["messages"][1]["chosen"] == 1

    view = ui.import_chats(path, start(ui, other).chat, other)
    assert choices(view) == [("Hi", view.chat.id)] and view.chat.id != chat.id
    assert view.chatbot == ui.open(chat.id, chat, user).chatbot
    assert json.loads(Path(ui.export_all(other)).read_text())["conversations"][0]["title"] == "Hi"
    pairs = Path(ui.export_pairs(user)).read_text().splitlines()
    assert [json.loads(p)["chosen"] for p in pairs] == ["1.1 re: Hi", "1.1 re: Hi"]
    with pytest.warns(UserWarning, match="Send a message first"):
        assert ui.export_chat(ui.history.new(), user) is None


def hostile_export() -> dict:
    message = {"role": "user", "content": HOSTILE, "attachments": [{"kind": "image", "text": HOSTILE}]}
    reply = {"role": "assistant", "content": "", "candidates": [{"text": HOSTILE, "j": -1.0}], "notice": HOSTILE}
    conversation = {"title": HOSTILE, "system_prompt": HOSTILE, "messages": [message, reply]}
    return {"format": "interactive-format/conversations", "version": 1, "conversations": [conversation]}


def test_imported_html_is_shown_as_text(ui, tmp_path):
    user = new_user()
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(hostile_export()))
    view = ui.import_chats(str(path), start(ui, user).chat, user)
    shown = json.dumps(view.chatbot) + view.candidate
    assert "<img" not in shown and "<script" not in shown and "<b>" not in shown
    assert "&lt;img src=x onerror=" in shown and "&lt;script&gt;alert(2)&lt;/script&gt;" in shown
    assert choices(view) == [(" ".join(HOSTILE.split()), view.chat.id)]  # a plain label, escaped by the browser
    assert view.chat.conversation.turns[0].text == HOSTILE  # stored verbatim


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"<html><body>not json</body></html>", "not valid JSON"),
        (json.dumps({"format": "llm/logs", "conversations": []}).encode(), "format must be"),
        (
            json.dumps(
                {**hostile_export(), "conversations": [{"messages": [{"role": "<b>x</b>", "content": ""}]}]}
            ).encode(),
            "conversations[0].messages[0].role must be",
        ),
        (b"{" + b" " * (50 * 1024 * 1024) + b"}", "too large (50.0 MB); the limit is 20 MB"),
    ],
    ids=["html", "wrong-schema", "html-role", "50MB"],
)
def test_bad_import_files_are_refused_whole_with_a_clear_message(ui, tmp_path, content, reason):
    user = new_user()
    path = tmp_path / "upload.json"
    path.write_bytes(content)
    chat = start(ui, user).chat
    with pytest.warns(UserWarning) as warned:
        view = ui.import_chats(str(path), chat, user)
    message = str(warned[0].message)
    assert reason in message and "<" not in message and "Traceback" not in message
    assert view.chat is chat and ui.history.store.list(owner_of(user)) == []


def test_eight_sessions_writing_at_once_lose_nothing(ui, db_path):
    users = [new_user() for _ in range(8)]
    barrier = threading.Barrier(8)

    def session(user):
        chat = start(ui, user).chat
        barrier.wait()
        for i in range(3):
            say(ui, chat, user, f"{user[:4]} message {i}")
            ui.next_candidate(chat)
            ui.pick(chat, user)
        return chat.id

    with ThreadPoolExecutor(8) as pool:
        cids = list(pool.map(session, users))
    assert len(set(cids)) == 8
    for user, cid in zip(users, cids, strict=True):
        turns = ui.history.open(owner_of(user), cid).conversation.turns
        assert [t.text for t in turns[::2]] == [f"{user[:4]} message {i}" for i in range(3)]
        assert all(t.chosen == 1 and len(t.candidates) == 3 for t in turns[1::2])
    assert rows(db_path, "SELECT count(*) FROM turns") == [(48,)]
    assert rows(db_path, "SELECT count(*) FROM preferences") == [(48,)]  # 8 users × 3 picks × 2 rejected


def test_a_title_the_app_gave_is_listed_in_the_pages_language_and_a_users_words_as_they_are(ui):
    """A first message with only a voice clip (or a picture) is titled by the app ("Voice message", stored in
    English like every stored text): a Chinese page lists it in Chinese; a chat the user titled "Done" stays so."""
    user = new_user()
    owner = owner_of(user)
    voice = say(ui, start(ui, user).chat, user, "hello").chat
    ui.history.rename(owner, voice, "Voice message")
    done = say(ui, start(ui, user).chat, user, "Done").chat
    voice.language = "zh"
    view = ui.view(voice, owner)
    assert sorted(choices(view)) == sorted([("语音消息", voice.id), ("Done", done.id)]) and view.title == "语音消息"
    assert sorted(choices(ui.view(done, owner))) == sorted([("Voice message", voice.id), ("Done", done.id)])
