"""The conversation store: round trips, restarts, owners, branches, picks, import/export, threads, migrations."""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from interactive_format.dialogue import Attachment, Candidate, Turn
from interactive_format.errors import InputError
from interactive_format.store.migrations import MIGRATIONS, connect, migrate
from interactive_format.store.store import NotFound, Store

INF = float("-inf")
TABLES = ("turns", "candidates", "feedback", "preferences")


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "chats.db"


@pytest.fixture
def store(db_path):
    s = Store(db_path)
    yield s
    s.close()


def rows(path, sql, *args):
    """Rows straight from the file, as plain tuples."""
    db = sqlite3.connect(path)
    try:
        return [tuple(r) for r in db.execute(sql, args)]
    finally:
        db.close()


def user(text="hi", **kw):
    return Turn("user", text, **kw)


def assistant(*texts, scores=None, **kw):
    scores = scores or [-1.0 - i for i in range(len(texts))]
    return Turn("assistant", candidates=[Candidate(t, s, 0.5, s) for t, s in zip(texts, scores, strict=True)], **kw)


def chat(store, owner="alice", n=2):
    """A conversation of n user/assistant pairs; returns (cid, turn ids)."""
    cid = store.create(owner, "Be brief.")
    ids, parent = [], None
    for i in range(n):
        for turn in (user(f"q{i}"), assistant(f"a{i}", f"b{i}")):
            parent = store.add_turn(owner, cid, turn, parent)
            ids.append(parent)
    return cid, ids


def test_round_trip_keeps_attachments_candidates_scores_and_minus_inf(store, db_path):
    cid = store.create("alice", "Be brief.", title="Coffee")
    question = user("what is this?", attachments=[Attachment("image", "/tmp/a.png", "espresso", {"kind": "tags"})])
    reply = Turn(
        "assistant",
        candidates=[Candidate("A coffee.", -1.25, 0.75, 0.5), Candidate("", -2.0, None, INF, finished=False)],
        chosen=0,
        notice="1 oldest message(s) were left out.",
        meta={"seed": 7, "model": "embedded:smollm2-135m", "ranked": [0, 1], "ms": 812},
    )
    failed = user("x" * 10, error="too long")
    parent = None
    for turn in (question, reply, failed):
        parent = store.add_turn("alice", cid, turn, parent)

    conv, ids = store.load_with_ids("alice", cid)
    assert conv.system_prompt == "Be brief."
    assert conv.turns == [question, reply, failed]
    assert conv.turns[1].candidates[1].score == INF and conv.turns[1].candidates[1].d is None
    assert conv.messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "[The user sent a picture. espresso]\nwhat is this?"},
        {"role": "assistant", "content": "A coffee."},
    ]
    assert [tid for tid, _ in store.path("alice", cid)] == ids
    assert rows(db_path, "SELECT idx, text, j, d, score, finished, seed, model FROM candidates ORDER BY idx") == [
        (0, "A coffee.", -1.25, 0.75, 0.5, 1, 7, "embedded:smollm2-135m"),
        (1, "", -2.0, None, None, 0, 7, "embedded:smollm2-135m"),  # -inf is stored as NULL
    ]
    assert rows(db_path, "SELECT title, active_leaf FROM conversations") == [("Coffee", ids[-1])]
    assert rows(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_memory_database_works_across_threads():
    store = Store(":memory:")
    cid, _ = chat(store)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(store.load("alice", cid)))
    thread.start()
    thread.join()
    assert [t.reply for t in seen[0].turns] == ["q0", "a0", "q1", "a1"]
    store.close()


def test_restart_finds_conversation_candidates_and_picks(db_path):
    first = Store(db_path)
    cid, ids = chat(first)
    first.pick("alice", ids[1], 1, context="user: q0")
    first.feedback("alice", ids[3], 0, "like")
    first.close()

    second = Store(db_path)  # a restarted app
    assert [(c.id, c.turns) for c in second.list("alice")] == [(cid, 4)]
    conv = second.load("alice", cid)
    assert conv.turns[1].chosen == 1 and conv.turns[1].reply == "b0"
    assert [c.text for c in conv.turns[3].candidates] == ["a1", "b1"]
    assert second.preferences_jsonl("alice") == '{"context": "user: q0", "chosen": "b0", "rejected": "a0"}\n'
    assert rows(db_path, "SELECT turn_id, candidate_idx, kind FROM feedback ORDER BY id") == [
        (ids[1], 1, "pick"),
        (ids[3], 0, "like"),
    ]
    second.close()


