"""Conversations on disk: one SQLite file (WAL) holding each conversation as a tree of turns.

Every conversation belongs to one owner (the user identity of a browser session). Every
method that names a conversation or a turn also takes the owner, and a conversation that
does not exist and one that belongs to someone else raise the same `NotFound`, so ids
cannot be probed.

The schema and its migrations are in migrations.py, the row mapping (one column list) in
rows.py, the export/import file format in transfer.py.

Preference pairs (`Store.preferences_jsonl`) are JSON lines, one pair per line::

    {"context": "user: …\\nassistant: …\\nuser: …", "chosen": "picked reply", "rejected": "other reply"}

where context is what the caller passed to `Store.pick` (the dialogue as "role: text" lines).

One connection is shared by all threads behind a lock; every call runs in its own transaction
(writes take the write lock up front), so Gradio worker threads can share one `Store`.
"""

from __future__ import annotations

import builtins  # Store.list shadows `list` inside the class body
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import transfer
from ..config import StorageConfig
from ..dialogue import Conversation, Turn
from ..errors import InputError, NotFound
from .migrations import connect, migrate, transaction
from .rows import MAX_TITLE_CHARS, attachments_from_json, insert_turn, new_id, update_turn
from .rows import path as branch_path
from .transfer import MAX_IMPORT_BYTES

FEEDBACK_KINDS = ("like", "dislike", "clear")


@dataclass(frozen=True)
class ConversationInfo:
    """One line of a user's conversation list."""

    id: str
    title: str
    created: float  # seconds since the epoch
    updated: float  # last turn added, edited or picked
    turns: int  # turns stored, all branches


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
        cid, now = new_id(), time.time()
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
            tid = insert_turn(db, cid, turn, parent_id)
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
            update_turn(db, turn_id, turn)
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
            attachments = attachments_from_json(row["attachments"])
            for i, text in (attachment_texts or {}).items():
                if not 0 <= i < len(attachments):
                    raise InputError("That picture or voice clip is no longer there; please reload the conversation.")
                attachments[i].text = text
            edited = Turn("user", new_text, attachments=attachments)
            tid = insert_turn(db, row["conversation_id"], edited, row["parent_id"], edited_from=turn_id)
            _touch(db, row["conversation_id"], active_leaf=tid)
        return tid

    def path(self, owner: str, cid: str, leaf_id: str | None = None) -> builtins.list[tuple[str, Turn]]:
        """The branch from the first turn to `leaf_id` (default: the active leaf) as (turn id, Turn)."""
        with self._tx(write=False) as db:
            return branch_path(db, _conversation(db, owner, cid), leaf_id)

    def load_with_ids(self, owner: str, cid: str) -> tuple[Conversation, builtins.list[str]]:
        """The active branch as a Conversation, and the ids of its turns in the same order."""
        with self._tx(write=False) as db:
            conv = _conversation(db, owner, cid)
            branch = branch_path(db, conv)
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
            exported = [transfer.export_conversation(db, conv) for conv in convs]
        return {"format": transfer.EXPORT_FORMAT, "version": transfer.EXPORT_VERSION, "conversations": exported}

    def import_(self, owner: str, data: dict | bytes | str, max_bytes: int = MAX_IMPORT_BYTES) -> builtins.list[str]:
        """Import an export file (parsed or raw JSON) as new conversations of `owner`; returns their ids.

        The whole file is checked before anything is written; InputError names the first bad field.
        """
        _check_owner(owner)
        parsed = transfer.parse_import(data, max_bytes)
        with self._tx() as db:
            cids = [transfer.insert_imported(db, owner, conv) for conv in parsed]
        return cids

    def import_file(self, owner: str, path: str | Path, max_bytes: int = MAX_IMPORT_BYTES) -> builtins.list[str]:
        """`import_` of a file on disk; a file over `max_bytes` is refused before it is read."""
        size = Path(path).stat().st_size
        if size > max_bytes:
            raise transfer.too_large(size, max_bytes)
        return self.import_(owner, Path(path).read_bytes(), max_bytes)


def open_store(storage: StorageConfig) -> Store:
    """The configured store: the SQLite file, or (storage.persist off) one in memory that writes nothing to disk."""
    return Store(storage.db_path if storage.persist else ":memory:")


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
