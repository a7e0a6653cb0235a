"""The export/import format of conversations: one JSON file, checked whole before anything is written.

Export format (`Store.export`, accepted back by `Store.import_`)::

    {"format": "interactive-format/conversations", "version": 1, "conversations": [{
        "id", "title", "system_prompt", "created", "updated", "active_leaf",
        "messages": [  # the active branch, OpenAI-style, oldest first
            {"role": "user", "content": str, "attachments": [{"kind", "text", "meta"}]},
            {"role": "assistant", "content": str, "chosen": int,
             "candidates": [{"text", "j", "d", "score", "finished", "seed", "model", "defects", "scores", "ended"}]}],
            # plus "error" / "notice" on turns that have one
        "turns": [  # the whole tree, parents before children
            {"id", "parent_id", "edited_from", "role", "text", "attachments", "chosen", "error",
             "notice", "meta", "ranked", "candidates", "created"}]}]}  # the columns of rows.TURN_COLUMNS

Scores that are not finite are written as null. Server file paths of attachments are not
exported; imported attachments keep their kind, text (caption or transcript) and meta, with
an empty path. Import rebuilds the tree from "turns" when present, else a single branch from
"messages"; ids in the file only link turns to each other and are never reused. A candidate
carries what the ranking found by name (dialogue.STORED_SIGNALS: "defects", and "scores": each ranking
signal's value by its name in signals.SIGNALS; files made before "scores" import without them) and "ended" (why it
was ended before it finished, pruning.py; left out when it ran its course). "ranked" (the
reranker's order, candidate indices best first) and "defects" (one list per candidate) were keys
of "meta" in files made before they were stored on their own; such files import the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..dialogue import STORED_SIGNALS, Attachment, Candidate, Turn
from ..errors import InputError
from ..inputs.readers import READERS, kinds_text
from .rows import (
    MAX_TITLE_CHARS,
    ROLES,
    TURN_COLUMNS,
    Source,
    branch,
    insert_turn,
    new_id,
    or_neg_inf,
    signals_from_json,
    tree,
    turn_from_row,
)
from ..strictjson import finite, plain

EXPORT_FORMAT = "interactive-format/conversations"
EXPORT_VERSION = 1
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_TEXT_CHARS = 200_000  # any one text field of an imported file
MAX_CANDIDATES = 64  # per imported turn

_CHECKED = {"role", "text", "attachments", "chosen", "meta", "ranked"}  # parsed by name below; the rest by their Column
_PLAIN = [c for c in TURN_COLUMNS if c.name not in _CHECKED]
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Turn) if f.default is not dataclasses.MISSING}


def export_conversation(db: sqlite3.Connection, conv: sqlite3.Row) -> dict:
    rows, candidates = tree(db, conv["id"])
    leaf = conv["active_leaf"]
    active = branch(rows, leaf) if leaf in rows else []
    return {
        "id": conv["id"],
        "title": conv["title"],
        "system_prompt": conv["system_prompt"],
        "created": conv["created"],
        "updated": conv["updated"],
        "active_leaf": leaf,
        "messages": [_export_message(rows[tid], candidates.get(tid, [])) for tid in active],
        "turns": [_export_turn(row, candidates.get(tid, [])) for tid, row in rows.items()],
    }


def _export_message(row: sqlite3.Row, candidates: list[sqlite3.Row]) -> dict:
    """An OpenAI-style message with this app's extra fields."""
    turn = turn_from_row(row, candidates)
    message: dict[str, Any] = {"role": turn.role, "content": turn.reply}
    if turn.role == "user":
        message["attachments"] = _export_attachments(turn.attachments)
    else:
        message["candidates"] = [_export_candidate(c) for c in candidates]
        message["chosen"] = turn.chosen
    message.update({k: v for k, v in (("error", turn.error), ("notice", turn.notice)) if v is not None})
    return message


def _export_turn(row: sqlite3.Row, candidates: list[sqlite3.Row]) -> dict:
    """A row of the tree: its links, every column of TURN_COLUMNS, its candidates and when it was made."""
    turn = turn_from_row(row, candidates)
    columns = {c.name: getattr(turn, c.name) for c in TURN_COLUMNS}
    columns["attachments"] = _export_attachments(turn.attachments)
    links = {"id": row["id"], "parent_id": row["parent_id"], "edited_from": row["edited_from"]}
    return {**links, **columns, "candidates": [_export_candidate(c) for c in candidates], "created": row["created"]}


def _export_attachments(attachments: list[Attachment]) -> list[dict]:
    """Kind, text and meta; server paths stay on the server."""
    return [{"kind": a.kind, "text": a.text, "meta": a.meta.to_dict()} for a in attachments]


def _export_candidate(row: sqlite3.Row) -> dict:
    keys = ("text", "j", "d", "score", "finished", "seed", "model")
    return {**{k: bool(row[k]) if k == "finished" else row[k] for k in keys}, **signals_from_json(row["signals"])}


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


