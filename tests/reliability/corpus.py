"""Malformed inputs of every kind the app takes: broken pictures, recordings, texts and file names.

`malformed_cases(folder)` writes the files and returns one `Case` per input, each naming the
words the refusal must use so that "a clear error" is checked, not just "an error".
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3", ".webm", ".m4a", ".aac", ".opus")
PICTURE_WORDS = r"picture|empty|too big|too large|not a supported"
AUDIO_WORDS = r"audio|recording|speech|empty|too big|too long|not a supported"
TEXT_WORDS = r"message|characters"


@dataclass(frozen=True)
class Case:
    label: str
    kind: str  # "image", "audio", "text" or "name"
    expect: str  # a regex the refusal must match
    text: str = ""
    file: Path | None = None

    @property
    def slot(self) -> str:
        """The API argument the file goes in (by its extension, as a client would choose)."""
        return "image" if self.file is not None and self.file.suffix.lower() in IMAGE_EXTS else "audio"


def _photo(size=(64, 48), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    _photo().save(buf, fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width × height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _gif_bomb(width: int, height: int) -> bytes:
    return (
        b"GIF89a"
        + struct.pack("<HH", width, height)
        + b"\x00\x00\x00"
        + b",\x00\x00\x00\x00"
        + struct.pack("<HH", width, height)
        + b"\x00\x02\x02D\x01\x00;"
    )


def _bmp_bomb(width: int, height: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return header + info + b"\x00" * 16


def _tone(seconds: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def _image_cases(d: Path, rng: random.Random) -> list[Case]:
    cases = []
    for ext in IMAGE_EXTS:
        for k in range(4):
            path = d / f"noise{k}{ext}"
            path.write_bytes(rng.randbytes(rng.choice((7, 100, 3000, 40_000))))
            cases.append(Case(f"random bytes {path.name}", "image", PICTURE_WORDS, file=path))
        empty = d / f"empty{ext}"
        empty.touch()
        cases.append(Case(f"empty {ext}", "image", r"is empty \(0 bytes\)", file=empty))
        notes = d / f"notes{ext}"
        notes.write_text("these are meeting notes, not a picture\n" * 30)
        cases.append(Case(f"text as {ext}", "image", PICTURE_WORDS, file=notes))
    for fmt, ext in (
        ("PNG", ".png"),
        ("JPEG", ".jpg"),
        ("GIF", ".gif"),
        ("WEBP", ".webp"),
        ("BMP", ".bmp"),
        ("TIFF", ".tif"),
    ):
        data = _encoded(fmt)
        for cut in (0.05, 0.3, 0.6, 0.9):
            path = d / f"truncated-{int(cut * 100)}{ext}"
            path.write_bytes(data[: max(8, int(len(data) * cut))])
            cases.append(Case(f"truncated {fmt} at {cut:.0%}", "image", PICTURE_WORDS, file=path))
    bombs = {"bomb.png": _png_bomb(100_000, 100_000), "bomb-wide.png": _png_bomb(2**31 - 1, 1),
             "bomb.gif": _gif_bomb(65535, 65535), "bomb.bmp": _bmp_bomb(60_000, 60_000)}  # fmt: skip
    for name, data in bombs.items():
        (d / name).write_bytes(data)
        cases.append(Case(f"decompression bomb {name}", "image", r"too large|could not be read|damaged", file=d / name))
    for k in range(2):
        path = d / f"huge{k}.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(2 * 2**20 + 10))
        cases.append(Case("file over the size limit", "image", r"too big \(2\.0 MB; the limit is 2 MB\)", file=path))
    return cases


def _audio_cases(d: Path, rng: random.Random) -> list[Case]:
    cases = []
    for ext in AUDIO_EXTS:
        for k in range(4):
            path = d / f"noise{k}{ext}"
            path.write_bytes(rng.randbytes(rng.choice((5, 200, 5000, 50_000))))
            cases.append(Case(f"random bytes {path.name}", "audio", AUDIO_WORDS, file=path))
        empty = d / f"empty{ext}"
        empty.touch()
        cases.append(Case(f"empty {ext}", "audio", r"is empty \(0 bytes\)", file=empty))
    silent = "No speech was heard"
    for rate in (8000, 11025, 22050, 44100, 48000, 96000):
        for subtype in ("PCM_16", "PCM_24", "FLOAT"):
            path = d / f"silent-{rate}-{subtype}.wav"
            sf.write(path, np.zeros(rate // 2, np.float32), rate, subtype=subtype)
            cases.append(Case(f"silent WAV {rate} Hz {subtype}", "audio", silent, file=path))
    for fmt, ext, subtype, channels in (("FLAC", ".flac", "PCM_24", 2), ("OGG", ".ogg", "VORBIS", 1),
                                        ("WAV", ".wav", "PCM_U8", 6), ("AIFF", ".aiff", "PCM_16", 2),
                                        ("AU", ".au", "PCM_16", 1), ("CAF", ".caf", "ALAC_16", 1)):  # fmt: skip
        path = d / f"silent-{fmt}{ext}"
        sf.write(path, np.zeros((16000, channels), np.float32), 16000, format=fmt, subtype=subtype)
        cases.append(Case(f"silent {fmt} {channels} ch", "audio", silent, file=path))
    header_only = d / "header-only.wav"
    sf.write(header_only, np.zeros(0, np.float32), 16000)
    cases.append(Case("WAV header without frames", "audio", silent, file=header_only))
    nan = d / "nan.wav"
    sf.write(nan, np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
    cases.append(Case("WAV of NaN samples", "audio", silent, file=nan))
    for seconds, rate in ((6, 8000), (30, 8000), (100, 8000), (7, 44100)):
        path = d / f"long-{seconds}s-{rate}.wav"
        sf.write(path, _tone(seconds, rate), rate, subtype="PCM_16")
        cases.append(Case(f"{seconds}-s recording", "audio", r"seconds long; the limit is 5 seconds", file=path))
    wav = d / "silent-16000-PCM_16.wav"
    sf.write(wav, _tone(1, 16000), 16000, subtype="PCM_16")
    data = wav.read_bytes()
    for cut in (12, 30, 44, 45):
        path = d / f"truncated-{cut}.wav"
        path.write_bytes(data[:cut])
        cases.append(Case(f"WAV cut at byte {cut}", "audio", AUDIO_WORDS, file=path))
    for ext in (".png", ".jpg", ".gif", ".bmp"):  # a silent recording under a picture's name: read as audio
        path = d / f"recording{ext}"
        sf.write(path, np.zeros(8000, np.float32), 16000, format="WAV")
        cases.append(Case(f"silent WAV named {ext}", "audio", silent, file=path))
    return cases


def _text_cases() -> list[Case]:
    refused_empty = r"Type a message|no visible text"
    empties = ["", " ", "\n\t  \n", "\x00\x01\x02\x03", "\x7f" * 10, "\u202e\u202d\u2066", "\u200b\u200c\u200d",
               "\ufeff", "\u3000\u2003", "\x1b\x1b\x1b", "\r\r\r"]  # fmt: skip
    cases = [Case(f"empty-ish text {t!r}", "text", refused_empty, text=t) for t in empties]
    giants = {"4001 x": "x" * 4001, "10k words": "word " * 2001, "100k": "y" * 100_000, "1M": "z" * 1_000_000,
              "mixed scripts": "中文 العربية русский हिन्दी 🙂 " * 200, "emoji": "🙂" * 4001,
              "newlines": "\n".join(["line"] * 1000), "RTL override giant": "\u202eabc" * 1400,
              "combining marks": "e" + "\u0301" * 5000, "private use": "\ue000" * 4001,
              "NUL-padded giant": "hi" + "\x00" * 10 + "x" * 5000, "zalgo": "Z\u0336\u0337" * 1500}  # fmt: skip
    cases += [
        Case(f"giant text ({k})", "text", r"characters long; the limit is 4,000", text=v) for k, v in giants.items()
    ]
    return cases


def _name_cases(d: Path, rng: random.Random) -> list[Case]:
    names = ["..%2F..%2Fetc%2Fpasswd.png", "....png", ".hidden.png", "\u202egnp.exe.png", "new\nline.png",
             "<img src=x onerror=alert(1)>.png", "a" * 240 + ".png", "名前 テスト 🙂.jpg", "CON.png",
             "tab\tname.wav", "bell\x07.wav", "zero\u200bwidth.wav", "quote'\"`.flac", "semi;rm -rf ~.ogg",
             "%00null.png", "COM1.wav"]  # fmt: skip
    cases = []
    sub = d / "names"
    sub.mkdir()
    for name in names:
        path = sub / name
        path.write_bytes(rng.randbytes(300))
        words = PICTURE_WORDS if path.suffix.lower() in IMAGE_EXTS else AUDIO_WORDS
        cases.append(Case(f"odd file name {name[:30]!r}", "name", words, file=path))
    for name in ("virus.exe", "page.html", "vector.svg", "doc.pdf", "archive.zip", "noext", "photo.png.exe",
                 "script.js", "prog.py", "movie.mp4"):  # fmt: skip
        path = d / name
        path.write_bytes(b"<svg onload=alert(1)>" if name.endswith(".svg") else rng.randbytes(200))
        cases.append(Case(f"unsupported type {name}", "name", r"not a supported picture or voice format", file=path))
    return cases


def malformed_cases(d: Path, seed: int = 6) -> list[Case]:
    """Every malformed input, written under `d`."""
    rng = random.Random(seed)
    return _image_cases(d, rng) + _audio_cases(d, rng) + _text_cases() + _name_cases(d, rng)
