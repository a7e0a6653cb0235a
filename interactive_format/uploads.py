"""Checks every uploaded file goes through before anything decodes it."""

from __future__ import annotations

from pathlib import Path

from .config import Limits
from .errors import InputError


def display_name(path: str | Path) -> str:
    """A file's base name, shortened, for messages."""
    name = Path(path).name
    return name if len(name) <= 60 else name[:40] + "…" + name[-15:]


def checked_size(path: str | Path, limits: Limits, noun: str = "file") -> int:
    """The file's size in bytes; InputError if it is missing, not a file, empty or over the limit."""
    path = Path(path)
    label = f"The {noun} '{display_name(path)}'"
    try:
        size = path.stat().st_size
    except OSError:
        raise InputError(f"{label} could not be found or read; please upload it again.") from None
    if not path.is_file():
        raise InputError(f"{label} is not a file.")
    if size == 0:
        raise InputError(f"{label} is empty (0 bytes).")
    if size > limits.max_file_bytes:
        raise InputError(
            f"{label} is too big ({size / 2**20:.1f} MB; the limit is {limits.max_file_bytes / 2**20:.0f} MB)."
        )
    return size
