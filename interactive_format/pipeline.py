"""Turning what the user sent into text: the input guard, speech-to-text and picture description.

`InputGuard` applies the configured limits before any model sees the input; the
Transcriber (openai-whisper, in speech.py) and the Captioner (in vision.py) each turn one
file into text plus metadata for the dialogue history.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from .config import Limits
from .errors import InputError
from .speech import Transcript, Transcriber  # noqa: F401  (re-exported: the pipeline's stages)
from .uploads import checked_size, display_name
from .vision import Caption, Captioner  # noqa: F401

PREVIEW_CHARS = 300  # how much of a refused giant message stays visible in the chat


class InputGuard:
    """Checks text and files against the configured limits; raises InputError with the reason."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def text(self, text: str | None) -> str:
        """The message with control characters removed; refused if over the limit."""
        text = "".join(c for c in (text or "") if c in "\n\t" or unicodedata.category(c) != "Cc").strip()
        if len(text) > self.limits.max_text_chars:
            raise InputError(
                f"Your message is {len(text):,} characters long; the limit is {self.limits.max_text_chars:,}. "
                "Please shorten it or send it in parts."
            )
        return text

    def file(self, path: str | Path) -> str:
        """The kind of an uploaded file ("image" or "audio"), after size and type checks."""
        path = Path(path)
        checked_size(path, self.limits)
        suffix = path.suffix.lower()
        if suffix in self.limits.image_types:
            return "image"
        if suffix in self.limits.audio_types:
            return "audio"
        kinds = " ".join(self.limits.image_types + self.limits.audio_types)
        raise InputError(
            f"The file '{display_name(path)}' is not a supported picture or voice format (accepted: {kinds})."
        )


def preview(text: str) -> str:
    """The start of a refused message, for the chat history."""
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + f"… [{len(text):,} characters]"
