"""The UI in a real browser: Debian's chromium driven by Playwright against the running app.

Screenshots of each step are saved under test-artifacts/browser/ (CI prints the path).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from ..conftest import ARTIFACTS, CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def page(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.dialogs = []  # an alert() from injected HTML would land here
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(server)
    ready(page)
    yield page
    page.close()


def ready(page) -> None:
    """Wait until the page load has identified the user (the input box is enabled then)."""
    page.wait_for_selector("#input-box textarea:not([disabled])", timeout=30_000)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


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
    page.wait_for_function(
        "n => document.querySelectorAll('#chatbot [data-testid=bot]').length > n", arg=before, timeout=90_000
    )
    idle(page)
    if shot:
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)


def chat_text(page) -> str:
    return page.inner_text("#chatbot")


def idle(page, timeout: float = 90_000) -> None:
    """Wait until the turn has ended: the status line is back to "Ready" (就绪 on a Chinese page)."""
    page.wait_for_function(
        "['Ready', '就绪'].includes(document.querySelector('#status').innerText.trim())", timeout=timeout
    )


def panel_text(page) -> str:
    """The candidates panel under the chat (its list of every candidate, opened if closed)."""
    if not page.locator("#cand-list").is_visible():
        page.click("#cand-all button")
    return page.inner_text("#cand-list")


def test_text_turn_streams_a_reply(page):
    page.fill("#input-box textarea", "Hello! Suggest a name for a puppy.")
    page.press("#input-box textarea", "Enter")
    page.wait_for_function("document.querySelector('#status').innerText.startsWith('Sampling')", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "01-text-streaming.png"))
    idle(page)
    page.screenshot(path=str(ARTIFACTS / "02-text-done.png"), full_page=True)
    assert "candidates, ranked" in panel_text(page) and "candidates, ranked" not in chat_text(page)
    assert bot_count(page) >= 1
    note = page.inner_text("#ranking-note")  # the shipped ranking, with the shipped discriminator's d in it
    assert "fitted on reply-quality labels" in note and "d +" in note and "likelihood only" not in note


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
    assert "is damaged" in text and "supported format" not in text  # says what is wrong, not a list of formats
    assert not page.locator("#cand-info").is_visible()  # the panel does not go on showing the earlier reply


def test_browse_to_another_candidate_and_use_it(page):
    send(page, "Another name for it, please.")
    assert "Candidate 1/" in page.inner_text("#cand-info")
    page.click("#cand-next")
    page.wait_for_function("document.querySelector('#cand-info').innerText.includes('Candidate 2/')", timeout=10_000)
    info = page.inner_text("#cand-info")
    assert "not shown" in info and "score " in info and "J " in info
    score, d = (re.search(rf"· {name} (-?[\d.]+)", info) for name in ("score", "D"))
    assert score and (d is None or d.group(1) != score.group(1))  # D is shown only where it is not the score itself
    shot(page, "06-candidate-2-of-n")
    browsed = info.split("\n", 1)[1].strip().splitlines()[0]
    page.click("#cand-pick")
    page.wait_for_function("document.querySelector('#cand-info').innerText.includes('· shown')", timeout=10_000)
    shot(page, "07-candidate-picked")
    assert browsed[:30] in chat_text(page)


def test_like_a_reply_and_regenerate_more_candidates(page, store):
    import sqlite3

    def likes() -> int:
        db = sqlite3.connect(store.db_path)
        try:
            return db.execute("SELECT count(*) FROM feedback WHERE kind = 'like'").fetchone()[0]
        finally:
            db.close()

    before = likes()
    page.locator("#chatbot button[aria-label=Like]").first.click()
    deadline = time.monotonic() + 10
    while likes() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert likes() == before + 1
    n = int(re.search(r"Candidate \d+/(\d+)", page.inner_text("#cand-info")).group(1))
    page.click("#regen-btn")
    # the candidate bar leaves the page while the new candidates stream
    page.wait_for_function(f"document.querySelector('#cand-info')?.innerText.includes('/{2 * n}')", timeout=90_000)
    idle(page)
    shot(page, "07b-regenerated")
    assert f"{2 * n} candidates, ranked" in panel_text(page)


def test_edit_a_message_makes_a_branch_and_the_old_one_stays(page):
    page.locator("#chatbot button[aria-label=Edit]").first.click()  # the first message: the puppy one
    editor = page.locator("#chatbot textarea").first
    assert "puppy" in editor.input_value()
    editor.fill("Hello! Suggest a name for a kitten.")
    before = bot_count(page)
    page.locator("#chatbot button[aria-label=Submit]").first.click()
    page.wait_for_function(
        "n => document.querySelectorAll('#chatbot [data-testid=bot]').length !== n", arg=before, timeout=30_000
    )
    idle(page)
    page.wait_for_selector("#branch-bar", state="visible", timeout=10_000)
    shot(page, "08-edited-branch")
    text = chat_text(page).lower()
    assert "kitten" in text and "puppy" not in text
    page.click("#branch-prev")
    page.wait_for_function(
        "document.querySelector('#chatbot').innerText.toLowerCase().includes('puppy')", timeout=10_000
    )
    shot(page, "09-old-branch")
    assert "kitten" not in chat_text(page).lower()


def test_reload_reopens_the_conversation_and_it_is_in_the_sidebar(page):
    page.reload()
    ready(page)
    entry = page.locator("#chat-list label").filter(has_text="puppy")
    entry.wait_for(timeout=20_000)
    page.wait_for_function(  # the conversation that was open is open again, not an empty new chat
        "document.querySelector('#chatbot').innerText.toLowerCase().includes('puppy')", timeout=20_000
    )
    shot(page, "10-reloaded")
    page.click("#new-chat")
    page.wait_for_function("document.querySelectorAll('#chatbot [data-testid=bot]').length === 0", timeout=10_000)
    entry.click()
    page.wait_for_function(
        "document.querySelector('#chatbot').innerText.toLowerCase().includes('puppy')", timeout=20_000
    )
    shot(page, "11-reopened")
    assert "picture tags" in chat_text(page).lower() and "Candidate" in page.inner_text("#cand-info")
    page.wait_for_selector("#chatbot button[aria-label=Liked]", timeout=10_000)  # the like given before the reload
    assert page.locator("#chatbot button[aria-label=Liked]").count() == 1


def test_new_chat_empties_the_conversation(page):
    page.click("#new-chat")
    page.wait_for_function("document.querySelectorAll('#chatbot [data-testid=bot]').length === 0", timeout=10_000)
    send(page, "Hi again!", shot="12-new-chat")
    assert "puppy" not in chat_text(page).lower()
    assert page.locator("#chat-list label").filter(has_text="Hi again!").count() == 1


def test_picture_with_text_shows_the_text_read_in_the_caption(page, tmp_path):
    from PIL import Image, ImageDraw, ImageFont

    sign = Image.new("RGB", (620, 220), (250, 246, 235))
    font = ImageFont.truetype("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 40)
    for i, line in enumerate(("欢迎光临北京烤鸭店", "Open 9:00-21:00")):
        ImageDraw.Draw(sign).text((30, 40 + i * 70), line, font=font, fill=(30, 30, 30))
    sign.save(tmp_path / "opening-hours.png")
    page.click("#new-chat")  # its own conversation, so that the earlier steps' conversation stays as they left it
    page.wait_for_function("document.querySelectorAll('#chatbot [data-testid=bot]').length === 0", timeout=10_000)
    send(page, "When does the restaurant open?", [tmp_path / "opening-hours.png"], shot="03b-picture-with-text")
    text = chat_text(page)
    assert "Picture tags and text" in text and "Text in the picture:" in text, text
    assert "欢迎光临北京烤鸭店" in text and "9:00-21:00" in text, text


HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script><b>bold</b>'


def import_file(page, path: Path) -> None:
    if not page.locator("#import-btn").is_visible():
        page.click("#export-import button:has-text('Export / import'), #export-import >> text=Export / import")
        page.wait_for_selector("#import-btn", state="visible")
    page.set_input_files("input[type=file][data-testid='Import chats (JSON)-upload-button']", str(path))


def test_imported_html_is_shown_as_text(page, tmp_path):
    message = {"role": "user", "content": f"hostile {HOSTILE}", "attachments": [{"kind": "image", "text": HOSTILE}]}
    reply = {"role": "assistant", "content": "", "candidates": [{"text": HOSTILE, "j": -1.0}]}
    data = {
        "format": "interactive-format/conversations",
        "version": 1,
        "conversations": [{"title": f"hostile {HOSTILE}", "messages": [message, reply]}],
    }
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data))
    import_file(page, path)
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('onerror')", timeout=20_000)
    shot(page, "13-imported-html")
    assert "<script>alert(2)</script>" in chat_text(page) and "<b>bold</b>" in chat_text(page)
    assert page.locator("#chatbot img[src=x], #chatbot script, #chatbot b, #chat-list img, #chat-list b").count() == 0
    assert page.locator("#chat-list label").filter(has_text="<b>bold</b>").count() == 1
    assert page.dialogs == []


def test_bad_import_is_refused_with_a_clear_message(page, tmp_path):
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps({"format": "<b>other-app</b>", "conversations": []}))
    before = page.locator("#chat-list label").count()
    import_file(page, path)
    toast = page.locator(".toast-body").filter(has_text="Cannot import this file")
    toast.wait_for(timeout=20_000)
    shot(page, "14-bad-import")
    assert "format must be" in toast.inner_text() and page.locator(".toast-body b").count() == 0
    assert page.locator("#chat-list label").count() == before


def stop_live(page) -> bool:
    return page.evaluate("!document.querySelector('#stop-btn').disabled")


def test_stop_is_live_only_during_a_turn_and_ends_it_early(page):
    """At rest Stop cannot be pressed; during a long reply it can, and pressing it ends the turn with what was said."""
    assert not stop_live(page)
    tokens = page.locator("#max-tokens input[type=number]")
    before = tokens.input_value()
    tokens.fill("512")  # a reply that would stream for half a minute here
    tokens.press("Enter")
    turns = bot_count(page)
    page.fill("#input-box textarea", "Tell me a very long story about a dragon who learns to bake bread.")
    page.press("#input-box textarea", "Enter")
    page.wait_for_function("document.querySelector('#status').innerText.startsWith('Sampling')", timeout=60_000)
    page.wait_for_function("!document.querySelector('#stop-btn').disabled", timeout=10_000)
    shot(page, "15-stop-live")
    page.click("#stop-btn")
    page.wait_for_function("document.querySelector('#status').innerText.trim() === 'Ready'", timeout=60_000)
    page.wait_for_function("document.querySelector('#stop-btn').disabled", timeout=10_000)
    shot(page, "16-stopped")
    assert bot_count(page) > turns and "Stopped before the replies were complete" in chat_text(page)
    tokens.fill(before)
    tokens.press("Enter")
