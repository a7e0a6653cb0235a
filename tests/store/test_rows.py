"""The turns table's one column list, and `ranked` as a column of its own."""

from __future__ import annotations

import dataclasses
import json

import pytest

from interactive_format.dialogue import Attachment, Candidate, Turn
from interactive_format.errors import InputError
from interactive_format.store.migrations import MIGRATIONS, connect, migrate
from interactive_format.store.rows import TURN_COLUMNS
from interactive_format.store.store import Store

from .test_store import rows


def test_every_column_is_a_turns_column_and_a_turn_field(tmp_path):
    Store(tmp_path / "c.db").close()
    table = {r[1] for r in rows(tmp_path / "c.db", "PRAGMA table_info(turns)")}
    fields = {f.name for f in dataclasses.fields(Turn)}
    names = [c.name for c in TURN_COLUMNS]
    assert set(names) <= table and set(names) <= fields
    assert fields - set(names) == {"candidates"}  # the candidates have a table of their own


def test_every_column_survives_save_update_load_and_export_import(tmp_path):
    store = Store(tmp_path / "c.db")
    cid = store.create("alice", "", "Chat")
    u = store.add_turn(
        "alice", cid, Turn("user", "hi", attachments=[Attachment("image", "", "a cup", {"kind": "tags"})])
    )
    reply = Turn("assistant", candidates=[Candidate("a", -1.0), Candidate("b", -2.0)], meta={"seed": 3})
    a = store.add_turn("alice", cid, reply, u)
    full = Turn(
        "assistant",
        candidates=[Candidate("a", -1.0), Candidate("b", -2.0)],
        chosen=1,
        error=None,
        notice="a notice",
        meta={"seed": 3, "model": "m"},
        ranked=[1, 0],
    )
    store.update_turn("alice", a, full)
    assert store.load("alice", cid).turns[1] == full
    assert rows(tmp_path / "c.db", "SELECT ranked, meta FROM turns WHERE id = ?", a) == [
        ("[1, 0]", '{"seed": 3, "model": "m"}')
    ]
    exported = store.export("alice", cid)
    assert exported["conversations"][0]["turns"][1]["ranked"] == [1, 0]
    copy = store.import_("bob", exported)[0]
    assert store.load("bob", copy).turns[1] == full
    store.close()


def test_an_older_database_moves_ranked_out_of_meta(tmp_path):
    path = tmp_path / "old.db"
    db = connect(path)
    migrate(db, MIGRATIONS[:4])  # as left by the release before m005
    db.execute("INSERT INTO conversations VALUES ('c1', 'alice', 'Old chat', '', 1.0, 1.0, 't1')")
    meta = json.dumps({"seed": 1, "ranked": [1, 0], "ms": 5})
    db.execute(
        "INSERT INTO turns (id, conversation_id, role, meta, created) VALUES ('t1', 'c1', 'assistant', ?, 1.0)",
        (meta,),
    )
    db.close()
    store = Store(path)
    turn = store.load("alice", "c1").turns[0]
    assert turn.ranked == [1, 0] and turn.meta == {"seed": 1, "ms": 5}
    store.close()


def test_an_export_from_before_the_column_imports_its_ranking(tmp_path):
    store = Store(tmp_path / "c.db")
    old = {
        "format": "interactive-format/conversations",
        "version": 1,
        "conversations": [
            {
                "title": "Old",
                "turns": [
                    {"id": "u", "role": "user", "text": "hi"},
                    {
                        "id": "a",
                        "parent_id": "u",
                        "role": "assistant",
                        "candidates": [{"text": "x"}, {"text": "y"}],
                        "meta": {"seed": 2, "ranked": [1, 0]},
                    },
                ],
            }
        ],
    }
    cid = store.import_("alice", old)[0]
    reply = store.load("alice", cid).turns[1]
    assert reply.ranked == [1, 0] and reply.meta == {"seed": 2}
    old["conversations"][0]["turns"][1]["ranked"] = ["best", 0]
    with pytest.raises(InputError, match=r"turns\[1\]\.ranked must be a list of candidate indices"):
        store.import_("alice", old)
    store.close()


