"""The input kinds a message may carry besides text, in one registry.

Each `Reader` says what the rest of the app needs to know about one kind of attachment: the
flow modality that allows it, how a refusal names it, the status line while it is read, a
chat's title when it is all a first message holds, and what the input box offers for it. The
guard, the engine, flows, history titles, the input box and the import check ask `READERS`.
Reading itself is the engine's Captioner and Transcriber (pipeline.py). No imports from the package.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reader:
    kind: str  # Attachment.kind
    modality: str  # the flow modality that allows it (flows.py)
    noun: str  # in a refusal: "This chat does not take {noun}"
    status: str  # shown while it is being read
    title: str  # a new chat's title when a first message holds only this
    sources: tuple[str, ...] = ("upload",)  # what the input box offers for it


READERS: dict[str, Reader] = {
    r.kind: r
    for r in (
        Reader("image", "image", "pictures", "Describing the picture…", "Picture"),
        Reader(
            "audio", "voice", "voice messages", "Transcribing your voice…", "Voice message", ("upload", "microphone")
        ),
    )
}


def reader_for(kind: str) -> Reader | None:
    """The registered reader of attachments of `kind` (None: not a kind this app reads)."""
    return READERS.get(kind)


def kinds_text() -> str:
    """ "'image' or 'audio'": the registered kinds as a message names them."""
    return " or ".join(repr(kind) for kind in READERS)
