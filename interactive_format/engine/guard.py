"""The input guard: the configured limits every message and file passes before any model sees it.

`InputGuard` checks text, and files by size, name and leading bytes against the registered readers
(readers.py). Reading a file into text is its reader's (with the engine's Captioner, vision.py, or
Transcriber, speech.py).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from ..config import Limits
from ..errors import InputError
from ..inputs.readers import READERS, formats_text
from ..uploads import checked_size, display_name, sniff

PREVIEW_CHARS = 300  # how much of a refused giant message stays visible in the chat
# Embeddings, overrides and isolates: they can make shown text read differently from what was sent.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class InputGuard:
    """Checks text and files against the configured limits; raises InputError with the reason."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def text(self, text: str | None) -> str:
        """The message made safe: control and bidi-override characters removed, broken surrogates
        replaced; refused if over the limit."""
        text = text if isinstance(text, str) else "" if text is None else str(text)
        if len(text) > 4 * self.limits.max_text_chars:  # far over: refuse before scanning it
            raise self._too_long(len(text))
        text = "".join(_clean_char(c) for c in text).strip()
        if len(text) > self.limits.max_text_chars:
            raise self._too_long(len(text))
        return text

    def _too_long(self, chars: int) -> InputError:
        return InputError(
            f"Your message is {chars:,} characters long; the limit is {self.limits.max_text_chars:,}. "
            "Please shorten it or send it in parts."
        )

    def file(self, path: str | Path) -> str:
        """The kind of an uploaded file (a key of readers.READERS), after size and type checks.

        A known extension on another kind's content (a photo saved as .wav) is read by its content; a kind
        without leading-byte signatures (plain text, say) is known by its name alone.
        """
        path = Path(path)
        checked_size(path, self.limits)
        suffix = path.suffix.lower()
        accepted = {kind: reader.accepted(self.limits) for kind, reader in READERS.items()}
        if not any(suffix in types for types in accepted.values()):
            kinds = " ".join(t for types in accepted.values() for t in types)
            raise InputError(
                f"The file '{display_name(path)}' is not a supported {formats_text()} format (accepted: {kinds})."
            )
        named = next(kind for kind, types in accepted.items() if suffix in types)
        return (sniff(path) or named) if READERS[named].signatures else named  # no signatures: the name decides


def visible(text: str) -> bool:
    """Whether `text` has a character that shows (not only spaces, controls or zero-width marks)."""
    return any(unicodedata.category(c)[0] not in "CZ" for c in text)


def _clean_char(c: str) -> str:
    """One character of a message: kept, dropped (controls, bidi overrides) or U+FFFD (a lone surrogate)."""
    if c in "\n\t":
        return c
    if c in BIDI_CONTROLS or unicodedata.category(c) == "Cc":
        return ""
    return "\ufffd" if unicodedata.category(c) == "Cs" else c


def preview(text: str) -> str:
    """The start of a refused message, for the chat history."""
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + f"… [{len(text):,} characters]"
