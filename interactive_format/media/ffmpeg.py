"""ffmpeg for the page's audio: the system's, else the static binary the `imageio-ffmpeg` package ships.

Gradio encodes a streamed spoken reply with the program named `ffmpeg` on PATH, and speech.py decodes
WebM/M4A voice clips with it. A pip install has no system ffmpeg, so at start `ensure_ffmpeg` links the
PyPI binary as `ffmpeg` into a folder of the model cache and puts that folder first on PATH.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MISSING = (
    "Spoken replies need ffmpeg, which was not found on this server (install the imageio-ffmpeg package, or "
    "ffmpeg itself)."
)


def ensure_ffmpeg(cache_dir: Path) -> str | None:
    """The path of the `ffmpeg` on PATH once this returns, or None when there is none to be had.

    With none on PATH, imageio-ffmpeg's binary is linked as `cache_dir/bin/ffmpeg` and that folder is put
    first on PATH (for this process and the programs it starts)."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        binary = Path(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as e:  # not installed, or no binary for this platform
        log.warning("no ffmpeg: not on PATH, and imageio-ffmpeg has none (%s)", e)
        return None
    if not os.access(binary, os.X_OK):
        log.warning("no ffmpeg: not on PATH, and imageio-ffmpeg's %s cannot be run", binary)
        return None
    folder = Path(cache_dir) / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "ffmpeg"
    if not (link.is_symlink() and link.resolve() == binary.resolve()):
        temporary = folder / f".ffmpeg-{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(binary)
        temporary.replace(link)  # atomic: another process starting at the same time sees one or the other
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
    log.info("ffmpeg: %s (from imageio-ffmpeg)", binary)
    return shutil.which("ffmpeg")


def page_audio_note() -> str:
    """Why the page cannot play spoken replies ("" when it can: ffmpeg is on PATH)."""
    return "" if shutil.which("ffmpeg") else MISSING
