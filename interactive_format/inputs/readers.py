"""The registry of input kinds besides text: every modality decision asks `READERS`.

The guard (accepted suffixes, leading bytes), the engine (refusal, status, reading), the prompt
(`Turn.prompt_text`), the chat's labels, history titles, the input box, i18n hints, flows and the
store's attachment parsing all look a kind up here. A new kind is a `reading.Reader` subclass in a
file of its own and one line below.
"""

from __future__ import annotations

from typing import Any

from .picturereader import PictureReader
from .reading import Reader, ReadingMeta
from .voicereader import VoiceReader

READERS: dict[str, Reader] = {r.kind: r for r in (PictureReader(), VoiceReader())}


def reader_for(kind: str) -> Reader | None:
    """The registered reader of attachments of `kind` (None: not a kind this app reads)."""
    return READERS.get(kind)


def either(words: list[str]) -> str:
    """ "a", "a or b", "a, b or c": alternatives as a message lists them."""
    return " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 2 else words)


def kinds_text() -> str:
    """ "'image' or 'audio'": the registered kinds as a message names them."""
    return either([repr(kind) for kind in READERS])


def formats_text() -> str:
    """ "picture or voice": the registered kinds' formats as a message names them."""
    return either([r.format_name for r in READERS.values()])


def meta_for(kind: str, data: Any) -> ReadingMeta:
    """Stored meta (a JSON object) as the typed meta of `kind`'s reader (the plain fields for an unknown kind)."""
    reader = READERS.get(kind)
    return (reader.meta_type if reader else ReadingMeta).from_dict(data)


def kind_of(head: bytes) -> str | None:
    """The kind whose leading bytes `head` starts with, None if no reader knows them."""
    for reader in READERS.values():
        if any(head[offset : offset + len(magic)] == magic for offset, magic in reader.signatures):
            return reader.kind
    return None