def test_owners_cannot_see_open_change_or_export_each_others_conversations(store, db_path):
    cid, ids = chat(store, "alice")
    with pytest.raises(NotFound) as missing:
        store.load("bob", "0" * 32)
    attempts = [
        lambda: store.load("bob", cid),
        lambda: store.path("bob", cid),
        lambda: store.path("alice", cid, "0" * 32),
        lambda: store.rename("bob", cid, "mine now"),
        lambda: store.delete("bob", cid),
        lambda: store.export("bob", cid),
        lambda: store.add_turn("bob", cid, user()),
        lambda: store.add_turn("alice", store.create("bob", ""), user(), parent_id=ids[0]),  # alice's turn
        lambda: store.set_active_leaf("bob", cid, ids[0]),
        lambda: store.update_turn("bob", ids[1], assistant("x")),
        lambda: store.edit_user_turn("bob", ids[0], "x"),
        lambda: store.pick("bob", ids[1], 0, ""),
        lambda: store.feedback("bob", ids[1], 0, "dislike"),
        lambda: store.children("bob", ids[0]),
        lambda: store.siblings("bob", ids[0]),
        lambda: store.leaf("bob", ids[0]),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound) as refused:
            attempt()
        assert str(refused.value) == str(missing.value) == "No such conversation."
    assert isinstance(missing.value, InputError)
    assert [c.title for c in store.list("bob")] == ["New chat"]  # only the one bob made above
    assert store.export("bob")["conversations"][0]["messages"] == []
    assert store.preferences_jsonl("bob") == ""
    assert rows(db_path, "SELECT owner, title FROM conversations WHERE id = ?", cid) == [("alice", "New chat")]
    assert len(store.load("alice", cid).turns) == 4
    assert rows(db_path, "SELECT count(*) FROM feedback") == [(0,)]


