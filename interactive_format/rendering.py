"""Turns into chat messages, tables and labels: pure functions, no gradio here.

`render` is the one place that turns a `Conversation` into Gradio's messages format (plain
dicts), and remembers which turn each message came from so likes and edits find their turn.
Everything from users, models or files goes through `escape`: shown literally, never as HTML.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .defects import LABELS, why_shown
from .dialogue import Attachment, Conversation, Turn
from .errors import InputError, InteractiveFormatError
from .readers import READERS, formats_text

if TYPE_CHECKING:
    from .flows import Flow
    from .history import Branch, Chat

Origin = tuple[int, str, int | None]  # the (turn index, part, attachment index) a chat message shows


# A markdown link or reference definition whose target is not http(s) or mailto (javascript:, data:, ...).
UNSAFE_LINK = re.compile(r"\]\((?!\s*(?:https?://|mailto:))")
LINK_DEFINITION = re.compile(r"^( {0,3}\[[^\]\n]*\]):", re.MULTILINE)


def escape(text: str) -> str:
    """Text from users, models or files shown literally, never as HTML (markdown still works, but
    links only to http(s) and mailto: anything else stays plain text)."""
    text = UNSAFE_LINK.sub(r"]\\(", html.escape(text, quote=False))
    return LINK_DEFINITION.sub(r"\1\\:", text)


def unescape(shown: str) -> str:
    """The text a user edited back from its escaped form (text typed as-is stays as typed)."""
    plain = html.unescape(shown).replace("]\\(", "](")
    plain = re.sub(r"^( {0,3}\[[^\]\n]*\])\\:", r"\1:", plain, flags=re.MULTILINE)
    return plain if escape(plain) == shown else shown


def _cell(text: str) -> str:
    """A reply squeezed into one markdown table cell."""
    text = escape(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 400 else text[:400] + "…"


def _num(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.3f}"


def ranked(turn: Turn) -> list[int]:
    order = turn.ranked
    return order if sorted(order) == list(range(len(turn.candidates))) else list(range(len(turn.candidates)))


def candidates_table(turn: Turn) -> str:
    """Why the shown reply won (one line), then a markdown table of the candidates, best first, defects flagged."""
    found = [c.defects for c in turn.candidates]
    order = ranked(turn)
    rows = ["| | score | D | J | reply |", "|---|---|---|---|---|"]
    for rank, i in enumerate(order, 1):
        c = turn.candidates[i]
        mark = "▶" if i == turn.chosen else str(rank)
        flags = f"⚠ *{', '.join(LABELS.get(n, n) for n in found[i])}:* " if found[i] else ""
        rows.append(f"| {mark} | {_num(c.score)} | {_num(c.d)} | {_num(c.j)} | {flags}{_cell(c.text) or '*(empty)*'} |")
    why = why_shown(turn.candidates, order, turn.chosen, found)
    return (f"**{escape(why)}**\n\n" if why else "") + "\n".join(rows)


def caption_label(a: Attachment, number: int | None = None) -> str:
    """What the chat shows before an attachment's text ("Picture 2 caption", "Transcript (en)"): its reader's."""
    reader = READERS.get(a.kind)
    return reader.label(a.meta, number) if reader else a.kind


def _user_messages(turn: Turn, i: int) -> list[tuple[dict, Origin]]:
    out: list[tuple[dict, Origin]] = []
    for k, a in enumerate(turn.attachments):
        if a.path and Path(a.path).is_file():  # imported chats (and cleaned-up uploads) keep only the text
            out.append(({"role": "user", "content": {"path": a.path}}, (i, "file", k)))
        if a.text:
            label = caption_label(a, turn.number(k))
            out.append(({"role": "user", "content": f"*{label}:* {escape(a.text)}"}, (i, "caption", k)))
    if turn.text:
        out.append(({"role": "user", "content": escape(turn.text)}, (i, "text", None)))
    if turn.error:
        out.append(({"role": "assistant", "content": f"⚠️ {escape(turn.error)}"}, (i, "error", None)))
    return out


def _assistant_messages(turn: Turn, i: int, ranking_note: str, pending: bool) -> list[tuple[dict, Origin]]:
    out: list[tuple[dict, Origin]] = []
    notice = (
        [({"role": "assistant", "content": f"ℹ️ {escape(turn.notice)}"}, (i, "notice", None))] if turn.notice else []
    )
    if turn.error:
        return notice + [({"role": "assistant", "content": f"⚠️ {escape(turn.error)}"}, (i, "error", None))]
    # The reply first, then what happened to it ("Stopped before…", "cut off…"), as other chat UIs show it.
    out.append(({"role": "assistant", "content": escape(turn.reply) or "…"}, (i, "reply", None)))
    out += notice
    if len(turn.candidates) > 1 or (turn.candidates and not pending):
        n = len(turn.candidates)
        title = f"Sampling {n} candidates…" if pending else f"{n} candidate(s), ranked"
        meta = {"title": title, "status": "pending" if pending else "done"}
        body = (
            candidates_table(turn)
            if not pending
            else "\n\n".join(f"{k + 1}. {_cell(c.text)}" for k, c in enumerate(turn.candidates))
        )
        out.append(
            (
                {"role": "assistant", "content": f"{body}\n\n*{escape(ranking_note)}*", "metadata": meta},
                (i, "candidates", None),
            )
        )
    return out


def render(conversation: Conversation, ranking_note: str = "", pending: bool = False) -> list[tuple[dict, Origin]]:
    """Each chat message in Gradio's messages format with the turn it shows (pending: the last reply streams)."""
    out: list[tuple[dict, Origin]] = []
    last = len(conversation.turns) - 1
    for i, turn in enumerate(conversation.turns):
        if turn.role == "user":
            out += _user_messages(turn, i)
        else:
            out += _assistant_messages(turn, i, ranking_note, pending and i == last)
    return out


