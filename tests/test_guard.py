"""The input guard: every configured limit refuses with a message a user can act on."""

from __future__ import annotations

import pytest

from interactive_format.config import Limits
from interactive_format.errors import InputError
from interactive_format.pipeline import InputGuard, preview


def test_text_limit_and_control_characters():
    guard = InputGuard(Limits(max_text_chars=10))
    assert guard.text("  hi\x00 there\x07 ") == "hi there"
    assert guard.text("a\tb\nc") == "a\tb\nc"
    assert guard.text(None) == ""
    with pytest.raises(InputError, match="11 characters long; the limit is 10"):
        guard.text("x" * 11)


@pytest.mark.parametrize(
    "name, content, limits, expected",
    [
        ("photo.PNG", b"x" * 10, Limits(), "image"),
        ("voice.webm", b"x" * 10, Limits(), "audio"),
        ("empty.jpg", b"", Limits(), "is empty"),
        ("big.wav", b"x" * 2048, Limits(max_file_bytes=1024), "is too big (0.0 MB; the limit is 0 MB)"),
        ("script.exe", b"MZ" * 10, Limits(), "not a supported picture or voice format"),
        ("noext", b"data", Limits(), "not a supported picture or voice format"),
        ("voice.wav", b"x" * 10, Limits(audio_types=(".flac",)), "not a supported picture or voice format"),
    ],
)
def test_file_limits(tmp_path, name, content, limits, expected):
    path = tmp_path / name
    path.write_bytes(content)
    guard = InputGuard(limits)
    if expected in ("image", "audio"):
        assert guard.file(path) == expected
    else:
        with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")) as info:
            guard.file(path)
        assert name in str(info.value)


def test_missing_file_and_long_names(tmp_path):
    with pytest.raises(InputError, match="could not be found"):
        InputGuard(Limits()).file(tmp_path / "gone.png")
    long = tmp_path / ("n" * 200 + ".exe")
    long.write_bytes(b"1")
    with pytest.raises(InputError) as info:
        InputGuard(Limits()).file(long)
    assert len(str(info.value)) < 300


def test_preview_of_refused_text():
    assert preview("short") == "short"
    assert preview("y" * 1000).endswith("… [1,000 characters]")