def test_rename_list_order_and_delete_cascades(store, db_path):
    old, old_ids = chat(store)
    new, _ = chat(store)
    assert [c.id for c in store.list("alice")] == [new, old]
    store.rename("alice", old, "  Trip\n to   Rome  ")
    store.add_turn("alice", old, user("more"), old_ids[-1])
    assert [(c.id, c.title, c.turns) for c in store.list("alice")] == [(old, "Trip to Rome", 5), (new, "New chat", 4)]
    store.rename("alice", old, "x" * 500)
    assert store.list("alice")[0].title == "x" * 200
    with pytest.raises(InputError, match="title cannot be empty"):
        store.rename("alice", old, " \n ")

    store.pick("alice", old_ids[1], 0, "ctx")
    store.delete("alice", old)
    assert [c.id for c in store.list("alice")] == [new]
    left = {table: rows(db_path, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}
    assert left == {"turns": 4, "candidates": 4, "feedback": 0, "preferences": 0}  # only the other chat's


def test_edit_makes_a_branch_and_the_old_branch_stays_reachable(store, db_path):
    cid, (u0, a0, u1, a1) = chat(store)
    edited = store.edit_user_turn("alice", u1, "q1, said better")
    assert [t.text or t.reply for t in store.load("alice", cid).turns] == ["q0", "a0", "q1, said better"]
    assert store.siblings("alice", u1) == store.children("alice", a0) == [u1, edited]
    assert rows(db_path, "SELECT parent_id, edited_from FROM turns WHERE id = ?", edited) == [(a0, u1)]

    old = store.path("alice", cid, a1)
    assert [tid for tid, _ in old] == [u0, a0, u1, a1] and old[-1][1].reply == "a1"
    assert store.leaf("alice", u1) == a1 and store.leaf("alice", edited) == edited
    store.set_active_leaf("alice", cid, store.leaf("alice", u1))
    assert [t.reply for t in store.load("alice", cid).turns] == ["q0", "a0", "q1", "a1"]

    first = store.edit_user_turn("alice", u0, "a new start")  # editing the first turn: a second root
    assert store.siblings("alice", u0) == [u0, first]
    assert store.path("alice", cid) == [(first, user("a new start"))]
    with pytest.raises(InputError, match="Only your own messages"):
        store.edit_user_turn("alice", a0, "rewrite the bot")


def test_editing_a_caption_keeps_the_picture_and_changes_only_its_text(store):
    cid = store.create("alice", "")
    picture = Attachment("image", "/tmp/a.png", "a cup", {"kind": "tags"})
    u = store.add_turn("alice", cid, user("what is it?", attachments=[picture]))
    edited = store.edit_user_turn("alice", u, "what is it?", {0: "a mug"})
    mug = Attachment("image", "/tmp/a.png", "a mug", {"kind": "tags"})
    assert store.path("alice", cid) == [(edited, user("what is it?", attachments=[mug]))]
    assert store.path("alice", cid, u)[0][1].attachments == [picture]
    with pytest.raises(InputError, match="no longer there"):
        store.edit_user_turn("alice", u, "x", {1: "a second picture"})


def test_secrets_are_made_once_per_database(db_path):
    first = Store(db_path)
    key = first.secret("browser_state")
    assert len(key) >= 32 and first.secret("browser_state") == key and first.secret("other") != key
    first.close()
    second = Store(db_path)
    assert second.secret("browser_state") == key
    second.close()


def test_import_file_refuses_a_large_file_before_reading_it(store, tmp_path, monkeypatch):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # 50 MB of holes: cheap to make
    with monkeypatch.context() as m, pytest.raises(InputError, match=r"too large \(50.0 MB\); the limit is 20 MB"):
        m.setattr(type(big), "read_bytes", lambda self: pytest.fail("read a file over the limit"))
        store.import_file("alice", big)
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(good_export()))
    assert len(store.import_file("alice", ok)) == 1


def test_pick_logs_one_preference_pair_per_other_non_empty_reply(store, db_path):
    cid = store.create("alice", "")
    u = store.add_turn("alice", cid, user("tell a joke"))
    a = store.add_turn("alice", cid, assistant("good", "bad", "", "good", "worse"), u)
    store.pick("alice", a, 0, "user: tell a joke")
    assert store.load("alice", cid).turns[1].chosen == 0
    assert rows(db_path, "SELECT turn_id, context, chosen, rejected FROM preferences ORDER BY id") == [
        (a, "user: tell a joke", "good", "bad"),
        (a, "user: tell a joke", "good", "worse"),
    ]
    store.pick("alice", a, 2, "user: tell a joke")  # an empty reply teaches nothing
    assert rows(db_path, "SELECT count(*) FROM preferences") == [(2,)]
    lines = [json.loads(line) for line in store.preferences_jsonl("alice").splitlines()]
    assert lines[1] == {"context": "user: tell a joke", "chosen": "good", "rejected": "worse"}

    store.feedback("alice", a, 1, "dislike")
    assert rows(db_path, "SELECT candidate_idx, kind FROM feedback ORDER BY id") == [
        (0, "pick"),
        (2, "pick"),
        (1, "dislike"),
    ]
    with pytest.raises(InputError, match="no longer there"):
        store.pick("alice", a, 5, "")
    with pytest.raises(InputError, match="no longer there"):
        store.feedback("alice", u, 0, "like")  # a user turn has no candidates
    with pytest.raises(ValueError, match="feedback kind"):
        store.feedback("alice", a, 0, "love")


