"""One internal history: turns with attachments and candidates, and the prompt the LLM sees.

The LLM sees attachments as the text their reader made of them (a caption, a transcript; how it
enters the prompt is the reader's, readers.py); the UI shows the media and that text. Turns that
failed (bad input, model error) stay visible but never reach the LLM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from .inputs.readers import READERS, meta_for
from .inputs.reading import ReadingMeta


@dataclass
class Attachment:
    """A file the user sent (a picture, a voice clip, …), and the text its reader made of it."""

    kind: str  # a key of readers.READERS: "image", "audio"
    path: str  # file on the server, shown back in the UI
    text: str = ""  # caption or transcript ("" until processed)
    meta: ReadingMeta | dict | None = None  # how it was read; a dict (stored JSON) becomes the kind's meta type

    def __post_init__(self) -> None:
        if not isinstance(self.meta, ReadingMeta):
            self.meta = meta_for(self.kind, self.meta)


@dataclass
class Candidate:
    """One sampled reply and its scores."""

    text: str
    j: float  # mean token log-prob under the generator
    d: float | None = None  # discriminator's P(human); None when D is off
    score: float = float("-inf")  # the ranking's combined score (the seed's: λ·D + (1−λ)·J, or J alone)
    finished: bool = True  # False when cut by the token limit or by stop
    # What the ranking found, stored per candidate by name (rows.py, the candidates' `signals` column) and
    # exported: fields with a "signal" (what an import must hold there). A new ranking signal (signals/) needs
    # no field: its value is kept in `scores` under its name.
    defects: list[str] = field(default_factory=list, metadata={"signal": "a list of strings"})  # defects.NAMES
    # Each ranking signal's value by its name in signals.SIGNALS (those the ranking computed, finite ones)
    scores: dict[str, float] = field(default_factory=dict, metadata={"signal": "an object of numbers"})
    # Why it was ended before it finished ("pruned at 24 tokens: loop", "stopped: 2 candidates had finished";
    # pruning.py): such a candidate ranks after every one that ran its course. "" when it ran its course.
    ended: str = field(default="", metadata={"signal": "a string"})


STORED_SIGNALS: dict[str, str] = {f.name: f.metadata["signal"] for f in fields(Candidate) if "signal" in f.metadata}


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    chosen: int = 0  # index of the candidate shown
    error: str | None = None  # shown to the user; the turn is left out of the prompt
    notice: str | None = None  # e.g. "2 oldest turns no longer fit and were left out"
    meta: dict = field(default_factory=dict)  # seed, model, timings
    ranked: list[int] = field(default_factory=list)  # candidate indices, best first, as the reranker ordered them

    @property
    def reply(self) -> str:
        """The text shown for an assistant turn."""
        return self.candidates[self.chosen].text if self.candidates else self.text

    def number(self, k: int) -> int | None:
        """1, 2, … for attachment `k` when this turn has several of its kind; None for the only one."""
        same = [i for i, a in enumerate(self.attachments) if a.kind == self.attachments[k].kind]
        return same.index(k) + 1 if len(same) > 1 else None

    def prompt_parts(self) -> list[dict] | None:
        """The turn as image and text parts for a model that sees pictures; None when no picture file is left."""
        if not any(_shown_picture(a) for a in self.attachments):
            return None
        parts: list[dict] = []
        for k, a in enumerate(self.attachments):
            number, reader = self.number(k), READERS.get(a.kind)
            if _shown_picture(a):
                if number:
                    parts.append({"type": "text", "text": f"{reader.title} {number}:"})
                parts.append({"type": "image", "path": a.path})
            elif reader and (text := reader.prompt(a.text, number)):  # a picture whose file is gone: as text
                parts.append({"type": "text", "text": text})
        if self.text:
            parts.append({"type": "text", "text": self.text})
        return parts

    def prompt_text(self) -> str:
        """What the LLM sees for this turn: each kind's heading when it has several, each reading, the text."""
        if self.role == "assistant":
            return self.reply
        parts = []
        for kind, reader in READERS.items():
            count = sum(a.kind == kind for a in self.attachments)
            if count > 1:
                parts.append(reader.heading(count))
        for k, a in enumerate(self.attachments):
            if a.kind in READERS:
                parts.append(READERS[a.kind].prompt(a.text, self.number(k)))
        if self.text:
            parts.append(self.text)
        return "\n".join(p for p in parts if p)


def _shown_picture(a: Attachment) -> bool:
    """An attachment a vision-language model sees itself: its reader's kind is `visual`, its file still there."""
    reader = READERS.get(a.kind)
    return bool(reader and reader.visual and a.path and Path(a.path).is_file())


@dataclass
class Conversation:
    system_prompt: str
    turns: list[Turn] = field(default_factory=list)

    def usable_turns(self) -> list[Turn]:
        """Turns that take part in the prompt: no errors, and each user turn answered or last."""
        return [t for t in self.turns if t.error is None and (t.role == "user" or t.candidates or t.text)]

    def messages(self, pictures: bool = False) -> list[dict]:
        """All usable turns as chat-template messages, system prompt first.

        `pictures` (a vision-language model): a user turn with pictures has a list of parts as content,
        {"type": "image", "path": …} for each picture whose file is still there, then its text.
        """
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for turn in self.usable_turns():
            content = turn.prompt_parts() if pictures and turn.role == "user" else None
            msgs.append({"role": turn.role, "content": content or turn.prompt_text()})
        return msgs


def fit_to_budget(
    messages: list[dict], count_tokens: Callable[[list[dict]], int], budget: int
) -> tuple[list[dict], int]:
    """Drop the oldest non-system turns until the prompt fits `budget` tokens.

    Returns (messages, number dropped). Turns are dropped from the front in user/assistant
    pairs so the prompt still starts with a user turn; the last user turn is always kept,
    so a single message longer than the budget raises ValueError instead of being cut.
    """
    system = [m for m in messages[:1] if m["role"] == "system"]
    rest = messages[len(system) :]
    dropped = 0
    while count_tokens(system + rest) > budget:
        if len(rest) <= 1:
            raise ValueError("message does not fit the context budget")
        cut = 2 if len(rest) > 2 and rest[1]["role"] == "assistant" else 1
        rest = rest[cut:]
        dropped += cut
    return system + rest, dropped


def context_text(messages: list[dict]) -> str:
    """The dialogue as plain "role: text" lines (no system prompt): what D reads as context."""
    return "\n".join(f"{m['role']}: {_plain(m['content'])}" for m in messages if m["role"] != "system")


def _plain(content: str | list[dict]) -> str:
    """Message content as text: the text parts of a list, a picture as "[picture]"."""
    if isinstance(content, str):
        return content
    return " ".join(p["text"] if p.get("type") == "text" else "[picture]" for p in content)
