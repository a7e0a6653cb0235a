"""Checks every uploaded file goes through before anything decodes it."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from .config import Limits
from .errors import InputError
from .inputs.readers import READERS, kind_of

# Leading bytes of the formats we decode, whatever the file is called (offset, bytes, kind): the readers' own.
SIGNATURES: tuple[tuple[int, bytes, str], ...] = tuple(
    (offset, magic, r.kind) for r in READERS.values() for offset, magic in r.signatures
)


def display_name(path: str | Path) -> str:
    """A file's base name made safe to show: no control, bidi or invisible characters, shortened."""
    name = unicodedata.normalize("NFC", Path(path).name)
    name = "".join("?" if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") else c for c in name)
    name = " ".join(name.split()) or "?"
    return name if len(name) <= 60 else name[:40] + "…" + name[-15:]


def sniff(path: str | Path) -> str | None:
    """The kind ("image", "audio", …) the file's first bytes belong to, None if no reader knows them."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    return kind_of(head)


def checked_size(path: str | Path, limits: Limits, noun: str = "file") -> int:
    """The file's size in bytes; InputError if it is missing, not a file, empty or over the limit."""
    path = Path(path)
    name = display_name(path)
    try:
        size = path.stat().st_size
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        raise InputError(f"The {noun} '{name}' could not be found or read; please upload it again.") from None
    if not path.is_file():
        raise InputError(f"The {noun} '{name}' is not a file.")
    if size == 0:
        raise InputError(f"The {noun} '{name}' is empty (0 bytes).")
    if size > limits.max_file_bytes:
        raise InputError(
            f"The {noun} '{name}' is too big ({size / 2**20:.1f} MB; the limit is {limits.max_file_bytes / 2**20:.0f} MB)."
        )
    return size


def remove_upload(path: str | None) -> None:
    """Delete an uploaded file, only if it lies in Gradio's upload cache (never anything else)."""
    if not path:
        return
    import gradio as gr  # only the web app uploads files

    cache = Path(gr.utils.get_upload_folder()).resolve()
    file = Path(path).resolve()
    if file.is_file() and file.is_relative_to(cache):
        file.unlink(missing_ok=True)
        if file.parent != cache and not any(file.parent.iterdir()):
            file.parent.rmdir()