def test_update_turn_rewrites_and_appends_candidates_keeping_their_seeds(store, db_path):
    cid = store.create("alice", "")
    u = store.add_turn("alice", cid, user())
    streaming = Turn("assistant", candidates=[Candidate("Hel", -0.5)])  # no seed yet
    a = store.add_turn("alice", cid, streaming, u)
    done = assistant("Hello!", "Hi.", meta={"seed": 1, "model": "m"})
    store.update_turn("alice", a, done)
    regenerated = assistant("Hello!", "Hi.", "Hey there.", meta={"seed": 2, "model": "m"}, chosen=2)
    store.update_turn("alice", a, regenerated)
    assert rows(db_path, "SELECT idx, text, seed FROM candidates ORDER BY idx") == [
        (0, "Hello!", 1),
        (1, "Hi.", 1),
        (2, "Hey there.", 2),
    ]
    assert store.load("alice", cid).turns[1] == regenerated
    with pytest.raises(ValueError, match="cannot change"):
        store.update_turn("alice", a, user())


def good_export(**conversation):
    return {
        "format": "interactive-format/conversations",
        "version": 1,
        "conversations": [
            {
                "title": "t",
                "system_prompt": "",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "", "chosen": 0, "candidates": [{"text": "hello", "j": -1.0}]},
                    {"role": "user", "content": "bye"},
                ],
                **conversation,
            }
        ],
    }


def broken(path, value):
    """good_export() with one field (a list of keys) replaced, or removed when value is ...."""
    data = good_export()
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        (broken(["format"], "llm/logs"), "format must be 'interactive-format/conversations'"),
        (broken(["version"], 2), "version must be 1"),
        (broken(["version"], True), "version must be 1"),
        (broken(["conversations"], ...), "conversations is missing"),
        (broken(["conversations"], {"a": 1}), "conversations must be a list"),
        (broken(["conversations", 0], "chat"), "conversations[0] must be an object"),
        (broken(["conversations", 0, "messages"], ...), "conversations[0].messages is missing"),
        (
            broken(["conversations", 0, "messages", 1, "content"], ...),
            "conversations[0].messages[1].content is missing",
        ),
        (broken(["conversations", 0, "messages", 0, "content"], 5), "messages[0].content must be a string"),
        (broken(["conversations", 0, "messages", 2, "role"], "system"), "conversations[0].messages[2].role must be"),
        (broken(["conversations", 0, "messages", 2, "role"], None), "messages[2].role must be a string"),
        (broken(["conversations", 0, "title"], ["x"]), "conversations[0].title must be a string"),
        (broken(["conversations", 0, "messages", 1, "chosen"], 3), "messages[1].chosen must be the index"),
        (broken(["conversations", 0, "messages", 1, "candidates", 0, "j"], "high"), "candidates[0].j must be a number"),
        (broken(["conversations", 0, "messages", 1, "candidates", 0, "finished"], 1), "finished must be true or false"),
        (broken(["conversations", 0, "messages", 1, "candidates", 0, "text"], ...), "candidates[0].text is missing"),
        (broken(["conversations", 0, "messages", 0, "attachments"], [{"kind": "exe"}]), "attachments[0].kind must be"),
        (broken(["conversations", 0, "messages", 0, "content"], "x" * 200_001), "content is too long"),
        (good_export(turns=[{"id": "a", "parent_id": "zz", "role": "user"}]), "turns[0].parent_id must be the id"),
        (good_export(turns=[{"id": "a", "role": "user"}, {"id": "a", "role": "user"}]), "turns[1].id is used"),
        (good_export(turns=[{"id": "a", "role": "user"}], active_leaf="b"), "active_leaf must be the id"),
        ([], "not a conversation export"),
        (b"\xff\xfe{not json", "not valid JSON"),
        ('{"format": NaN}', "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        (b" " * (20 * 1024 * 1024 + 1), "The file is too large (20.0 MB); the limit is 20 MB"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 60 else "",
)
def test_import_refuses_malformed_files_and_writes_nothing(store, data, message):
    with pytest.raises(InputError) as refused:
        store.import_("alice", data)
    assert message in str(refused.value)
    assert store.list("alice") == []


def test_import_size_limit_is_an_argument(store):
    data = json.dumps(good_export())
    with pytest.raises(InputError, match="too large"):
        store.import_("alice", data, max_bytes=len(data) - 1)
    assert len(store.import_("alice", data, max_bytes=len(data))) == 1


