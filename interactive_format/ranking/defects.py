"""What a user rejects at a glance, found without a model: empty, loop, wrong language, cut off, echo.

Each detector is pure and fast (microseconds to a millisecond per reply) and returns a `Defect`
or None. `find` runs them all on one candidate. `context` is the dialogue as `context_text`
writes it ("user: …" / "assistant: …" lines); the conversation's language is the last user
message's (Chinese or English; a user who mixes the two may get either or both). A reply to
another context needs a model (D) and is not detected here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..dialogue import Candidate

NAMES = ("empty", "loop", "wrong_language", "cut_off", "echo")
LABELS = {"empty": "empty", "loop": "loop", "wrong_language": "wrong language", "cut_off": "cut off", "echo": "echo"}


@dataclass(frozen=True)
class Defect:
    name: str  # one of NAMES
    detail: str  # a short phrase saying what was found, for logs and the UI's tooltip


HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+(?:'[A-Za-z]+)?")
OTHER_SCRIPT = re.compile(
    r"[\u0370-\u03ff\u0400-\u04ff\u0590-\u06ff\u0900-\u0dff\u0e00-\u0e7f\u3040-\u30ff\uac00-\ud7af]"
)
CODE = re.compile(r"```.*?(```|$)|`[^`\n]*`|https?://\S+", re.DOTALL)
BRACKETED = re.compile(r"\[[^\]]*\]")  # a picture's tags or caption, written by the app in English
ROLE_LINE = re.compile(r"^(user|assistant): ", re.MULTILINE)
# Function words that make up a third or more of running English; French, German or Spanish use few of them.
ENGLISH = frozenset(
    "the a an and or but to of in on at for with from by is are was were be been it its this that these "
    "you your i me my we our they them he she his her can will would should do does not if as so have has "
    "what how there here all any some just also about i'm it's don't can't you're let's yes no please sure "
    "get help".split()
)
SENTENCE_END = set(".!?。！？…~～)）\"”'’」』】》*`")
RULE_CHARS = set("-=_*#~·.")  # markdown rules and dotted leaders repeat by design
LIST_MARKER = re.compile(r"^\s*(?:\d+[.)、]|[-*•]|#+)\s*")


def user_text(context: str) -> str:
    """The last user message of a `context_text` dialogue (the whole text when it has no role lines)."""
    parts = ROLE_LINE.split(context)
    if len(parts) == 1:
        return context.strip()
    turns = list(zip(parts[1::2], parts[2::2]))
    return next((text.strip() for role, text in reversed(turns) if role == "user"), "")


def script_counts(text: str) -> tuple[int, int, int]:
    """(Han characters, Latin words, letters of other scripts) outside code blocks and links."""
    text = CODE.sub(" ", text)
    return len(HAN.findall(text)), len(LATIN_WORD.findall(text)), len(OTHER_SCRIPT.findall(text))


def han_share(text: str) -> float | None:
    """Han characters / (Han characters + words + other letters); None for text without any."""
    han, words, other = script_counts(text)
    total = han + words + other
    return han / total if total else None


def language(text: str) -> str:
    """ "zh", "en", "mixed", "other" (another script, or Latin text that is not English) or "" (no words)."""
    han, words, other = script_counts(text)
    total = han + words + other
    if total == 0:
        return ""
    if other > 0.3 * total:
        return "other"
    share = han / total
    if share >= 0.6:
        return "zh"
    if share <= 0.1:
        latin = [w.lower() for w in LATIN_WORD.findall(CODE.sub(" ", text))]
        if len(latin) >= 12 and sum(w in ENGLISH for w in latin) < 0.1 * len(latin):
            return "other"
        return "en"
    return "mixed"


def conversation_language(context: str) -> str:
    """The language the user writes in: the last user message without the app's bracketed picture notes."""
    last = user_text(context)
    return language(BRACKETED.sub(" ", last)) or language(last)


def empty(reply: str) -> Defect | None:
    """Nothing a person can read: whitespace, punctuation or emoji only."""
    if any(unicodedata.category(ch)[0] in "LN" for ch in reply):
        return None
    return Defect("empty", "no words" if reply.strip() else "nothing")


def loop(reply: str) -> Defect | None:
    """The reply repeats itself: a chunk several times in a row, a line twice, or a phrase three times."""
    compact = re.sub(r"\s+", "", reply)
    for m in re.finditer(r"(.{1,50}?)\1{2,}", compact):
        unit, span = m.group(1), len(m.group(0))
        if set(unit) <= RULE_CHARS:
            continue
        wordy = any(unicodedata.category(ch)[0] in "LN" for ch in unit)
        if (wordy and span >= 15) or (not wordy and span >= 10):
            return Defect("loop", f"{unit[:20]!r} repeated {span // len(unit)} times")
    lines = Counter(_norm(LIST_MARKER.sub("", line)) for line in reply.splitlines())
    repeated = [line for line, k in lines.items() if k >= 2 and len(line) >= 10]
    if repeated:
        return Defect("loop", f"line {repeated[0][:20]!r} {lines[repeated[0]]} times")
    units = _units(reply)
    han = sum(bool(HAN.fullmatch(u)) for u in units)
    n = 8 if han > len(units) / 2 else 5  # a Chinese character carries less than a word
    grams = Counter(tuple(units[i : i + n]) for i in range(len(units) - n + 1))
    if grams and (top := grams.most_common(1)[0])[1] >= 3:
        joiner = "" if n == 8 else " "
        return Defect("loop", f"{joiner.join(top[0])[:30]!r} {top[1]} times")
    return None


