"""Spoken replies in a real browser: the speaker toggle, and the reply's audio streamed to the page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--autoplay-policy=no-user-gesture-required"]  # fmt: skip

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the espeak-ng program is not installed"),
]


def test_with_the_speaker_on_the_reply_is_heard_in_the_page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
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
