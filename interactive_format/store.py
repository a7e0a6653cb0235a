"""Conversations on disk: one SQLite file (WAL) holding each conversation as a tree of turns.

Every conversation belongs to one owner (the user identity of a browser session). Every
method that names a conversation or a turn also takes the owner, and a conversation that
does not exist and one that belongs to someone else raise the same `NotFound`, so ids
cannot be probed.

Schema (see the numbered `MIGRATIONS` below):

- ``conversations(id, owner, title, system_prompt, created, updated, active_leaf)``
- ``turns(id, conversation_id, parent_id, role, text, attachments, chosen, error, notice, meta,
  created, edited_from)`` — ``parent_id`` is the previous turn (NULL for the first), so turns
  with the same parent are branches; an edited user turn is a new sibling whose
  ``edited_from`` names the original. ``attachments`` and ``meta`` are JSON.
- ``candidates(turn_id, idx, text, j, d, score, finished, seed, model, created)`` — every
  sampled reply of an assistant turn; ``turns.chosen`` is the index shown.
- ``feedback(id, turn_id, candidate_idx, kind, created)`` — 'like', 'dislike', 'clear' (a like or
  dislike taken back) and 'pick' events.
- ``preferences(id, turn_id, context, chosen, rejected, created)`` — one row per (picked,
  other) pair when the user picks a candidate.
- ``settings(key, value)`` — values made once per database (`Store.secret`).

Non-finite scores (an empty reply's ``-inf``) are stored as NULL: ``j`` and ``score`` read back
as ``float("-inf")``, ``d`` as None. Deleting a conversation deletes its turns, candidates,
feedback and preference pairs.

Export format (`Store.export`, accepted back by `Store.import_`)::

    {"format": "interactive-format/conversations", "version": 1, "conversations": [{
        "id", "title", "system_prompt", "created", "updated", "active_leaf",
        "messages": [  # the active branch, OpenAI-style, oldest first
            {"role": "user", "content": str, "attachments": [{"kind", "text", "meta"}]},
            {"role": "assistant", "content": str, "chosen": int,
             "candidates": [{"text", "j", "d", "score", "finished", "seed", "model"}]}],
            # plus "error" / "notice" on turns that have one
        "turns": [  # the whole tree, parents before children
            {"id", "parent_id", "edited_from", "role", "text", "attachments", "candidates",
             "chosen", "error", "notice", "meta", "created"}]}]}

Scores that are not finite are written as null. Server file paths of attachments are not
exported; imported attachments keep their kind, text (caption or transcript) and meta, with
an empty path. Import rebuilds the tree from "turns" when present, else a single branch from
"messages"; ids in the file only link turns to each other and are never reused.

Preference pairs (`Store.preferences_jsonl`) are JSON lines, one pair per line::

    {"context": "user: …\\nassistant: …\\nuser: …", "chosen": "picked reply", "rejected": "other reply"}

where context is what the caller passed to `Store.pick` (the dialogue as "role: text" lines).

One connection is shared by all threads behind a lock; every call runs in its own transaction
(writes take the write lock up front), so Gradio worker threads can share one `Store`.
"""

from __future__ import annotations

import builtins  # Store.list shadows `list` inside the class body
import json
import math
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import StorageConfig
from .dialogue import Attachment, Candidate, Conversation, Turn
from .errors import InputError, InteractiveFormatError
from .strictjson import dumps as _json
from .strictjson import finite as _finite
from .strictjson import plain as _plain

EXPORT_FORMAT = "interactive-format/conversations"
EXPORT_VERSION = 1
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 200_000  # any one text field of an imported file
MAX_CANDIDATES = 64  # per imported turn
ROLES = ("user", "assistant")
FEEDBACK_KINDS = ("like", "dislike", "clear")

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []

Source = tuple[int | None, str | None]  # a candidate's (seed, model)


class NotFound(InputError):
    """No such conversation or turn for this owner (the two cases are indistinguishable)."""

    def __init__(self, message: str = "No such conversation.") -> None:
        super().__init__(message)


@dataclass(frozen=True)
class ConversationInfo:
    """One line of a user's conversation list."""

    id: str
    title: str
    created: float  # seconds since the epoch
    updated: float  # last turn added, edited or picked
    turns: int  # turns stored, all branches


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


