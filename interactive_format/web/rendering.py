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

from ..ranking.defects import LABELS, why_shown
from ..dialogue import Attachment, Candidate, Conversation, Turn
from ..errors import InputError, InteractiveFormatError
from ..engine.history import NEW_CHAT
from .i18n import localize
from ..media.vision import TEXT_HEADING
from ..inputs.readers import READERS, formats_text

if TYPE_CHECKING:
    from ..flows import Flow
    from ..engine.history import Branch, Chat

Origin = tuple[int, str, int | None]  # the (turn index, part, attachment index) a chat message shows
# What starts a notice's or an error's bubble: the page's style sheet (ui.CSS) gives such bubbles no like buttons.
NOTE_MARK = '<span class="if-note">ℹ️</span>'
ERROR_MARK = '<span class="if-error">⚠️</span>'
REPLY_MARK = '<span class="if-reply">{}</span>'  # a candidate's text in the panel: the model's words, not the UI's


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


def _snippet(text: str, limit: int = 400) -> str:
    """A reply shown on one line of the candidates list (escaped, shortened)."""
    text = " ".join(escape(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def _num(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.3f}"


def ranked(turn: Turn) -> list[int]:
    order = turn.ranked
    return order if sorted(order) == list(range(len(turn.candidates))) else list(range(len(turn.candidates)))


def same_text(a: str, b: str) -> bool:
    """Two candidates a reader cannot tell apart (the same words, whatever the spacing)."""
    return " ".join(a.split()) == " ".join(b.split())


def duplicates(candidates: list[Candidate], order: list[int]) -> dict[int, int]:
    """{candidate: the better-ranked candidate with the same text} for every repeated reply."""
    first: dict[str, int] = {}
    out = {}
    for i in order:
        key = " ".join(candidates[i].text.split())
        if key in first:
            out[i] = first[key]
        else:
            first[key] = i
    return out


def _scores(c: Candidate, shown_fields: tuple[str, ...], lang: str) -> str:
    values = {"score": c.score, "D": c.d, "J": c.j}
    return " · ".join(f"{localize(name, lang)} {_num(values[name])}" for name in shown_fields)


def score_fields(candidates: list[Candidate]) -> tuple[str, ...]:
    """The scores worth showing: the combined score, and D or J only where they differ from it (with λ = 1
    the score is D, with λ = 0 it is J: the same column twice says nothing)."""
    fields = ["score"]
    for name, value in (("D", lambda c: c.d), ("J", lambda c: c.j)):
        known = [c for c in candidates if value(c) is not None and math.isfinite(value(c))]
        if known and any(not math.isclose(value(c), c.score, abs_tol=1e-9) for c in known):
            fields.append(name)
    return tuple(fields)


def _reply(shown: str, lang: str) -> str:
    """A candidate's (escaped) text in the panel, marked as the model's words (REPLY_MARK), or "(empty)"."""
    return REPLY_MARK.format(shown) if shown else f"*{localize('(empty)', lang)}*"


def _flags(c: Candidate, lang: str) -> str:
    return ", ".join(localize(LABELS.get(n, n), lang) for n in c.defects).replace(", ", "、" if lang == "zh" else ", ")


def candidates_panel(turn: Turn, ranking_note: str = "", lang: str = "en") -> str:
    """The last reply's candidates, best first: why the shown one won (one line), then each distinct reply once
    with its scores, its defects flagged ⚠, repeats folded into the first ("same as 2"), and the draft that was
    streamed while the reply was written marked."""
    order = ranked(turn)
    fields = score_fields(turn.candidates)
    repeats = duplicates(turn.candidates, order)
    streamed = turn.meta.get("streamed")
    lines = []
    for rank, i in enumerate(order, 1):
        if i in repeats:
            continue
        c = turn.candidates[i]
        marks = ["▶ **" + localize("shown", lang) + "**"] if i == turn.chosen else []
        if i == streamed and i != turn.chosen:
            marks.append("*" + localize("streamed", lang) + "*")
        same = [order.index(k) + 1 for k, of in repeats.items() if of == i]
        if same:
            marks.append("×" + str(1 + len(same)))
        scores = _scores(c, fields, lang)
        flags = f"⚠ *{_flags(c, lang)}*" if c.defects else ""
        ended = f"✂ *{escape(localize(c.ended, lang))}*" if c.ended else ""  # ended while sampled (pruning.py)
        head = " · ".join(x for x in (f"**{rank}**", *marks, scores, flags, ended) if x)
        lines.append(f"{head}  \n{_reply(_snippet(c.text), lang)}")
    why = why_shown(turn.candidates, order, turn.chosen, [c.defects for c in turn.candidates])
    if turn.meta.get("kept_streamed") and turn.chosen == order[0]:
        why = "Shown: the reply you watched being written (no candidate has fewer defects)"
    top = f"#### {panel_title(turn, lang)}\n\n" + (f"**{escape(localize(why, lang))}**\n\n" if why else "")
    note = f"\n\n*{escape(localize(ranking_note, lang))}*" if ranking_note else ""
    return top + "\n\n".join(lines) + note


def panel_title(turn: Turn, lang: str = "en") -> str:
    """The candidates panel's heading: how many were sampled (and how many repeated another)."""
    n = len(turn.candidates)
    same = len(duplicates(turn.candidates, ranked(turn)))
    text = "1 candidate" if n == 1 else f"{n} candidates, ranked" + (f" ({same} identical)" if same else "")
    return localize(text, lang)


def chat_title(title: str, lang: str = "en") -> str:
    """A chat's title in the sidebar: one the app made (`title_for`: "New chat", a reader's "Voice message") in the
    page's language, the user's words as they are (a user's "Done" stays "Done")."""
    made = title == NEW_CHAT or any(title == r.title for r in READERS.values())  # the registry as it is now
    return localize(title, lang) if made else title


def caption_label(a: Attachment, number: int | None = None, lang: str = "en") -> str:
    """What the chat shows before an attachment's text ("Picture 2 caption", "Transcript (en)"): its reader's."""
    reader = READERS.get(a.kind)
    return localize(reader.label(a.meta, number) if reader else a.kind, lang)


def caption_prefix(a: Attachment, number: int | None, lang: str) -> str:
    """What starts an attachment's text in the chat: "*Picture 2 tags:* " ("*图片 2 的标签：* " in Chinese)."""
    return f"*{caption_label(a, number, lang)}{'：' if lang == 'zh' else ':'}* "


def shown_text(a: Attachment, lang: str = "en") -> str:
    """An attachment's text as the chat shows it: a picture's tags (the app's words) in `lang`; the text read
    from the picture, a transcript or a captioning model's sentence as they are."""
    if lang == "en" or a.kind != "image" or getattr(a.meta, "kind", "") != "tags":
        return a.text
    tags, heading, lines = a.text.partition(f" {TEXT_HEADING}\n")
    return localize(tags, lang) + (f" {localize(TEXT_HEADING, lang)}\n{lines}" if heading else "")


def _user_messages(turn: Turn, i: int, lang: str) -> list[tuple[dict, Origin]]:
    out: list[tuple[dict, Origin]] = []
    for k, a in enumerate(turn.attachments):
        if a.path and Path(a.path).is_file():  # imported chats (and cleaned-up uploads) keep only the text
            out.append(({"role": "user", "content": {"path": a.path}}, (i, "file", k)))
        if a.text:
            label = caption_prefix(a, turn.number(k), lang)
            out.append(({"role": "user", "content": f"{label}{escape(shown_text(a, lang))}"}, (i, "caption", k)))
    if turn.meta.get("refused"):  # a file that was refused: the user still sees what they sent
        name = localize(f"{turn.meta['refused']} (refused)", lang)
        out.append(({"role": "user", "content": f"📎 {escape(name)}"}, (i, "refused", None)))
    if turn.text:
        out.append(({"role": "user", "content": escape(turn.text)}, (i, "text", None)))
    if turn.error:
        out.append(({"role": "assistant", "content": f"{ERROR_MARK} {escape(localize(turn.error, lang))}"},
                    (i, "error", None)))  # fmt: skip
    return out


def _assistant_messages(turn: Turn, i: int, lang: str) -> list[tuple[dict, Origin]]:
    notice = [({"role": "assistant", "content": f"{NOTE_MARK} {escape(localize(turn.notice, lang))}"},
               (i, "notice", None))] if turn.notice else []  # fmt: skip
    if turn.error:
        return notice + [
            ({"role": "assistant", "content": f"{ERROR_MARK} {escape(localize(turn.error, lang))}"}, (i, "error", None))
        ]
    # The reply first, then what happened to it ("Stopped before…", "cut off…"), as other chat UIs show it.
    return [({"role": "assistant", "content": escape(turn.reply) or "…"}, (i, "reply", None)), *notice]


def render(conversation: Conversation, lang: str = "en") -> list[tuple[dict, Origin]]:
    """Each chat message in Gradio's messages format with the turn it shows; the app's own words in `lang`."""
    out: list[tuple[dict, Origin]] = []
    for i, turn in enumerate(conversation.turns):
        out += _user_messages(turn, i, lang) if turn.role == "user" else _assistant_messages(turn, i, lang)
    return out


def to_messages(conversation: Conversation, lang: str = "en") -> list[dict]:
    """The conversation in Gradio's messages format."""
    return [message for message, _ in render(conversation, lang)]


def candidate_info(turn: Turn, browse: int | None, lang: str = "en") -> str:
    """The candidate being browsed: its place in the ranking, scores, whether it is shown, and its text."""
    order = ranked(turn)
    idx = turn.chosen if browse is None else browse
    c = turn.candidates[idx]
    shown = localize("shown" if idx == turn.chosen else "not shown: *Use this reply* continues with it", lang)
    scores = _scores(c, score_fields(turn.candidates), lang)
    flags = f" · ⚠ *{_flags(c, lang)}*" if c.defects else ""
    flags += f" · ✂ {escape(localize(c.ended, lang))}" if c.ended else ""  # ended while sampled (pruning.py)
    place = localize(f"Candidate {order.index(idx) + 1}/{len(order)}", lang)
    text = f'<div class="if-reply">\n\n{escape(c.text)}\n\n</div>' if c.text else _reply("", lang)  # markdown inside
    return f"**{place}** · {scores}{flags} · {shown}\n\n{text}"


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
                "ended": c.ended,  # why it was ended before it finished (pruning.py); "" when it ran its course
            }
            for i, c in enumerate(reply.candidates)
        ],
        "transcript": next((a.text for a in user.attachments if a.kind == "audio"), None),
        "caption": next((a.text for a in user.attachments if a.kind == "image"), None),
        "captions": [a.text for a in user.attachments if a.kind == "image"],  # every picture's, in order
        "notice": reply.notice,
        "meta": dict(reply.meta),
    }


