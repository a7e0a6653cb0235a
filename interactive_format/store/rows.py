"""Turns and candidates as table rows: ONE column list drives insert, update and read.

A new turn column is one migration (migrations.py), one `Column` entry below and one field of
`dialogue.Turn`: `insert_turn`, `update_turn` and `turn_from_row` all read `TURN_COLUMNS`. A
candidate's stored ranking results (`dialogue.STORED_SIGNALS`: its defects, each ranking signal's value)
share one JSON column, `signals`, by name: a new stored field is a field of `dialogue.Candidate` alone.
Non-finite scores (an empty reply's ``-inf``) are stored as NULL: ``j`` and ``score`` read back
as ``float("-inf")``, ``d`` as None.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..dialogue import STORED_SIGNALS, Attachment, Candidate, Turn
from ..errors import NotFound
from ..strictjson import dumps, finite

ROLES = ("user", "assistant")
MAX_TITLE_CHARS = 200  # a conversation's title

Source = tuple[int | None, str | None]  # a candidate's (seed, model)


def attachments_json(attachments: list[Attachment]) -> str:
    return dumps([{"kind": a.kind, "path": a.path, "text": a.text, "meta": a.meta.to_dict()} for a in attachments])


def attachments_from_json(text: str) -> list[Attachment]:
    return [Attachment(a["kind"], a["path"], a["text"], a["meta"]) for a in json.loads(text)]


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Column:
    """A column of `turns` that holds the `Turn` field of the same name."""

    name: str
    write: Callable[[Any], Any] = _same  # the field's value -> the stored value
    read: Callable[[Any], Any] = _same  # the stored value -> the field's value
    rewritten: bool = True  # `update_turn` rewrites it (a turn's role never changes)
    kind: str = "a string"  # what an imported file must hold there (transfer.py checks the plain columns)
    nullable: bool = True  # an imported file may hold null there


TURN_COLUMNS: tuple[Column, ...] = (
    Column("role", rewritten=False),
    Column("text"),
    Column("attachments", attachments_json, attachments_from_json),
    Column("chosen"),
    Column("error"),
    Column("notice"),
    Column("meta", dumps, json.loads),
    Column("ranked", dumps, json.loads, kind="a list", nullable=False),
)
_NAMES = [c.name for c in TURN_COLUMNS]
_INSERT = (
    f"INSERT INTO turns (id, conversation_id, parent_id, {', '.join(_NAMES)}, created, edited_from)"
    f" VALUES ({', '.join('?' * (len(_NAMES) + 5))})"
)
_UPDATE = f"UPDATE turns SET {', '.join(f'{c.name} = ?' for c in TURN_COLUMNS if c.rewritten)} WHERE id = ?"


def new_id() -> str:
    return uuid.uuid4().hex


def insert_turn(
    db: sqlite3.Connection,
    cid: str,
    turn: Turn,
    parent_id: str | None,
    edited_from: str | None = None,
    created: float | None = None,
    sources: list[Source] | None = None,
) -> str:
    """Write `turn` and its candidates as a new row of conversation `cid`; returns its id."""
    if turn.role not in ROLES:
        raise ValueError(f"role must be 'user' or 'assistant', not {turn.role!r}")
    tid = new_id()
    values = [c.write(getattr(turn, c.name)) for c in TURN_COLUMNS]
    db.execute(_INSERT, (tid, cid, parent_id, *values, created or time.time(), edited_from))
    upsert_candidates(db, tid, turn, sources)
    return tid


def update_turn(db: sqlite3.Connection, turn_id: str, turn: Turn) -> None:
    """Rewrite the row's columns (all but the role) and its candidates from `turn`."""
    values = [c.write(getattr(turn, c.name)) for c in TURN_COLUMNS if c.rewritten]
    db.execute(_UPDATE, (*values, turn_id))
    upsert_candidates(db, turn_id, turn)


