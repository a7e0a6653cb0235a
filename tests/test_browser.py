"""The UI in a real browser: Debian's chromium driven by Playwright against the running app.

Screenshots of each step are saved under test-artifacts/browser/ (CI prints the path).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server)
        page.wait_for_selector("#input-box textarea")
        yield page
        browser.close()


def bot_count(page) -> int:
    return page.locator("#chatbot [data-testid=bot]").count()


def send(page, text: str = "", files: list[Path] | None = None, shot: str = "") -> None:
    """Type/attach, press Enter, and wait until the turn has finished (status back to Ready)."""
    before = bot_count(page)
    if files:
        page.set_input_files("#input-box input[type=file]", [str(f) for f in files])
        page.wait_for_function(
            "n => document.querySelectorAll('#input-box .thumbnail-item, #input-box audio, #input-box img').length >= n",
            arg=len(files),
            timeout=20_000,
        )
    page.fill("#input-box textarea", text)
    page.press("#input-box textarea", "Enter")
    page.wait_for_function("n => document.querySelectorAll('#chatbot [data-testid=bot]').length > n", arg=before, timeout=90_000)
    page.wait_for_function("document.querySelector('#status').innerText.trim() === 'Ready'", timeout=90_000)
    if shot:
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)


def chat_text(page) -> str:
    return page.inner_text("#chatbot")


def test_text_turn_streams_a_reply(page):
    page.fill("#input-box textarea", "Hello! Suggest a name for a puppy.")
    page.press("#input-box textarea", "Enter")
    page.wait_for_function("document.querySelector('#status').innerText.startsWith('Sampling')", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "01-text-streaming.png"))
    page.wait_for_function("document.querySelector('#status').innerText.trim() === 'Ready'", timeout=90_000)
    page.screenshot(path=str(ARTIFACTS / "02-text-done.png"), full_page=True)
    assert "candidate(s), ranked" in chat_text(page)
    assert bot_count(page) >= 1
    note = page.inner_text("#ranking-note")  # the shipped discriminator is in use
    assert "λ·D + (1−λ)·J" in note and "likelihood only" not in note


def test_picture_turn_shows_tags(page, media):
    send(page, "What is this?", [media["coffee"]], shot="03-picture")
    text = chat_text(page).lower()
    assert "picture tags" in text and any(w in text for w in ("espresso", "coffee", "cup"))


def test_voice_turn_shows_transcript(page, media):
    send(page, "", [media["question"]], shot="04-voice")
    text = chat_text(page).lower()
    assert "transcript (en)" in text and "weather" in text


def test_bad_picture_message_keeps_history(page, media):
    send(page, "and this?", [media["corrupt"]], shot="05-bad-picture")
    text = chat_text(page)
    assert "⚠️" in text and "puppy" in text.lower()  # the error is shown, the first turn is still there


def test_clear_empties_the_conversation(page):
    page.click("#clear-btn")
    page.wait_for_function("document.querySelectorAll('#chatbot [data-testid=bot]').length === 0", timeout=10_000)
    send(page, "Hi again!", shot="06-after-clear")
    assert "puppy" not in chat_text(page).lower()