def header(flow: Flow, lang: str = "en") -> str:
    """The flow's title and description, in the session's language when the flow gives one (flows.py)."""
    flow = flow.in_language(lang)
    return f"## {escape(flow.title)}\n{escape(flow.description)}"


def models_line(engine, lang: str = "en") -> str:
    m = engine.config.models
    reader = getattr(engine.captioner, "reader", None)  # None: text in pictures is off (or not installed)
    text = f" + text `{reader.name}`" if reader is not None else ""
    return localize(f"Models: chat `{m.llm}` · speech `{m.asr}` · pictures `{m.captioner}`{text}", lang)


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


def edit_target(
    conversation: Conversation, index: Any, value: Any, lang: str = "en"
) -> tuple[int, str, dict[int, str] | None]:
    """(user turn index, new text, new attachment texts) for an edit of chat message `index` (InputError if none)."""
    origins = [origin for _, origin in render(conversation, lang)]
    if not isinstance(index, int) or not 0 <= index < len(origins) or not isinstance(value, str):
        raise InputError("That message is no longer there; please reload the conversation.")
    i, part, k = origins[index]
    turn = conversation.turns[i]
    if part == "text":
        text, attachment_texts = unescape(value).strip(), None
    elif part == "caption":
        a = turn.attachments[k]
        label = caption_prefix(a, turn.number(k), lang)
        edited = unescape(value.removeprefix(label)).strip()  # unchanged: the stored (English) tags are kept
        text, attachment_texts = turn.text, {k: a.text if edited == shown_text(a, lang).strip() else edited}
    else:
        raise InputError("Only your messages, picture captions and transcripts can be edited.")
    if not text and not turn.attachments:
        raise InputError("An edited message cannot be empty.")
    return i, text, attachment_texts