def to_messages(conversation: Conversation, ranking_note: str = "", pending: bool = False) -> list[dict]:
    """The conversation in Gradio's messages format."""
    return [message for message, _ in render(conversation, ranking_note, pending)]


def candidate_info(turn: Turn, browse: int | None) -> str:
    """The candidate being browsed: its place in the ranking, scores, whether it is shown, and its text."""
    order = ranked(turn)
    idx = turn.chosen if browse is None else browse
    c = turn.candidates[idx]
    shown = "shown" if idx == turn.chosen else "not shown: *Use this reply* continues with it"
    return (
        f"**Candidate {order.index(idx) + 1}/{len(order)}** · score {_num(c.score)} · D {_num(c.d)} · "
        f"J {_num(c.j)} · {shown}\n\n{escape(c.text) or '*(empty)*'}"
    )


def turn_result(conversation: Conversation) -> dict:
    """The API's answer for the last turn: reply, candidates with scores, caption/transcript."""
    user = next(t for t in reversed(conversation.turns) if t.role == "user")
    reply = conversation.turns[-1] if conversation.turns[-1].role == "assistant" else None
    error = user.error or (reply.error if reply else None)
    if error:
        raise InteractiveFormatError(error)
    order = ranked(reply)
    return {
        "reply": reply.reply,
        "chosen": reply.chosen,
        "candidates": [
            {
                "text": c.text,
                "score": c.score,
                "d": c.d,
                "j": c.j,
                "finished": c.finished,
                "rank": order.index(i) + 1,
                "defects": c.defects,
            }
            for i, c in enumerate(reply.candidates)
        ],
        "transcript": next((a.text for a in user.attachments if a.kind == "audio"), None),
        "caption": next((a.text for a in user.attachments if a.kind == "image"), None),
        "captions": [a.text for a in user.attachments if a.kind == "image"],  # every picture's, in order
        "notice": reply.notice,
        "meta": dict(reply.meta),
    }


def header(flow: Flow) -> str:
    return f"## {escape(flow.title)}\n{escape(flow.description)}"


def models_line(engine) -> str:
    m = engine.config.models
    reader = getattr(engine.captioner, "reader", None)  # None: text in pictures is off (or not installed)
    text = f" + text `{reader.name}`" if reader is not None else ""
    return f"Models: chat `{m.llm}` · speech `{m.asr}` · pictures `{m.captioner}`{text}"


def box_options(flow: Flow) -> dict:
    """The input box's file types and sources for the flow's modalities (text only: no uploads)."""
    allowed = [r for r in READERS.values() if r.modality in flow.modalities]
    types = [t for r in allowed for t in r.box_types or r.types]
    sources = [s for s in ("upload", "microphone") if any(s in r.sources for r in allowed)]
    return {"file_types": types, "sources": sources}


def failed_reply(chat: Chat) -> int | None:
    """Index of the last turn if it is a reply that failed or was cut off by the time limit (and can be retried)."""
    turns = chat.conversation.turns
    last = turns[-1] if turns else None
    retry = last is not None and last.role == "assistant" and (last.error or last.meta.get("cut_off"))
    return len(turns) - 1 if retry else None


def branch_label(chat: Chat, b: Branch) -> str:
    """How the branch menu names an edited message: its version and the start of its text."""
    turn = chat.conversation.turns[b.index]
    text = " ".join(turn.text.split()) or f"({formats_text()})"
    text = text if len(text) <= 40 else text[:39] + "…"
    return f"{b.position + 1}/{b.count}: “{text}”"


def edit_target(conversation: Conversation, index: Any, value: Any) -> tuple[int, str, dict[int, str] | None]:
    """(user turn index, new text, new attachment texts) for an edit of chat message `index` (InputError if none)."""
    origins = [origin for _, origin in render(conversation)]
    if not isinstance(index, int) or not 0 <= index < len(origins) or not isinstance(value, str):
        raise InputError("That message is no longer there; please reload the conversation.")
    i, part, k = origins[index]
    turn = conversation.turns[i]
    if part == "text":
        text, attachment_texts = unescape(value).strip(), None
    elif part == "caption":
        a = turn.attachments[k]
        label = f"*{caption_label(a, turn.number(k))}:* "
        text, attachment_texts = turn.text, {k: unescape(value.removeprefix(label)).strip()}
    else:
        raise InputError("Only your messages, picture captions and transcripts can be edited.")
    if not text and not turn.attachments:
        raise InputError("An edited message cannot be empty.")
    return i, text, attachment_texts
