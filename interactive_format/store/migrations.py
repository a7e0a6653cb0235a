"""The conversation database's schema, as numbered migrations (`MIGRATIONS`), and opening it.

- ``conversations(id, owner, title, system_prompt, created, updated, active_leaf)``
- ``turns(id, conversation_id, parent_id, role, text, attachments, chosen, error, notice, meta,
  created, edited_from, ranked)`` — ``parent_id`` is the previous turn (NULL for the first), so turns
  with the same parent are branches; an edited user turn is a new sibling whose
  ``edited_from`` names the original. ``attachments``, ``meta`` and ``ranked`` (candidate indices, best first) are JSON.
- ``candidates(turn_id, idx, text, j, d, score, finished, seed, model, created, signals)`` — every
  sampled reply of an assistant turn; ``turns.chosen`` is the index shown. ``signals`` is a JSON object
  of the reranker's stored signals by name (`dialogue.STORED_SIGNALS`, e.g. ``{"defects": ["loop"], "ended":
  "pruned at 24 tokens: loop"}``); a new stored signal needs no migration.
- ``feedback(id, turn_id, candidate_idx, kind, created)`` — 'like', 'dislike', 'clear' (a like or
  dislike taken back) and 'pick' events.
- ``preferences(id, turn_id, context, chosen, rejected, created)`` — one row per (picked,
  other) pair when the user picks a candidate.
- ``settings(key, value)`` — values made once per database (`Store.secret`).

Non-finite scores (an empty reply's ``-inf``) are stored as NULL: ``j`` and ``score`` read back
as ``float("-inf")``, ``d`` as None. Deleting a conversation deletes its turns, candidates,
feedback and preference pairs.

A migration's name records that it ran: never rename one; a new one is appended with
`@migration`, and `migrate` applies those a database has not seen yet, each in its own transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InteractiveFormatError

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Append `fn` to MIGRATIONS; its name records that it ran, so never rename one."""
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_conversations(db: sqlite3.Connection) -> None:
    _execute_all(
        db,
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            title TEXT NOT NULL,
            system_prompt TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            updated REAL NOT NULL,
            active_leaf TEXT
        );
        CREATE INDEX conversations_owner ON conversations (owner, updated);
        CREATE TABLE turns (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            parent_id TEXT REFERENCES turns (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            text TEXT NOT NULL DEFAULT '',
            attachments TEXT NOT NULL DEFAULT '[]',
            chosen INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            notice TEXT,
            meta TEXT NOT NULL DEFAULT '{}',
            created REAL NOT NULL,
            edited_from TEXT REFERENCES turns (id) ON DELETE SET NULL
        );
        CREATE INDEX turns_conversation ON turns (conversation_id);
        CREATE INDEX turns_parent ON turns (parent_id);
        CREATE INDEX turns_edited_from ON turns (edited_from);
        CREATE TABLE candidates (
            turn_id TEXT NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            text TEXT NOT NULL,
            j REAL,
            d REAL,
            score REAL,
            finished INTEGER NOT NULL,
            seed INTEGER,
            model TEXT,
            created REAL NOT NULL,
            PRIMARY KEY (turn_id, idx)
        );
        """,
    )


@migration
def m002_feedback(db: sqlite3.Connection) -> None:
    _execute_all(
        db,
        """
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            turn_id TEXT NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
            candidate_idx INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('like', 'dislike', 'pick')),
            created REAL NOT NULL
        );
        CREATE INDEX feedback_turn ON feedback (turn_id);
        CREATE TABLE preferences (
            id INTEGER PRIMARY KEY,
            turn_id TEXT NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
            context TEXT NOT NULL,
            chosen TEXT NOT NULL,
            rejected TEXT NOT NULL,
            created REAL NOT NULL
        );
        CREATE INDEX preferences_turn ON preferences (turn_id);
        """,
    )


@migration
def m003_settings(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


@migration
def m004_feedback_clear(db: sqlite3.Connection) -> None:
    """A like or dislike can be taken back ('clear'); SQLite changes a CHECK only by rebuilding the table."""
    _execute_all(
        db,
        """
        CREATE TABLE feedback_new (
            id INTEGER PRIMARY KEY,
            turn_id TEXT NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
            candidate_idx INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('like', 'dislike', 'clear', 'pick')),
            created REAL NOT NULL
        );
        INSERT INTO feedback_new SELECT id, turn_id, candidate_idx, kind, created FROM feedback;
        DROP TABLE feedback;
        ALTER TABLE feedback_new RENAME TO feedback;
        CREATE INDEX feedback_turn ON feedback (turn_id)
        """,
    )


@migration
def m005_turns_ranked(db: sqlite3.Connection) -> None:
    """The reranker's order is a column of its own (it was the "ranked" key of meta)."""
    _execute_all(
        db,
        """
        ALTER TABLE turns ADD COLUMN ranked TEXT NOT NULL DEFAULT '[]';
        UPDATE turns SET ranked = json_extract(meta, '$.ranked'), meta = json_remove(meta, '$.ranked')
            WHERE json_type(meta, '$.ranked') = 'array'
        """,
    )


@migration
def m006_candidate_signals(db: sqlite3.Connection) -> None:
    """Ranking signals are stored per candidate by name (the defects were the "defects" key of the turn's meta,
    one list per candidate)."""
    _execute_all(
        db,
        """
        ALTER TABLE candidates ADD COLUMN signals TEXT NOT NULL DEFAULT '{}';
        UPDATE candidates SET signals = json_object('defects', json(
                (SELECT json_extract(t.meta, '$.defects[' || candidates.idx || ']') FROM turns t
                 WHERE t.id = candidates.turn_id)))
            WHERE (SELECT json_type(t.meta, '$.defects[' || candidates.idx || ']') FROM turns t
                   WHERE t.id = candidates.turn_id) = 'array';
        UPDATE turns SET meta = json_remove(meta, '$.defects') WHERE json_type(meta, '$.defects') IS NOT NULL
        """,
    )


def _execute_all(db: sqlite3.Connection, script: str) -> None:
    """Run `;`-separated statements inside the caller's transaction (executescript would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL, foreign keys and a 5 s busy timeout."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as e:
        raise InteractiveFormatError(f"Cannot open the conversation database {path}: {e}") from e
    return db


@contextmanager
def transaction(db: sqlite3.Connection, write: bool = True) -> Iterator[sqlite3.Connection]:
    """BEGIN (IMMEDIATE for writes) … COMMIT, or ROLLBACK on any exception."""
    db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield db
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection, migrations: list[Callable[[sqlite3.Connection], None]] = MIGRATIONS) -> list[str]:
    """Apply the migrations not yet recorded in `_migrations`, in order, each in its own transaction.

    Returns the names applied now.
    """
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
    applied = []
    for fn in migrations:
        with transaction(db):
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (fn.__name__,)).fetchone():
                continue
            fn(db)
            db.execute("INSERT INTO _migrations (name, applied) VALUES (?, ?)", (fn.__name__, time.time()))
        applied.append(fn.__name__)
    return applied
