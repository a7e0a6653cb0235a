"""Hostile text typed into the chat renders inert in real chromium: no script runs, no element is injected."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import CHROMIUM
from ..app.test_browser import ready, send, shot

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")

HOSTILE = (
    '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
    '[click me](javascript:window.__pwned=3) <a href="javascript:window.__pwned=4">link</a> '
    '<svg onload="window.__pwned=5"></svg> [ok](https://example.org/)'
)


def test_img_onerror_message_renders_inert(rel_server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(rel_server)
    ready(page)
    send(page, HOSTILE)
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('onerror')", timeout=20_000)
    text = page.locator("#chatbot [data-testid=user]").first
    text.locator("text=click me").first.click()  # a javascript: link would run here
    page.wait_for_timeout(500)
    shot(page, "reliability-xss")
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert page.locator("img[onerror], img[src=x], #chatbot script, #chatbot svg[onload]").count() == 0
    hrefs = page.eval_on_selector_all("#chatbot a[href]", "els => els.map(e => e.getAttribute('href'))")
    assert not [h for h in hrefs if not h.startswith(("https:", "http:", "mailto:", "#", "blob:", "data:image"))]
    assert "https://example.org/" in hrefs  # safe markdown links still work
    assert '<img src=x onerror="window.__pwned=1">' in page.inner_text("#chatbot")  # shown as typed
    page.close()