def test_each_candidate_keeps_its_defects_through_save_update_load_and_export_import(tmp_path):
    store = Store(tmp_path / "c.db")
    cid = store.create("alice", "", "Chat")
    u = store.add_turn("alice", cid, Turn("user", "hi"))
    flagged = [Candidate("a a a a", -1.0, defects=["loop"]), Candidate("b", -2.0)]
    a = store.add_turn("alice", cid, Turn("assistant", candidates=flagged, ranked=[1, 0]), u)
    assert [c.defects for c in store.load("alice", cid).turns[1].candidates] == [["loop"], []]
    assert rows(tmp_path / "c.db", "SELECT signals FROM candidates WHERE turn_id = ? ORDER BY idx", a) == [
        ('{"defects": ["loop"]}',),
        ("{}",),  # no defects found: nothing stored, read back as none
    ]
    store.update_turn(
        "alice", a, Turn("assistant", candidates=[Candidate("a", -1.0), Candidate("b", -2.0, defects=["echo"])])
    )
    assert [c.defects for c in store.load("alice", cid).turns[1].candidates] == [[], ["echo"]]
    exported = store.export("alice", cid)
    assert [c.get("defects") for c in exported["conversations"][0]["turns"][1]["candidates"]] == [None, ["echo"]]
    copy = store.import_("bob", exported)[0]
    assert [c.defects for c in store.load("bob", copy).turns[1].candidates] == [[], ["echo"]]
    exported["conversations"][0]["turns"][1]["candidates"][1]["defects"] = ["echo", 3]
    with pytest.raises(InputError, match=r"turns\[1\]\.candidates\[1\]\.defects must be a list of strings"):
        store.import_("bob", exported)
    store.close()


def test_each_candidates_signal_scores_are_stored_exported_and_imported_by_name(tmp_path):
    store = Store(tmp_path / "c.db")
    cid = store.create("alice", "", "Chat")
    u = store.add_turn("alice", cid, Turn("user", "hi"))
    scored = [Candidate("a", -1.0, scores={"defects": 0.0, "consensus": 0.81}), Candidate("b", -2.0)]
    a = store.add_turn("alice", cid, Turn("assistant", candidates=scored, ranked=[0, 1]), u)
    assert [c.scores for c in store.load("alice", cid).turns[1].candidates] == [scored[0].scores, {}]
    assert rows(tmp_path / "c.db", "SELECT signals FROM candidates WHERE turn_id = ? ORDER BY idx", a)[0] == (
        '{"scores": {"defects": 0.0, "consensus": 0.81}}',
    )
    exported = store.export("alice", cid)
    assert exported["conversations"][0]["turns"][1]["candidates"][0]["scores"] == scored[0].scores
    copy = store.import_("bob", exported)[0]
    assert store.load("bob", copy).turns[1].candidates[0].scores == scored[0].scores
    del exported["conversations"][0]["turns"][1]["candidates"][0]["scores"]  # a file from before "scores"
    assert store.load("bob", store.import_("bob", exported)[0]).turns[1].candidates[0].scores == {}
    exported["conversations"][0]["turns"][1]["candidates"][1]["scores"] = {"d": "high"}
    with pytest.raises(InputError, match=r"turns\[1\]\.candidates\[1\]\.scores must be an object of numbers"):
        store.import_("bob", exported)
    store.close()


def test_an_older_database_moves_the_defects_out_of_meta_onto_each_candidate(tmp_path):
    path = tmp_path / "old.db"
    db = connect(path)
    migrate(db, MIGRATIONS[:5])  # as left by the release before m006
    db.execute("INSERT INTO conversations VALUES ('c1', 'alice', 'Old chat', '', 1.0, 1.0, 't1')")
    meta = json.dumps({"seed": 1, "defects": [["loop", "cut_off"], []], "ms": 5})
    db.execute(
        "INSERT INTO turns (id, conversation_id, role, meta, created) VALUES ('t1', 'c1', 'assistant', ?, 1.0)",
        (meta,),
    )
    for i, text in enumerate(["x x x x", "y"]):
        db.execute(
            "INSERT INTO candidates (turn_id, idx, text, finished, created) VALUES ('t1', ?, ?, 1, 1.0)", (i, text)
        )
    db.close()
    store = Store(path)
    turn = store.load("alice", "c1").turns[0]
    assert [c.defects for c in turn.candidates] == [["loop", "cut_off"], []] and turn.meta == {"seed": 1, "ms": 5}
    store.close()


def test_an_export_from_before_the_defects_were_stored_imports_them(tmp_path):
    store = Store(tmp_path / "c.db")
    reply = {"id": "a", "parent_id": "u", "role": "assistant", "candidates": [{"text": "x"}, {"text": "y"}]}
    reply["meta"] = {"seed": 2, "defects": [[], ["wrong_language"]]}
    old = {
        "format": "interactive-format/conversations",
        "version": 1,
        "conversations": [{"title": "Old", "turns": [{"id": "u", "role": "user", "text": "hi"}, reply]}],
    }
    cid = store.import_("alice", old)[0]
    turn = store.load("alice", cid).turns[1]
    assert [c.defects for c in turn.candidates] == [[], ["wrong_language"]] and turn.meta == {"seed": 2}
    store.close()
