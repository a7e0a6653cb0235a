"""Spoken replies in a real browser: the speaker toggle, and the reply's audio streamed to the page."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from .. import conftest
from ..conftest import CHROMIUM

FLAGS = [*conftest.FLAGS, "--autoplay-policy=no-user-gesture-required"]

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the espeak-ng program is not installed"),
]


def test_with_the_speaker_on_the_reply_is_heard_in_the_page(server, playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server)
    page.wait_for_selector("#input-box textarea:not([disabled])", timeout=30_000)
    toggle = page.locator("#speak-toggle input[type=checkbox]")
    assert not toggle.is_checked()  # the playground flow does not speak by default
    toggle.check()
    page.fill("#input-box textarea", "Say hello in one short sentence.")
    page.press("#input-box textarea", "Enter")
    page.wait_for_function("document.querySelector('#status').innerText.trim() === 'Ready'", timeout=120_000)
    # The streamed sentences play in the page's audio element: it has a source and its clock moves.
    page.wait_for_function(
        "() => { const a = document.querySelector('#reply-audio audio');"
        " return a && (a.currentSrc || a.src) && a.currentTime > 0.2; }",
        timeout=60_000,
    )
    browser.close()


def _microphone_wav(path: Path, *parts: tuple[str, float]) -> Path:
    """What Chromium's fake microphone plays once (%noloop): espeak-ng saying each text, then that many seconds
    of silence."""
    from ..conftest import speak

    audio, params = b"", None
    for k, (text, silence_s) in enumerate(parts):
        with wave.open(str(speak(text, path.with_suffix(f".{k}.wav"))), "rb") as w:
            params = w.getparams()
            audio += w.readframes(w.getnframes()) + b"\x00" * 2 * int(silence_s * params.framerate)
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(b"\x00" * params.framerate + audio)  # a second of quiet first
    return path


def _talking_page(p, wav: Path):
    """Chromium with `wav` as its microphone, on the app, the reply's playback time recorded in window.heard."""
    flags = [*FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={wav}%noloop"]  # fmt: skip
    browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.add_init_script(  # media events do not bubble: caught on the way down
        "document.addEventListener('timeupdate', e => {"
        " window.heard = Math.max(window.heard || 0, e.target.currentTime); }, true);"
    )
    return browser, page


def _chat_has(page, text: str, timeout: float = 120_000) -> None:
    from playwright.sync_api import TimeoutError

    try:
        page.wait_for_function(
            "t => document.querySelector('#chatbot').innerText.toLowerCase().includes(t)", arg=text, timeout=timeout
        )
    except TimeoutError:
        raise AssertionError(f"{text!r} never came in the chat: {page.inner_text('#chatbot')!r}") from None


@pytest.mark.alone  # Chromium's fake microphone plays in real time: a busy CPU drops what it hears
def test_talk_mode_listens_answers_speaks_and_listens_again_until_stopped(server, tmp_path, playwright):
    """Talk mode with a spoken WAV as the microphone: one full round, then Stop ends it."""
    wav = _microphone_wav(tmp_path / "mic.wav", ("Turn on the kitchen light, please.", 60.0))
    browser, page = _talking_page(playwright, wav)
    page.goto(server)
    page.wait_for_selector("#input-box textarea:not([disabled])", timeout=30_000)
    assert not page.locator("#speak-toggle input[type=checkbox]").is_checked()  # talk mode speaks anyway
    page.click("#talk-btn")
    page.wait_for_function("window.ifTalk.state === 'listening'", timeout=10_000)
    assert "Stop" in page.inner_text("#talk-btn")
    # The utterance is cut at the pause after it, sent, transcribed and shown in the chat, and answered.
    page.wait_for_function("window.ifTalk.rounds === 1", timeout=30_000)
    _chat_has(page, "kitchen light")
    page.wait_for_function("document.querySelectorAll('#chatbot [data-testid=bot]').length >= 1", timeout=120_000)
    # The reply is heard, then the page listens again (the microphone is silent from here on).
    page.wait_for_function("(window.heard || 0) > 0.2", timeout=120_000)
    page.wait_for_function("window.ifTalk.state === 'listening' && window.ifTalk.rounds === 1", timeout=120_000)
    assert "Listening" in page.inner_text("#talk-status")
    assert page.inner_text("#status").strip() == "Ready" and not page.evaluate("window.ifTalk.barged")
    page.click("#talk-btn")  # Stop
    page.wait_for_function("window.ifTalk.state === 'off'", timeout=5_000)
    assert "off" in page.inner_text("#talk-status") and "Stop" not in page.inner_text("#talk-btn")
    browser.close()


@pytest.mark.alone
def test_speaking_over_the_reply_stops_it_and_is_answered_instead(server, tmp_path, playwright):
    """Barge-in: a second utterance 4 s after the first (while the first is still being answered or spoken)."""
    # Words Whisper base hears right in espeak-ng's voice, after WebM/Opus too ("garage door" came out as
    # "garbage door" or "damage door").
    wav = _microphone_wav(tmp_path / "mic.wav", ("Hello there.", 4.0), ("Play some music, please.", 60.0))
    browser, page = _talking_page(playwright, wav)
    page.goto(server)
    page.wait_for_selector("#input-box textarea:not([disabled])", timeout=30_000)
    page.click("#talk-btn")
    page.wait_for_function("window.ifTalk.barged === 1 && window.ifTalk.rounds === 2", timeout=60_000)
    _chat_has(page, "music")  # the interrupting utterance was answered
    page.wait_for_function("window.ifTalk.state === 'listening'", timeout=120_000)
    assert page.evaluate("window.ifTalk.rounds") == 2
    page.click("#talk-btn")
    page.wait_for_function("window.ifTalk.state === 'off'", timeout=5_000)
    browser.close()


def path_without_ffmpeg(folder: Path) -> str:
    """A PATH with every program of this machine but ffmpeg and ffprobe (links in `folder`): a pip user's machine."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in Path(directory).iterdir() if Path(directory).is_dir() else ():
            link = folder / program.name
            if program.name not in ("ffmpeg", "ffprobe") and not link.exists() and os.access(program, os.X_OK):
                link.symlink_to(program)
    return str(folder)


def test_spoken_replies_play_in_the_page_without_a_system_ffmpeg(cache_dir, tmp_path, app_process, playwright):
    """Gradio encodes the streamed reply with ffmpeg: with none on PATH the app brings imageio-ffmpeg's own."""
    import os

    from ..conftest import TEST_ENV, free_port

    bare = path_without_ffmpeg(tmp_path / "bin")
    assert shutil.which("ffmpeg", path=bare) is None
    log = tmp_path / "app.log"
    env = {**os.environ, "PATH": bare, "IF_DB": str(tmp_path / "chats.db"), "IF_CACHE_DIR": str(cache_dir),
           "IF_PORT": str(free_port()), "IF_MAX_NEW_TOKENS": "24", "HF_HUB_OFFLINE": "1", "IF_WARMUP": "0",
           **TEST_ENV}  # fmt: skip
    with app_process(env, log=log) as url:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_selector("#input-box textarea:not([disabled])", timeout=60_000)
        toggle = page.locator("#speak-toggle input[type=checkbox]")
        assert toggle.is_enabled()  # spoken replies are on offer: the page can play them
        toggle.check()
        page.fill("#input-box textarea", "Say hello in one short sentence.")
        page.press("#input-box textarea", "Enter")
        page.wait_for_function(
            "() => { const a = document.querySelector('#reply-audio audio');"
            " return a && (a.currentSrc || a.src) && a.currentTime > 0.2; }",
            timeout=120_000,
        )
        page.screenshot(path=str(Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
                                 / "spoken-reply-without-system-ffmpeg.png"), full_page=True)  # fmt: skip
        assert "Error" not in page.inner_text("#reply-audio")
        browser.close()
    text = log.read_text()
    assert "(from imageio-ffmpeg)" in text and "requires ffmpeg" not in text