def parse_import(data: dict | bytes | str, max_bytes: int) -> list[_ImportedConversation]:
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
        raise too_large(size, max_bytes)
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # also bad UTF-8, NaN/Infinity, absurd nesting
        raise InputError("The file is not valid JSON; please choose a conversation export from this app.") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_KINDS: dict[str, Callable[[Any], bool]] = {
    "a string": lambda v: isinstance(v, str),
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "true or false": lambda v: isinstance(v, bool),
    "a list": lambda v: isinstance(v, list),
    "a list of strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "an object": lambda v: isinstance(v, dict),
    "an object of numbers": lambda v: isinstance(v, dict) and all(_KINDS["a number"](x) for x in v.values()),
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
        turns, leaf = _parsetree(conv, where)
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


def _parsetree(conv: dict, where: str) -> tuple[list[_ImportedTurn], str | None]:
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
        turn.meta = plain(_field(row, "meta", at, "an object", default={}))
        if not turn.ranked and _is_order(turn.meta.get("ranked")):  # a file from before "ranked" was a column
            turn.ranked = turn.meta.pop("ranked")
        _old_defects(turn)
        turns.append(_ImportedTurn(key, parent, edited_from, turn, sources, _time(row, at)))
        seen.add(key)
    leaf = _field(conv, "active_leaf", where, "a string", default=None, nullable=True)
    if leaf is not None and leaf not in seen:
        raise _bad(f"{where}.active_leaf", "must be the id of one of the turns")
    return turns, leaf


def _old_defects(turn: Turn) -> None:
    """A file from before the defects were stored per candidate: its turn's meta held one list per candidate."""
    if "defects" not in turn.meta:
        return
    old, strings = turn.meta.pop("defects"), _KINDS["a list of strings"]
    if isinstance(old, list) and len(old) == len(turn.candidates) and all(strings(flags) for flags in old):
        for c, flags in zip(turn.candidates, old):
            c.defects = c.defects or flags


def _link(row: dict, name: str, where: str, seen: set[str]) -> str | None:
    link = _field(row, name, where, "a string", default=None, nullable=True)
    if link is not None and link not in seen:
        raise _bad(f"{where}.{name}", "must be the id of an earlier turn")
    return link


def _parse_turn(obj: dict, where: str, text: str) -> tuple[Turn, list[Source]]:
    """Role, attachments, candidates, chosen and the plain columns (error, notice, …) of a message or tree row."""
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
        ranked=_order(obj, where),
        **{c.name: _field(obj, c.name, where, c.kind, default=_DEFAULTS[c.name], nullable=c.nullable) for c in _PLAIN},
    )
    return turn, [source for _, source in parsed]


def _order(obj: dict, where: str) -> list[int]:
    """The reranker's order of the candidates: a list of candidate indices (empty when absent)."""
    order = _field(obj, "ranked", where, "a list", default=[])
    if not _is_order(order):
        raise _bad(f"{where}.ranked", "must be a list of candidate indices")
    return order


def _is_order(value: Any) -> bool:
    return isinstance(value, list) and all(type(i) is int for i in value)


def _parse_attachment(value: Any, where: str) -> Attachment:
    """Kind, text and meta; the path is left empty (the file stays where it was exported)."""
    a = _object(value, where)
    kind = _field(a, "kind", where, "a string")
    if kind not in READERS:
        raise _bad(f"{where}.kind", f"must be {kinds_text()}")
    text = _field(a, "text", where, "a string", default="")
    return Attachment(kind, "", text, plain(_field(a, "meta", where, "an object", default={})))  # read by its kind


def _parse_candidate(value: Any, where: str) -> tuple[Candidate, Source]:
    c = _object(value, where)
    seed = _field(c, "seed", where, "an integer", default=None, nullable=True)
    if seed is not None and not -(2**63) <= seed < 2**63:
        raise _bad(f"{where}.seed", "is out of range")
    candidate = Candidate(
        text=_field(c, "text", where, "a string"),
        j=or_neg_inf(_field(c, "j", where, "a number", default=None, nullable=True)),
        d=finite(_field(c, "d", where, "a number", default=None, nullable=True)),
        score=or_neg_inf(_field(c, "score", where, "a number", default=None, nullable=True)),
        finished=_field(c, "finished", where, "true or false", default=True),
        **{name: plain(_field(c, name, where, kind)) for name, kind in STORED_SIGNALS.items() if name in c},
    )
    return candidate, (seed, _field(c, "model", where, "a string", default=None, nullable=True))


def insert_imported(db: sqlite3.Connection, owner: str, conv: _ImportedConversation) -> str:
    """Write one checked conversation under new ids; returns its id."""
    cid, now = new_id(), time.time()
    db.execute(
        "INSERT INTO conversations (id, owner, title, system_prompt, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
        (cid, owner, conv.title, conv.system_prompt, conv.created or now, now),
    )
    new_ids: dict[str, str] = {}
    for t in conv.turns:
        parent, edited_from = new_ids.get(t.parent or ""), new_ids.get(t.edited_from or "")
        new_ids[t.key] = insert_turn(db, cid, t.turn, parent, edited_from, t.created or now, t.sources)
    leaf = new_ids.get(conv.active_leaf or "") or (new_ids[conv.turns[-1].key] if conv.turns else None)
    db.execute("UPDATE conversations SET active_leaf = ? WHERE id = ?", (leaf, cid))
    return cid


def too_large(size: int, max_bytes: int) -> InputError:
    return InputError(f"The file is too large ({size / 2**20:.1f} MB); the limit is {max_bytes / 2**20:.0f} MB.")
