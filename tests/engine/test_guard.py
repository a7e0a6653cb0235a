"""The input guard: every configured limit refuses with a message a user can act on."""

from __future__ import annotations

import pytest

from interactive_format.config import Limits
from interactive_format.errors import InputError
from interactive_format.engine.guard import InputGuard, preview, visible
from interactive_format.uploads import display_name


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


def test_text_loses_bidi_overrides_and_lone_surrogates():
    guard = InputGuard(Limits())
    assert guard.text("abc\u202edef\u2066") == "abcdef"
    assert guard.text("a\ud800b") == "a\ufffdb"
    assert guard.text(42) == "42"
    assert not visible("\u200b \u3000\ufeff") and visible("中文 ok")


def test_content_decides_the_kind_when_the_extension_is_the_other_kind(tmp_path):
    guard = InputGuard(Limits())
    photo = tmp_path / "photo.wav"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    voice = tmp_path / "voice.png"
    voice.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    assert guard.file(photo) == "image" and guard.file(voice) == "audio"
    exe = tmp_path / "photo.exe"
    exe.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InputError, match="not a supported"):
        guard.file(exe)


def test_file_names_are_shown_without_control_or_invisible_characters():
    assert display_name("/tmp/x/../../etc/pass\u202ewd\n.png") == "pass?wd?.png"
    assert display_name("a\u200bb.wav") == "a?b.wav"
    assert len(display_name("名" * 300 + ".png")) == 56
