"""Pictures: described by the engine's Captioner (media/vision.py), with any text read from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .reading import Reader, Reading, ReadingMeta


@dataclass
class PictureMeta(ReadingMeta):
    kind: str | None = None  # "tags" or "caption" (vision.Caption.kind)
    text_lines: int | None = None  # lines of text read from the picture (None: none)
    ocr_ms: int | None = None  # time spent reading them


class PictureReader(Reader):
    kind = "image"
    modality = "image"
    noun = "pictures"
    format_name = "picture"
    status = "Describing the picture…"
    title = "Picture"
    hint = ("attach a picture", "添加图片")
    limits_field = "image_types"
    box_types = ("image",)
    signatures = (
        (0, b"\x89PNG\r\n\x1a\n"),
        (0, b"\xff\xd8\xff"),
        (0, b"GIF87a"),
        (0, b"GIF89a"),
        (8, b"WEBP"),
        (0, b"BM"),
        (0, b"II*\x00"),
        (0, b"MM\x00*"),
    )
    meta_type = PictureMeta
    visual = True

    def label(self, meta: PictureMeta, number: int | None) -> str:
        picture = f"Picture {number}" if number else "Picture"
        label = f"{picture} tags" if meta.kind == "tags" else f"{picture} caption"
        return label + " and text" if meta.text_lines else label

    def heading(self, count: int) -> str:
        return f"[The user sent {count} pictures.]"

    def prompt(self, text: str, number: int | None) -> str:
        return f"[Picture {number}: {text}]" if number else f"[The user sent a picture. {text}]"

    def read(self, path: Path, stages: Any) -> Reading:
        caption = stages.captioner.describe(path)
        meta = PictureMeta(model=caption.model, ms=round(caption.ms), kind=caption.kind)
        if caption.text_lines:
            meta.text_lines, meta.ocr_ms = caption.text_lines, round(caption.ocr_ms)
        return Reading(caption.text, meta)