class Store:
    """The conversation store; safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.db_path = str(path)
        self._db = connect(path)
        self._lock = threading.RLock()
        with self._lock:
            migrate(self._db)

    def close(self) -> None:
        """Close the connection (the WAL is folded back into the file when the last one closes)."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._db, write) as db:
            yield db

    # Conversations

    def create(self, owner: str, system_prompt: str, title: str = "New chat") -> str:
        """A new empty conversation; returns its id."""
        _check_owner(owner)
        cid, now = _new_id(), time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO conversations (id, owner, title, system_prompt, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (cid, owner, _clean_title(title), system_prompt, now, now),
            )
        return cid

    def list(self, owner: str) -> builtins.list[ConversationInfo]:
        """The owner's conversations, most recently updated first."""
        _check_owner(owner)
        with self._tx(write=False) as db:
            rows = db.execute(
                """
                SELECT c.id, c.title, c.created, c.updated,
                       (SELECT count(*) FROM turns t WHERE t.conversation_id = c.id) AS turns
                FROM conversations c WHERE c.owner = ? ORDER BY c.updated DESC, c.rowid DESC
                """,
                (owner,),
            ).fetchall()
        return [ConversationInfo(r["id"], r["title"], r["created"], r["updated"], r["turns"]) for r in rows]

    def rename(self, owner: str, cid: str, title: str) -> None:
        """Set the title (whitespace collapsed, at most MAX_TITLE_CHARS); InputError if empty."""
        title = _clean_title(title)
        with self._tx() as db:
            _conversation(db, owner, cid)
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, cid))

    def delete(self, owner: str, cid: str) -> None:
        """Delete the conversation with all its turns, candidates, feedback and preference pairs."""
        with self._tx() as db:
            _conversation(db, owner, cid)
            db.execute("DELETE FROM conversations WHERE id = ?", (cid,))

    # Turns

    def add_turn(self, owner: str, cid: str, turn: Turn, parent_id: str | None = None) -> str:
        """Save `turn` after `parent_id` (None: a first turn) and make it the active leaf; returns its id."""
        with self._tx() as db:
            _conversation(db, owner, cid)
            if parent_id is not None:
                _turn_in(db, cid, parent_id)
            tid = _insert_turn(db, cid, turn, parent_id)
            _touch(db, cid, active_leaf=tid)
        return tid

    def update_turn(self, owner: str, turn_id: str, turn: Turn) -> None:
        """Rewrite a saved turn's text, attachments, chosen, error, notice and meta, and its candidates.

        Candidates are matched by index: existing ones are updated (keeping the seed and model
        they were sampled with), new ones appended, none removed, so indices named by feedback
        stay valid.
        """
        with self._tx() as db:
            row = _turn(db, owner, turn_id)
            if turn.role != row["role"]:
                raise ValueError(f"cannot change a {row['role']} turn into a {turn.role} turn")
            db.execute(
                "UPDATE turns SET text = ?, attachments = ?, chosen = ?, error = ?, notice = ?, meta = ? WHERE id = ?",
                (
                    turn.text,
                    _attachments_json(turn.attachments),
                    turn.chosen,
                    turn.error,
                    turn.notice,
                    _json(turn.meta),
                    turn_id,
                ),
            )
            _upsert_candidates(db, turn_id, turn)
            _touch(db, row["conversation_id"])

    def edit_user_turn(
        self, owner: str, turn_id: str, new_text: str, attachment_texts: dict[int, str] | None = None
    ) -> str:
        """A new branch: a sibling of user turn `turn_id` with `new_text` and the same attachments.

        `attachment_texts` replaces the caption or transcript of attachments by index. The new
        turn becomes the active leaf; the old branch stays reachable. Returns its id.
        """
        with self._tx() as db:
            row = _turn(db, owner, turn_id)
            if row["role"] != "user":
                raise InputError("Only your own messages can be edited.")
            attachments = _attachments(row["attachments"])
            for i, text in (attachment_texts or {}).items():
                if not 0 <= i < len(attachments):
                    raise InputError("That picture or voice clip is no longer there; please reload the conversation.")
                attachments[i].text = text
            edited = Turn("user", new_text, attachments=attachments)
            tid = _insert_turn(db, row["conversation_id"], edited, row["parent_id"], edited_from=turn_id)
            _touch(db, row["conversation_id"], active_leaf=tid)
        return tid

    def path(self, owner: str, cid: str, leaf_id: str | None = None) -> builtins.list[tuple[str, Turn]]:
        """The branch from the first turn to `leaf_id` (default: the active leaf) as (turn id, Turn)."""
        with self._tx(write=False) as db:
            return _path(db, _conversation(db, owner, cid), leaf_id)

    def load_with_ids(self, owner: str, cid: str) -> tuple[Conversation, builtins.list[str]]:
        """The active branch as a Conversation, and the ids of its turns in the same order."""
        with self._tx(write=False) as db:
            conv = _conversation(db, owner, cid)
            branch = _path(db, conv)
        return Conversation(conv["system_prompt"], [turn for _, turn in branch]), [tid for tid, _ in branch]

    def load(self, owner: str, cid: str) -> Conversation:
        """The active branch as a Conversation."""
        return self.load_with_ids(owner, cid)[0]

    def children(self, owner: str, turn_id: str) -> builtins.list[str]:
        """Ids of the turns that follow `turn_id` (one per branch), oldest first."""
        with self._tx(write=False) as db:
            _turn(db, owner, turn_id)
            rows = db.execute("SELECT id FROM turns WHERE parent_id = ? ORDER BY created, rowid", (turn_id,))
            return [r["id"] for r in rows]

    def siblings(self, owner: str, turn_id: str) -> builtins.list[str]:
        """Ids of the turns sharing `turn_id`'s parent (itself included: the branches there), oldest first."""
        with self._tx(write=False) as db:
            row = _turn(db, owner, turn_id)
            rows = db.execute(
                "SELECT id FROM turns WHERE conversation_id = ? AND parent_id IS ? ORDER BY created, rowid",
                (row["conversation_id"], row["parent_id"]),
            )
            return [r["id"] for r in rows]

    def leaf(self, owner: str, turn_id: str) -> str:
        """The end of the newest branch below `turn_id` (itself when nothing follows it)."""
        with self._tx(write=False) as db:
            _turn(db, owner, turn_id)
            while child := db.execute(
                "SELECT id FROM turns WHERE parent_id = ? ORDER BY created DESC, rowid DESC LIMIT 1", (turn_id,)
            ).fetchone():
                turn_id = child["id"]
        return turn_id

    def set_active_leaf(self, owner: str, cid: str, leaf_id: str) -> None:
        """Show the branch ending at `leaf_id` (any turn of the conversation)."""
        with self._tx() as db:
            _conversation(db, owner, cid)
            _turn_in(db, cid, leaf_id)
            db.execute("UPDATE conversations SET active_leaf = ? WHERE id = ?", (leaf_id, cid))

    # Feedback

    def pick(self, owner: str, turn_id: str, idx: int, context: str) -> None:
        """The user picked candidate `idx`: show it, log the pick and a preference pair per other reply.

        Pairs are logged against every other candidate with text (empty or identical replies teach
        nothing); `context` is the dialogue before the reply, as the trainer reads it.
        """
        with self._tx() as db:
            row = _turn(db, owner, turn_id)
            texts = _candidate_texts(db, turn_id)
            _check_idx(texts, idx)
            now = time.time()
            db.execute("UPDATE turns SET chosen = ? WHERE id = ?", (idx, turn_id))
            db.execute(
                "INSERT INTO feedback (turn_id, candidate_idx, kind, created) VALUES (?, ?, 'pick', ?)",
                (turn_id, idx, now),
            )
            chosen = texts[idx]
            db.executemany(
                "INSERT INTO preferences (turn_id, context, chosen, rejected, created) VALUES (?, ?, ?, ?, ?)",
                [(turn_id, context, chosen, other, now) for other in _rejected(texts, idx)],
            )
            _touch(db, row["conversation_id"])

    def feedback(self, owner: str, turn_id: str, idx: int, kind: str) -> None:
        """Log a 'like', 'dislike' or 'clear' (taken back) of candidate `idx`."""
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"feedback kind must be one of {FEEDBACK_KINDS}, not {kind!r}")
        with self._tx() as db:
            _turn(db, owner, turn_id)
            _check_idx(_candidate_texts(db, turn_id), idx)
            db.execute(
                "INSERT INTO feedback (turn_id, candidate_idx, kind, created) VALUES (?, ?, ?, ?)",
                (turn_id, idx, kind, time.time()),
            )

    def ratings(self, owner: str, turn_ids: builtins.list[str]) -> dict[str, str]:
        """{turn id: 'like' or 'dislike'}: the latest rating of each turn's shown reply, if not taken back."""
        _check_owner(owner)
        if not turn_ids:
            return {}
        marks = ",".join("?" * len(turn_ids))
        with self._tx(write=False) as db:
            rows = db.execute(
                f"""
                SELECT f.turn_id, f.kind, f.candidate_idx = t.chosen AS shown FROM feedback f
                JOIN turns t ON t.id = f.turn_id JOIN conversations c ON c.id = t.conversation_id
                WHERE c.owner = ? AND f.turn_id IN ({marks}) AND f.kind != 'pick' ORDER BY f.id
                """,
                (owner, *turn_ids),
            ).fetchall()
        latest = {r["turn_id"]: (r["kind"], r["shown"]) for r in rows}
        return {tid: kind for tid, (kind, shown) in latest.items() if shown and kind != "clear"}

    def preferences_jsonl(self, owner: str) -> str:
        """The owner's preference pairs as JSON lines (format in the module docstring), oldest first."""
        _check_owner(owner)
        with self._tx(write=False) as db:
            rows = db.execute(
                """
                SELECT p.context, p.chosen, p.rejected FROM preferences p
                JOIN turns t ON t.id = p.turn_id JOIN conversations c ON c.id = t.conversation_id
                WHERE c.owner = ? ORDER BY p.id
                """,
                (owner,),
            ).fetchall()
        return "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in rows)

    # Settings

    def secret(self, name: str) -> str:
        """A random value made once per database and kept (e.g. the browser-storage key)."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (name,)).fetchone()
            if row is not None:
                return row["value"]
            value = secrets.token_urlsafe(24)
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (name, value))
        return value

    # Export and import

    def export(self, owner: str, cid: str | None = None) -> dict:
        """One conversation, or all of the owner's (newest first), in the export format."""
        _check_owner(owner)
        with self._tx(write=False) as db:
            if cid is None:
                convs = db.execute(
                    "SELECT * FROM conversations WHERE owner = ? ORDER BY updated DESC, rowid DESC", (owner,)
                ).fetchall()
            else:
                convs = [_conversation(db, owner, cid)]
            exported = [_export_conversation(db, conv) for conv in convs]
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "conversations": exported}

    def import_(self, owner: str, data: dict | bytes | str, max_bytes: int = MAX_IMPORT_BYTES) -> builtins.list[str]:
        """Import an export file (parsed or raw JSON) as new conversations of `owner`; returns their ids.

        The whole file is checked before anything is written; InputError names the first bad field.
        """
        _check_owner(owner)
        parsed = _parse_import(data, max_bytes)
        with self._tx() as db:
            cids = [_insert_imported(db, owner, conv) for conv in parsed]
        return cids

    def import_file(self, owner: str, path: str | Path, max_bytes: int = MAX_IMPORT_BYTES) -> builtins.list[str]:
        """`import_` of a file on disk; a file over `max_bytes` is refused before it is read."""
        size = Path(path).stat().st_size
        if size > max_bytes:
            raise _too_large(size, max_bytes)
        return self.import_(owner, Path(path).read_bytes(), max_bytes)