def turn_from_row(row: sqlite3.Row, candidates: list[sqlite3.Row]) -> Turn:
    fields = {c.name: c.read(row[c.name]) for c in TURN_COLUMNS}
    return Turn(**fields, candidates=[candidate_from_row(c) for c in candidates])


def candidate_from_row(row: sqlite3.Row) -> Candidate:
    stored = signals_from_json(row["signals"])
    return Candidate(
        row["text"], or_neg_inf(row["j"]), row["d"], or_neg_inf(row["score"]), bool(row["finished"]), **stored
    )


def signals_json(c: Candidate) -> str:
    """The candidate's stored ranking results (dialogue.STORED_SIGNALS) as one JSON object by name; those at their
    default (no defects found) are left out, as read back they are the default again."""
    blank = Candidate("", 0.0)
    return dumps({name: getattr(c, name) for name in STORED_SIGNALS if getattr(c, name) != getattr(blank, name)})


def signals_from_json(text: str) -> dict[str, Any]:
    """The stored signals this version knows (a signal no longer declared is left out)."""
    stored = json.loads(text)
    return {name: value for name, value in stored.items() if name in STORED_SIGNALS}


def or_neg_inf(x: float | None) -> float:
    return float("-inf") if x is None else x


def upsert_candidates(db: sqlite3.Connection, turn_id: str, turn: Turn, sources: list[Source] | None = None) -> None:
    """Write turn.candidates by index; seed and model from `sources` or turn.meta, kept where already set."""
    if sources is None:
        seed, model = turn.meta.get("seed"), turn.meta.get("model")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        sources = [(seed, model if isinstance(model, str) else None)] * len(turn.candidates)
    now = time.time()
    db.executemany(
        """
        INSERT INTO candidates (turn_id, idx, text, j, d, score, finished, seed, model, created, signals)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (turn_id, idx) DO UPDATE SET
            text = excluded.text, j = excluded.j, d = excluded.d, score = excluded.score,
            finished = excluded.finished, signals = excluded.signals, seed = coalesce(candidates.seed, excluded.seed),
            model = coalesce(candidates.model, excluded.model)
        """,
        [
            (turn_id, i, c.text, finite(c.j), finite(c.d), finite(c.score), int(c.finished), seed, model, now)
            + (signals_json(c),)
            for i, (c, (seed, model)) in enumerate(zip(turn.candidates, sources, strict=True))
        ],
    )


def tree(db: sqlite3.Connection, cid: str) -> tuple[dict[str, sqlite3.Row], dict[str, list[sqlite3.Row]]]:
    """All turns of a conversation by id (parents before children) and their candidate rows."""
    rows = {r["id"]: r for r in db.execute("SELECT * FROM turns WHERE conversation_id = ? ORDER BY rowid", (cid,))}
    candidates: dict[str, list[sqlite3.Row]] = {}
    for c in db.execute(
        "SELECT c.* FROM candidates c JOIN turns t ON t.id = c.turn_id WHERE t.conversation_id = ? ORDER BY c.idx",
        (cid,),
    ):
        candidates.setdefault(c["turn_id"], []).append(c)
    return rows, candidates


def path(db: sqlite3.Connection, conv: sqlite3.Row, leaf_id: str | None = None) -> list[tuple[str, Turn]]:
    """(turn id, Turn) from the first turn to `leaf_id` (default: the active leaf); NotFound if not a turn of conv."""
    leaf = conv["active_leaf"] if leaf_id is None else leaf_id
    if leaf is None:
        return []
    rows, candidates = tree(db, conv["id"])
    if leaf not in rows:
        raise NotFound()
    return [(tid, turn_from_row(rows[tid], candidates.get(tid, []))) for tid in branch(rows, leaf)]


def branch(rows: dict[str, sqlite3.Row], leaf: str) -> list[str]:
    """Turn ids from the first turn down to `leaf`."""
    ids = [leaf]
    while (parent := rows[ids[-1]]["parent_id"]) is not None:
        ids.append(parent)
    return ids[::-1]