def test_imported_text_is_stored_verbatim_as_plain_strings_and_paths_are_dropped(store):
    html = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    data = good_export(title=f"<b>{html}</b>", system_prompt=html)
    message = data["conversations"][0]["messages"][0]
    message.update(content=html, attachments=[{"kind": "image", "path": "/etc/passwd", "text": html}])
    (cid,) = store.import_("alice", json.dumps(data).encode())
    conv = store.load("alice", cid)
    first = conv.turns[0]
    assert conv.system_prompt == html and first.text == html and first.attachments[0].text == html
    assert type(first.text) is str and first.attachments[0].path == ""
    assert store.list("alice")[0].title == f"<b>{html}</b>"


def tree_shape(conversation):
    """An exported conversation without ids or times: parents and leaf as turn indices."""
    index = {t["id"]: i for i, t in enumerate(conversation["turns"])}
    turns = [
        {**t, "id": i, "parent_id": index.get(t["parent_id"]), "edited_from": index.get(t["edited_from"]), "created": 0}
        for i, t in enumerate(conversation["turns"])
    ]
    return {
        **{k: conversation[k] for k in ("title", "system_prompt", "created", "messages")},
        "turns": turns,
        "active_leaf": index[conversation["active_leaf"]],
    }


def test_export_import_round_trip_keeps_the_tree_scores_seeds_and_picks(store, db_path):
    cid, (_, a0, u1, _) = chat(store)
    store.update_turn("alice", a0, assistant("a0", "", scores=[-1.0, INF], meta={"seed": 3, "model": "m"}))
    store.pick("alice", a0, 0, "user: q0")
    store.edit_user_turn("alice", u1, "q1 again")
    exported = store.export("alice", cid)
    text = json.dumps(exported, allow_nan=False)  # strict JSON: -inf went out as null

    (copy,) = store.import_("bob", text)
    assert copy != cid and {c.id for c in store.list("bob")} == {copy}
    assert store.load("bob", copy) == store.load("alice", cid)
    again = store.export("bob", copy)["conversations"][0]
    assert tree_shape(again) == tree_shape(exported["conversations"][0])
    assert not {t["id"] for t in again["turns"]} & {t["id"] for t in exported["conversations"][0]["turns"]}
    per_owner = "SELECT owner, count(*) FROM turns JOIN conversations c ON c.id = conversation_id GROUP BY owner"
    assert rows(db_path, per_owner) == [("alice", 5), ("bob", 5)]
    assert store.export("alice")["conversations"][0]["messages"][1]["candidates"][1] == {
        "text": "",
        "j": None,
        "d": 0.5,
        "score": None,
        "finished": True,
        "seed": 3,
        "model": "m",
    }


def test_export_all_and_messages_only_import(store):
    chat(store, n=1)
    chat(store, n=2)
    everything = store.export("alice")
    assert everything["format"] == "interactive-format/conversations" and everything["version"] == 1
    assert [len(c["messages"]) for c in everything["conversations"]] == [4, 2]  # newest first
    for conv in everything["conversations"]:
        del conv["turns"], conv["active_leaf"]  # an OpenAI-style file: messages only
    ids = store.import_("carol", everything)
    assert [len(store.load("carol", cid).turns) for cid in ids] == [4, 2]
    assert store.load("carol", ids[0]).turns[1].candidates[1].text == "b0"


def test_concurrent_writers_lose_nothing(db_path):
    store = Store(db_path)
    other = Store(db_path)  # a second connection to the same file, as a second process would have

    def own_owner(n):
        for _ in range(3):
            chat(store if n % 2 else other, owner=f"user{n}", n=2)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(own_owner, range(8)))
    assert rows(db_path, "SELECT count(*) FROM conversations") == [(24,)]
    assert all(len(store.list(f"user{n}")) == 3 for n in range(8))

    cid = store.create("dana", "")

    def same_conversation(n):
        parent = None
        for i in range(25):
            turn = user(f"{n}-{i}") if i % 2 == 0 else assistant(f"{n}-{i}")
            parent = (store if n % 2 else other).add_turn("dana", cid, turn, parent)
        return parent

    with ThreadPoolExecutor(8) as pool:
        leaves = list(pool.map(same_conversation, range(8)))
    assert rows(db_path, "SELECT count(*) FROM turns WHERE conversation_id = ?", cid) == [(200,)]
    assert rows(
        db_path, "SELECT count(*) FROM candidates c JOIN turns t ON t.id = c.turn_id WHERE conversation_id = ?", cid
    ) == [(96,)]
    assert all(len(store.path("dana", cid, leaf)) == 25 for leaf in leaves)
    assert store.list("dana")[0].turns == 200
    store.close()
    other.close()