# Rows


def open_store(storage: StorageConfig) -> Store:
    """The configured store: the SQLite file, or (storage.persist off) one in memory that writes nothing to disk."""
    return Store(storage.db_path if storage.persist else ":memory:")


def _insert_imported(db: sqlite3.Connection, owner: str, conv: _ImportedConversation) -> str:
    """Write one checked conversation under new ids; returns its id."""
    cid, now = _new_id(), time.time()
    db.execute(
        "INSERT INTO conversations (id, owner, title, system_prompt, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
        (cid, owner, conv.title, conv.system_prompt, conv.created or now, now),
    )
    new_ids: dict[str, str] = {}
    for t in conv.turns:
        parent, edited_from = new_ids.get(t.parent or ""), new_ids.get(t.edited_from or "")
        new_ids[t.key] = _insert_turn(db, cid, t.turn, parent, edited_from, t.created or now, t.sources)
    leaf = new_ids.get(conv.active_leaf or "") or (new_ids[conv.turns[-1].key] if conv.turns else None)
    db.execute("UPDATE conversations SET active_leaf = ? WHERE id = ?", (leaf, cid))
    return cid


def _new_id() -> str:
    return uuid.uuid4().hex


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str) or not owner:
        raise ValueError("owner must be a non-empty string")


def _clean_title(title: str) -> str:
    """Whitespace collapsed to single spaces, cut to MAX_TITLE_CHARS; InputError when empty."""
    title = " ".join(title.split()) if isinstance(title, str) else ""
    if not title:
        raise InputError("A title cannot be empty.")
    return title[:MAX_TITLE_CHARS]


