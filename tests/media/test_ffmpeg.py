"""ffmpeg for the page's spoken replies: the system's, else imageio-ffmpeg's; with neither, the speaker is off and
the page says why (never a bare "Error")."""

from __future__ import annotations

import os
import shutil
import subprocess

from interactive_format.media.ffmpeg import MISSING, ensure_ffmpeg, page_audio_note


def test_without_a_system_ffmpeg_the_packaged_one_is_put_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert shutil.which("ffmpeg") is None and page_audio_note() == MISSING
    found = ensure_ffmpeg(tmp_path / "cache")
    assert found == str(tmp_path / "cache" / "bin" / "ffmpeg") and shutil.which("ffmpeg") == found
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    assert version.startswith("ffmpeg version") and " aac " in encoders  # what Gradio's streamed audio uses
    assert page_audio_note() == "" and ensure_ffmpeg(tmp_path / "cache") == found  # a second start: the same link


def test_with_no_ffmpeg_at_all_the_page_says_why_and_offers_no_speech(tmp_path, monkeypatch, engine):
    from interactive_format.web.callbacks import chat_ui
    from interactive_format.store.store import Store

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "nowhere" / "ffmpeg"))  # imageio-ffmpeg has none either
    assert ensure_ffmpeg(tmp_path / "cache") is None
    ui = chat_ui(engine, Store(":memory:"))
    for language, words in (("en", "Spoken replies need ffmpeg"), ("zh", "语音回复需要 ffmpeg")):
        chat = ui._new(None, language)
        speak = ui.flow_view(chat).speak
        assert speak.interactive is False and speak.value is False and words in speak.info
        assert list(ui.speak_live(chat, True)) == []  # nothing is streamed to fail in the page
    assert os.environ["PATH"] == str(tmp_path / "empty")