def test_migrations_run_once_and_an_older_database_gets_the_new_ones(db_path, tmp_path):
    Store(db_path).close()
    names = [fn.__name__ for fn in MIGRATIONS]
    applied = rows(db_path, "SELECT name, applied FROM _migrations ORDER BY rowid")
    assert [name for name, _ in applied] == names == [
        "m001_conversations",
        "m002_feedback",
        "m003_settings",
        "m004_feedback_clear",
        "m005_turns_ranked",
        "m006_candidate_signals",
    ]
    Store(db_path).close()  # reopening applies nothing again
    assert rows(db_path, "SELECT name, applied FROM _migrations ORDER BY rowid") == applied

    old = tmp_path / "old.db"
    db = connect(old)
    assert migrate(db, MIGRATIONS[:1]) == ["m001_conversations"]  # as left by an older release
    db.execute("INSERT INTO conversations VALUES ('c1', 'alice', 'Old chat', '', 1.0, 1.0, NULL)")
    db.close()
    store = Store(old)
    assert rows(old, "SELECT name FROM _migrations ORDER BY rowid") == [(n,) for n in names]
    assert [c.title for c in store.list("alice")] == ["Old chat"]
    u = store.add_turn("alice", "c1", user())
    store.pick("alice", store.add_turn("alice", "c1", assistant("x", "y"), u), 1, "")  # the new tables work
    assert rows(old, "SELECT chosen, rejected FROM preferences") == [("y", "x")]
    store.close()


def test_feedback_rows_survive_the_clear_migration_and_ratings_read_them(tmp_path):
    path = tmp_path / "before-m004.db"
    m004 = MIGRATIONS.pop(3)  # a database made by the release before m004, with a like in it
    try:
        store = Store(path)
        u = store.add_turn("alice", store.create("alice", "", "Chat"), user())
        a = store.add_turn("alice", store.list("alice")[0].id, assistant("x", "y"), u)
        store.feedback("alice", a, 0, "like")
        store.close()
    finally:
        MIGRATIONS.insert(3, m004)
    assert "'clear'" not in rows(path, "SELECT sql FROM sqlite_master WHERE name = 'feedback'")[0][0]

    store = Store(path)  # m004 rebuilds the table
    assert rows(path, "SELECT candidate_idx, kind FROM feedback") == [(0, "like")]
    assert store.ratings("alice", [u, a]) == {a: "like"}
    store.feedback("alice", a, 0, "clear")
    assert store.ratings("alice", [u, a]) == {}
    store.feedback("alice", a, 0, "dislike")
    assert store.ratings("alice", [a]) == {a: "dislike"} and store.ratings("bob", [a]) == {}
    store.pick("alice", a, 1, "")  # the rating was of the reply shown before
    assert store.ratings("alice", [a]) == {}
    store.close()


def test_a_failing_migration_is_rolled_back_and_retried_next_time(tmp_path):
    calls = []

    def m001_table(db):
        calls.append("m001")
        db.execute("CREATE TABLE a (x)")

    def m002_broken(db):
        calls.append("m002")
        db.execute("CREATE TABLE b (x)")
        raise RuntimeError("half done")

    db = connect(tmp_path / "m.db")
    with pytest.raises(RuntimeError):
        migrate(db, [m001_table, m002_broken])
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")] == [
        "_migrations",
        "a",
    ]
    assert migrate(db, [m001_table]) == []
    assert calls == ["m001", "m002"]
    db.close()