def _conversation(db: sqlite3.Connection, owner: str, cid: str) -> sqlite3.Row:
    _check_owner(owner)
    row = db.execute("SELECT * FROM conversations WHERE id = ? AND owner = ?", (cid, owner)).fetchone()
    if row is None:
        raise NotFound()
    return row


def _turn(db: sqlite3.Connection, owner: str, turn_id: str) -> sqlite3.Row:
    """The turn, if it belongs to one of `owner`'s conversations; else NotFound."""
    _check_owner(owner)
    row = db.execute(
        "SELECT t.* FROM turns t JOIN conversations c ON c.id = t.conversation_id WHERE t.id = ? AND c.owner = ?",
        (turn_id, owner),
    ).fetchone()
    if row is None:
        raise NotFound()
    return row


def _turn_in(db: sqlite3.Connection, cid: str, turn_id: str) -> None:
    if not db.execute("SELECT 1 FROM turns WHERE id = ? AND conversation_id = ?", (turn_id, cid)).fetchone():
        raise NotFound()


def _touch(db: sqlite3.Connection, cid: str, active_leaf: str | None = None) -> None:
    """Bump `updated` (and move the active leaf when given)."""
    db.execute(
        "UPDATE conversations SET updated = ?, active_leaf = coalesce(?, active_leaf) WHERE id = ?",
        (time.time(), active_leaf, cid),
    )