def wrong_language(reply: str, context: str) -> Defect | None:
    """A reply not in the user's language: mostly English (or another language) to a Chinese message,
    Chinese (a quarter or more) or another language to an English one. A user who mixes the two may get
    either; Chinese replies may name things in English (Wi-Fi, Python), as people write."""
    want, got = conversation_language(context), language(reply)
    if not got or want in ("", "other") or got == want:
        return None
    share = han_share(reply) or 0.0
    wrong = got == "other" or (want == "zh" and share < 0.3) or (want == "en" and share > 0.25)
    if not wrong:
        return None
    names = {"zh": "Chinese", "en": "English", "mixed": "mixed Chinese and English", "other": "another language"}
    return Defect("wrong_language", f"{names[got]} reply to a message in {names[want]}")


def cut_off(reply: str, finished: bool) -> Defect | None:
    """Stopped by the token limit (or time) in mid-sentence; a reply that ends a sentence reads complete."""
    if finished:
        return None
    tail = reply.rstrip()
    last = tail.splitlines()[-1] if tail else ""
    # A list's next item begun and no more ("3.", "5. **") or bold left open ("3. **西湖"): "." and "*" end
    # sentences and bold text elsewhere, so these are told apart by the last line.
    begun = bool(LIST_MARKER.match(last)) and not LIST_MARKER.sub("", last).strip("* ")
    if last.count("**") % 2 == 0 and not begun and (tail[-1] in SENTENCE_END or unicodedata.category(tail[-1]) == "So"):
        return None
    return Defect("cut_off", "stopped mid-sentence at the token limit")


def echo(reply: str, context: str) -> Defect | None:
    """The reply is (nearly) only the user's words, or quotes a long message (≥ 45 bytes) whole.

    Answers that restate the question ("Yes, you can change the address …") or confirm a command
    ("I turned off the lights in the bedroom.") add words of their own and are not echoes.
    """
    u, r = _norm(user_text(context)), _norm(reply)
    if not u or len(r) < 4:
        return None
    match = SequenceMatcher(None, u, r, autojunk=False).find_longest_match(0, len(u), 0, len(r))
    if match.size >= 0.9 * len(r):
        return Defect("echo", "only the user's own words")
    if len(u.encode()) >= 45 and match.size == len(u):
        return Defect("echo", "repeats the user's message")
    return None


def find(reply: str, context: str = "", finished: bool = True) -> list[Defect]:
    """Every defect of one candidate (an empty reply is only "empty")."""
    if (e := empty(reply)) is not None:
        return [e]
    found = [loop(reply), wrong_language(reply, context), cut_off(reply, finished), echo(reply, context)]
    return [d for d in found if d is not None]


def why_shown(candidates: list[Candidate], order: list[int], chosen: int, found: list[list[str]] | None = None) -> str:
    """One line on why the shown reply won (against the runner-up), e.g. "fewest defects; D 0.81 vs 0.34".

    `found`: each candidate's defects (default: the ones rank() filled in).
    """
    if len(candidates) < 2 or len(order) < 2 or chosen not in order:
        return ""
    if chosen != order[0]:
        return f"You picked this reply (ranked {order.index(chosen) + 1} of {len(order)})."
    found = [c.defects for c in candidates] if found is None else found
    best, runner = candidates[order[0]], candidates[order[1]]
    reason = "fewest defects" if len(found[order[0]]) < len(found[order[1]]) else "highest score"
    if best.d is not None and runner.d is not None:
        versus = f"D {best.d:.2f} vs {runner.d:.2f}"
    elif math.isfinite(best.j) and math.isfinite(runner.j):
        versus = f"J {best.j:.2f} vs {runner.j:.2f}"
    else:
        versus = "the engine's order"
    line = f"Shown: {reason}; {versus}"
    if found[order[0]]:
        labels = ", ".join(LABELS.get(n, n) for n in found[order[0]])
        line += f"; every candidate has a defect, this one: {labels}"
    flagged = sum(bool(f) for f in found)
    return line + (f"; {flagged} of {len(candidates)} flagged ⚠" if flagged else "")


def _norm(text: str) -> str:
    """Lower case, letters, digits and Han only: what two texts share, whatever the spacing and punctuation."""
    return "".join(ch for ch in text.lower() if unicodedata.category(ch)[0] in "LN")


def _units(text: str) -> list[str]:
    """Words and single Han characters, in order (punctuation and list numbers dropped)."""
    return [u.lower() for u in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]|[^\W\d_]+", text)]
