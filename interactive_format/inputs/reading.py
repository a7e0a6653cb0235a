"""What one input kind besides text is: the `Reader` base, what reading gives (`Reading`) and its typed meta.

A new kind (say PDF) is a subclass of `Reader` in a file of its own and one line in `readers.READERS`;
the guard, the prompt, labels, titles, the input box, flows, i18n and the store all ask the registry.
No imports from the package (everything else imports this).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

_SCALARS = (str, int, float, bool)


@dataclass
class ReadingMeta:
    """How an attachment was read: by which model and how long it took (a kind adds its own fields)."""

    model: str | None = None  # the spec that read it
    ms: int | None = None  # reading time

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON): the fields that are set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> ReadingMeta:
        """The stored form read back; keys it does not know and values that are not plain scalars are left out."""
        data = data if isinstance(data, dict) else {}
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and isinstance(v, _SCALARS)})


@dataclass(frozen=True)
class Reading:
    """A file read into text for the LLM, and how."""

    text: str
    meta: ReadingMeta


class Reader:
    """One input kind: what the guard accepts, how the UI names it, how its text enters the prompt, and `read`.

    Subclasses set the class attributes below and implement `read`; an instance goes in `readers.READERS`.
    """

    kind: ClassVar[str]  # Attachment.kind, the key in READERS
    modality: ClassVar[str]  # the flow modality that allows it (flows.py)
    noun: ClassVar[str]  # in a refusal: "This chat does not take {noun}"
    format_name: ClassVar[str]  # "not a supported {picture} or {voice} format"; "(picture or voice)"
    status: ClassVar[str]  # shown while it is being read
    title: ClassVar[str]  # a new chat's title when a first message holds only this
    hint: ClassVar[
        tuple[str, str]
    ]  # the input box's hint in English and Chinese, e.g. ("attach a picture", "添加图片")
    sources: ClassVar[tuple[str, ...]] = ("upload",)  # what the input box offers for it ("upload", "microphone")
    types: ClassVar[tuple[str, ...]] = ()  # accepted file name suffixes, unless `limits_field` names them
    limits_field: ClassVar[str | None] = None  # a config.Limits field holding the accepted suffixes (configurable)
    box_types: ClassVar[tuple[str, ...]] = ()  # what the input box's picker offers (a Gradio category; empty: `types`)
    signatures: ClassVar[tuple[tuple[int, bytes], ...]] = ()  # (offset, leading bytes) of its formats
    meta_type: ClassVar[type[ReadingMeta]] = ReadingMeta
    visual: ClassVar[bool] = False  # a vision-language chat model is given the file itself (vlm.py)

    def accepted(self, limits: Any) -> tuple[str, ...]:
        """The file name suffixes the guard lets through for this kind."""
        return getattr(limits, self.limits_field) if self.limits_field else self.types

    def label(self, meta: ReadingMeta, number: int | None) -> str:
        """What the chat shows before the read text ("Picture 2 caption"); `number` when a turn holds several."""
        return f"{self.title} {number}" if number else self.title

    def heading(self, count: int) -> str:
        """A line before the prompt text of a turn with `count` (> 1) of this kind ("" for none)."""
        return ""

    def prompt(self, text: str, number: int | None) -> str:
        """How the read text enters the LLM's prompt."""
        return text

    def read(self, path: Path, stages: Any) -> Reading:
        """The file as text; `stages` is the engine, holding the models (its captioner, transcriber, …)."""
        raise NotImplementedError