def _insert_turn(
    db: sqlite3.Connection,
    cid: str,
    turn: Turn,
    parent_id: str | None,
    edited_from: str | None = None,
    created: float | None = None,
    sources: list[Source] | None = None,
) -> str:
    if turn.role not in ROLES:
        raise ValueError(f"role must be 'user' or 'assistant', not {turn.role!r}")
    tid = _new_id()
    db.execute(
        """
        INSERT INTO turns (id, conversation_id, parent_id, role, text, attachments, chosen, error, notice, meta,
                           created, edited_from)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            tid,
            cid,
            parent_id,
            turn.role,
            turn.text,
            _attachments_json(turn.attachments),
            turn.chosen,
            turn.error,
            turn.notice,
            _json(turn.meta),
            created or time.time(),
            edited_from,
        ),
    )
    _upsert_candidates(db, tid, turn, sources)
    return tid


def _upsert_candidates(db: sqlite3.Connection, turn_id: str, turn: Turn, sources: list[Source] | None = None) -> None:
    """Write turn.candidates by index; seed and model from `sources` or turn.meta, kept where already set."""
    if sources is None:
        seed, model = turn.meta.get("seed"), turn.meta.get("model")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        sources = [(seed, model if isinstance(model, str) else None)] * len(turn.candidates)
    now = time.time()
    db.executemany(
        """
        INSERT INTO candidates (turn_id, idx, text, j, d, score, finished, seed, model, created)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (turn_id, idx) DO UPDATE SET
            text = excluded.text, j = excluded.j, d = excluded.d, score = excluded.score,
            finished = excluded.finished, seed = coalesce(candidates.seed, excluded.seed),
            model = coalesce(candidates.model, excluded.model)
        """,
        [
            (turn_id, i, c.text, _finite(c.j), _finite(c.d), _finite(c.score), int(c.finished), seed, model, now)
            for i, (c, (seed, model)) in enumerate(zip(turn.candidates, sources, strict=True))
        ],
    )


def _candidate_texts(db: sqlite3.Connection, turn_id: str) -> list[str]:
    return [r["text"] for r in db.execute("SELECT text FROM candidates WHERE turn_id = ? ORDER BY idx", (turn_id,))]


def _check_idx(texts: list[str], idx: int) -> None:
    if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(texts):
        raise InputError("That reply is no longer there; please reload the conversation.")


def _rejected(texts: list[str], idx: int) -> list[str]:
    """The other candidates worth a preference pair against texts[idx]."""
    chosen = texts[idx]
    if not chosen.strip():
        return []
    return [t for i, t in enumerate(texts) if i != idx and t.strip() and t != chosen]


def _tree(db: sqlite3.Connection, cid: str) -> tuple[dict[str, sqlite3.Row], dict[str, list[sqlite3.Row]]]:
    """All turns of a conversation by id (parents before children) and their candidate rows."""
    rows = {r["id"]: r for r in db.execute("SELECT * FROM turns WHERE conversation_id = ? ORDER BY rowid", (cid,))}
    candidates: dict[str, list[sqlite3.Row]] = {}
    for c in db.execute(
        "SELECT c.* FROM candidates c JOIN turns t ON t.id = c.turn_id WHERE t.conversation_id = ? ORDER BY c.idx",
        (cid,),
    ):
        candidates.setdefault(c["turn_id"], []).append(c)
    return rows, candidates


def _path(db: sqlite3.Connection, conv: sqlite3.Row, leaf_id: str | None = None) -> list[tuple[str, Turn]]:
    """(turn id, Turn) from the first turn to `leaf_id` (default: the active leaf); NotFound if not a turn of conv."""
    leaf = conv["active_leaf"] if leaf_id is None else leaf_id
    if leaf is None:
        return []
    rows, candidates = _tree(db, conv["id"])
    if leaf not in rows:
        raise NotFound()
    return [(tid, _turn_from_row(rows[tid], candidates.get(tid, []))) for tid in _branch(rows, leaf)]


def _branch(rows: dict[str, sqlite3.Row], leaf: str) -> list[str]:
    """Turn ids from the first turn down to `leaf`."""
    ids = [leaf]
    while (parent := rows[ids[-1]]["parent_id"]) is not None:
        ids.append(parent)
    return ids[::-1]


def _turn_from_row(row: sqlite3.Row, candidates: list[sqlite3.Row]) -> Turn:
    return Turn(
        role=row["role"],
        text=row["text"],
        attachments=_attachments(row["attachments"]),
        candidates=[_candidate_from_row(c) for c in candidates],
        chosen=row["chosen"],
        error=row["error"],
        notice=row["notice"],
        meta=json.loads(row["meta"]),
    )


def _candidate_from_row(row: sqlite3.Row) -> Candidate:
    return Candidate(row["text"], _or_neg_inf(row["j"]), row["d"], _or_neg_inf(row["score"]), bool(row["finished"]))


def _attachments_json(attachments: list[Attachment]) -> str:
    return _json([{"kind": a.kind, "path": a.path, "text": a.text, "meta": a.meta} for a in attachments])


def _attachments(text: str) -> list[Attachment]:
    return [Attachment(a["kind"], a["path"], a["text"], a["meta"]) for a in json.loads(text)]


def _or_neg_inf(x: float | None) -> float:
    return float("-inf") if x is None else x


# Export


def _export_conversation(db: sqlite3.Connection, conv: sqlite3.Row) -> dict:
    rows, candidates = _tree(db, conv["id"])
    leaf = conv["active_leaf"]
    branch = _branch(rows, leaf) if leaf in rows else []
    return {
        "id": conv["id"],
        "title": conv["title"],
        "system_prompt": conv["system_prompt"],
        "created": conv["created"],
        "updated": conv["updated"],
        "active_leaf": leaf,
        "messages": [_export_message(rows[tid], candidates.get(tid, [])) for tid in branch],
        "turns": [_export_turn(row, candidates.get(tid, [])) for tid, row in rows.items()],
    }


def _export_message(row: sqlite3.Row, candidates: list[sqlite3.Row]) -> dict:
    """An OpenAI-style message with this app's extra fields."""
    turn = _turn_from_row(row, candidates)
    message: dict[str, Any] = {"role": turn.role, "content": turn.reply}
    if turn.role == "user":
        message["attachments"] = _export_attachments(turn.attachments)
    else:
        message["candidates"] = [_export_candidate(c) for c in candidates]
        message["chosen"] = turn.chosen
    message.update({k: v for k, v in (("error", turn.error), ("notice", turn.notice)) if v is not None})
    return message


def _export_turn(row: sqlite3.Row, candidates: list[sqlite3.Row]) -> dict:
    return {
        "id": row["id"],
        "parent_id": row["parent_id"],
        "edited_from": row["edited_from"],
        "role": row["role"],
        "text": row["text"],
        "attachments": _export_attachments(_attachments(row["attachments"])),
        "candidates": [_export_candidate(c) for c in candidates],
        "chosen": row["chosen"],
        "error": row["error"],
        "notice": row["notice"],
        "meta": json.loads(row["meta"]),
        "created": row["created"],
    }


def _export_attachments(attachments: list[Attachment]) -> list[dict]:
    """Kind, text and meta; server paths stay on the server."""
    return [{"kind": a.kind, "text": a.text, "meta": a.meta} for a in attachments]


def _export_candidate(row: sqlite3.Row) -> dict:
    keys = ("text", "j", "d", "score", "finished", "seed", "model")
    return {k: bool(row[k]) if k == "finished" else row[k] for k in keys}


# Import: everything is checked before anything is written.


@dataclass(frozen=True)
class _ImportedTurn:
    key: str  # the id in the file, only to link turns to each other
    parent: str | None
    edited_from: str | None
    turn: Turn
    sources: list[Source]  # each candidate's (seed, model)
    created: float | None


@dataclass(frozen=True)
class _ImportedConversation:
    title: str
    system_prompt: str
    created: float | None
    active_leaf: str | None
    turns: list[_ImportedTurn]


def _bad(where: str, problem: str) -> InputError:
    return InputError(f"Cannot import this file: {where} {problem}.")


def _parse_import(data: dict | bytes | str, max_bytes: int) -> list[_ImportedConversation]:
    if isinstance(data, (bytes, str)):
        data = _load_json(data, max_bytes)
    if not isinstance(data, dict):
        raise InputError("Cannot import this file: it is not a conversation export (expected a JSON object).")
    if data.get("format") != EXPORT_FORMAT:
        raise _bad("format", f"must be {EXPORT_FORMAT!r} (is this a conversation export from this app?)")
    version = data.get("version")
    if type(version) is not int or version != EXPORT_VERSION:
        raise _bad("version", f"must be {EXPORT_VERSION}")
    conversations = _field(data, "conversations", "", "a list")
    return [_parse_conversation(c, f"conversations[{i}]") for i, c in enumerate(conversations)]


def _load_json(data: bytes | str, max_bytes: int) -> Any:
    size = len(data) if isinstance(data, bytes) or len(data) > max_bytes else len(data.encode("utf-8"))
    if size > max_bytes:
        raise _too_large(size, max_bytes)
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # also bad UTF-8, NaN/Infinity, absurd nesting
        raise InputError("The file is not valid JSON; please choose a conversation export from this app.") from None


def _too_large(size: int, max_bytes: int) -> InputError:
    return InputError(f"The file is too large ({size / 2**20:.1f} MB); the limit is {max_bytes / 2**20:.0f} MB.")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_KINDS: dict[str, Callable[[Any], bool]] = {
    "a string": lambda v: isinstance(v, str),
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "true or false": lambda v: isinstance(v, bool),
    "a list": lambda v: isinstance(v, list),
    "an object": lambda v: isinstance(v, dict),
}


def _field(obj: dict, key: str, where: str, kind: str, *, default: Any = ..., nullable: bool = False) -> Any:
    """obj[key] checked to be `kind` (a key of _KINDS); `default` when absent, else InputError naming the path."""
    path = f"{where}.{key}" if where else key
    if key not in obj:
        if default is ...:
            raise _bad(path, "is missing")
        return default
    value = obj[key]
    if value is None and nullable:
        return None
    if not _KINDS[kind](value):
        raise _bad(path, f"must be {kind}" + (" or null" if nullable else ""))
    if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        raise _bad(path, f"is too long (over {MAX_TEXT_CHARS} characters)")
    return value


def _time(obj: dict, where: str) -> float | None:
    created = _field(obj, "created", where, "a number", default=None, nullable=True)
    return float(created) if created is not None and math.isfinite(created) else None


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _bad(where, "must be an object")
    return value


def _parse_conversation(value: Any, where: str) -> _ImportedConversation:
    conv = _object(value, where)
    title = " ".join(_field(conv, "title", where, "a string", default="").split())[:MAX_TITLE_CHARS]
    system_prompt = _field(conv, "system_prompt", where, "a string", default="")
    if "turns" in conv:
        turns, leaf = _parse_tree(conv, where)
    else:
        turns, leaf = _parse_messages(conv, where), None
    return _ImportedConversation(title or "Imported chat", system_prompt, _time(conv, where), leaf, turns)


def _parse_messages(conv: dict, where: str) -> list[_ImportedTurn]:
    """The "messages" list (OpenAI-style: "content" is the text) as one branch."""
    turns = []
    for i, value in enumerate(_field(conv, "messages", where, "a list")):
        at = f"{where}.messages[{i}]"
        message = _object(value, at)
        turn, sources = _parse_turn(message, at, _field(message, "content", at, "a string"))
        turns.append(_ImportedTurn(str(i), str(i - 1) if i else None, None, turn, sources, None))
    return turns


def _parse_tree(conv: dict, where: str) -> tuple[list[_ImportedTurn], str | None]:
    """The "turns" list: ids unique, each parent_id and edited_from the id of an earlier turn."""
    turns: list[_ImportedTurn] = []
    seen: set[str] = set()
    for i, value in enumerate(_field(conv, "turns", where, "a list")):
        at = f"{where}.turns[{i}]"
        row = _object(value, at)
        key = _field(row, "id", at, "a string")
        if key in seen:
            raise _bad(f"{at}.id", "is used by an earlier turn")
        parent, edited_from = (_link(row, name, at, seen) for name in ("parent_id", "edited_from"))
        turn, sources = _parse_turn(row, at, _field(row, "text", at, "a string", default=""))
        turn.meta = _plain(_field(row, "meta", at, "an object", default={}))
        turns.append(_ImportedTurn(key, parent, edited_from, turn, sources, _time(row, at)))
        seen.add(key)
    leaf = _field(conv, "active_leaf", where, "a string", default=None, nullable=True)
    if leaf is not None and leaf not in seen:
        raise _bad(f"{where}.active_leaf", "must be the id of one of the turns")
    return turns, leaf


def _link(row: dict, name: str, where: str, seen: set[str]) -> str | None:
    link = _field(row, name, where, "a string", default=None, nullable=True)
    if link is not None and link not in seen:
        raise _bad(f"{where}.{name}", "must be the id of an earlier turn")
    return link


def _parse_turn(obj: dict, where: str, text: str) -> tuple[Turn, list[Source]]:
    """Role, attachments, candidates, chosen, error and notice of a message or tree row."""
    role = _field(obj, "role", where, "a string")
    if role not in ROLES:
        raise _bad(f"{where}.role", "must be 'user' or 'assistant'")
    attachments = _field(obj, "attachments", where, "a list", default=[])
    candidates = _field(obj, "candidates", where, "a list", default=[])
    if len(candidates) > MAX_CANDIDATES:
        raise _bad(f"{where}.candidates", f"has more than {MAX_CANDIDATES} replies")
    parsed = [_parse_candidate(c, f"{where}.candidates[{i}]") for i, c in enumerate(candidates)]
    chosen = _field(obj, "chosen", where, "an integer", default=0)
    if not 0 <= chosen < max(1, len(candidates)):
        raise _bad(f"{where}.chosen", "must be the index of one of the candidates")
    turn = Turn(
        role=role,
        text=text,
        attachments=[_parse_attachment(a, f"{where}.attachments[{i}]") for i, a in enumerate(attachments)],
        candidates=[c for c, _ in parsed],
        chosen=chosen,
        error=_field(obj, "error", where, "a string", default=None, nullable=True),
        notice=_field(obj, "notice", where, "a string", default=None, nullable=True),
    )
    return turn, [source for _, source in parsed]


def _parse_attachment(value: Any, where: str) -> Attachment:
    """Kind, text and meta; the path is left empty (the file stays where it was exported)."""
    a = _object(value, where)
    kind = _field(a, "kind", where, "a string")
    if kind not in ("image", "audio"):
        raise _bad(f"{where}.kind", "must be 'image' or 'audio'")
    text = _field(a, "text", where, "a string", default="")
    return Attachment(kind, "", text, _plain(_field(a, "meta", where, "an object", default={})))


def _parse_candidate(value: Any, where: str) -> tuple[Candidate, Source]:
    c = _object(value, where)
    seed = _field(c, "seed", where, "an integer", default=None, nullable=True)
    if seed is not None and not -(2**63) <= seed < 2**63:
        raise _bad(f"{where}.seed", "is out of range")
    candidate = Candidate(
        text=_field(c, "text", where, "a string"),
        j=_or_neg_inf(_field(c, "j", where, "a number", default=None, nullable=True)),
        d=_finite(_field(c, "d", where, "a number", default=None, nullable=True)),
        score=_or_neg_inf(_field(c, "score", where, "a number", default=None, nullable=True)),
        finished=_field(c, "finished", where, "true or false", default=True),
    )
    return candidate, (seed, _field(c, "model", where, "a string", default=None, nullable=True))
