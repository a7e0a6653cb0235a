"""A newcomer's first minutes in a real browser, at desktop and phone size, in English and Chinese: the chat is on
screen, the streamed reply is never silently replaced, the chat holds replies (not ranking tables), a bad file gets a
clear message beside the user's own bubble, and a Chinese page shows no English. Screenshots:
test-artifacts/browser/newcomer-*.png.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path

import pytest

from ..conftest import ARTIFACTS, CHROMIUM, FLAGS
from .test_browser import idle, ready, send

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")

SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
# Words a Chinese page may show in Latin letters: names (Gradio, the models' specs are in `code`), units, symbols.
NAMES = {"Gradio", "API", "D", "J", "P", "MB", "JSON", "JSONL", "λ", "wav"}
# Every time the last reply's bubble changes, its text is kept (window.seen): what the reader watched.
WATCH = """
window.seen = [];
new MutationObserver(() => {
  const bots = [...document.querySelectorAll('#chatbot [data-testid=bot]')]
    .filter(b => !b.querySelector('.if-note, .if-error'));
  if (!bots.length) return;
  const text = bots[bots.length - 1].innerText;
  if (window.seen[window.seen.length - 1] !== text) window.seen.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true });
// Gradio's own status words as they pass: the screen reader's live region and the progress timers' text (read once
// the page's own scripts have run, as the page shows them).
window.statuses = new Set();
new MutationObserver(() => setTimeout(() => {
  document.querySelectorAll('.sr-only, .progress-text, .meta-text, .meta-text-center')
    .forEach(el => { if (el.textContent.trim()) window.statuses.add(el.textContent.trim()); });
}, 0)).observe(document, { subtree: true, childList: true, characterData: true });
"""


@pytest.fixture(scope="module")
def quiet_microphone(tmp_path_factory) -> Path:
    """Ten seconds of silence: what talk mode hears in these tests (it listens, nobody speaks)."""
    path = tmp_path_factory.mktemp("mic") / "silence.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 16000 * 10)
    return path


def open_page(playwright, url: str, locale: str, size: str, microphone: Path):
    flags = [*FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={microphone}"]  # fmt: skip
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
    phone = size == "phone"
    context = browser.new_context(locale=locale, viewport=SIZES[size], is_mobile=phone, has_touch=phone)
    page = context.new_page()
    page.add_init_script(WATCH)
    page.goto(url)
    ready(page)
    return browser, page


def letters(text: str) -> str:
    """Only the letters (and Han characters): what stays the same while a reply's markdown renders as it grows."""
    return "".join(ch for ch in text if ch.isalpha())


def english_in_the_ui(page) -> list[str]:
    """Latin words the page shows outside the model's own words (replies, candidates), model specs and names."""
    text = page.evaluate(
        """() => {
          const page = document.querySelector('gradio-app') || document.body;
          const copy = page.cloneNode(true);
          copy.querySelectorAll('[data-testid=bot], .if-reply, code, textarea, [data-testid=user], script, style,'
                               + ' .hidden, [style*="display: none"], #talk-data, #browser-language')
              .forEach(el => { if (!el.querySelector('.if-note, .if-error')) el.remove(); });
          document.body.appendChild(copy);
          copy.style.position = 'absolute'; copy.style.left = '-99999px';
          const out = copy.innerText;
          copy.remove();
          return out;
        }"""
    )
    words = re.findall(r"[A-Za-z][A-Za-z]+", re.sub(r"“[^”]*”", " ", text))  # a file's name in quotes stays as it is
    return sorted({w for w in words if w not in NAMES})


def watched_without_a_silent_switch(page) -> None:
    """Each update of the reply's bubble only added to what was shown, unless the chat says the draft was replaced
    or dropped."""
    seen = [letters(t) for t in page.evaluate("window.seen") if letters(t)]
    grew = all(later.startswith(earlier) for earlier, later in zip(seen, seen[1:]))
    told = page.locator("#chatbot .if-note").count() > 0
    assert grew or told, seen


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_a_newcomers_first_turns(playwright, flow_server, media, quiet_microphone, locale, size, tmp_path):
    zh = locale == "zh-CN"
    browser, page = open_page(playwright, flow_server, locale, size, quiet_microphone)
    name = f"newcomer-{size}-{locale[:2]}"
    if size == "phone":  # the chat, not the sidebar, fills a phone's screen
        page.wait_for_function("!document.querySelector('#sidebar').classList.contains('open')", timeout=10_000)
        box = page.locator("#input-box textarea").bounding_box()
        assert box is not None and 0 <= box["y"] < SIZES["phone"]["height"]
    page.screenshot(path=str(ARTIFACTS / f"{name}-1-start.png"))
    header = page.inner_text("#flow-header")
    assert ("互动对话" in header) if zh else ("Interactive Format" in header)

    send(page, "推荐一道简单的晚饭菜。" if zh else "Suggest a simple dinner.")  # waits for the reply, then "Ready"
    page.screenshot(path=str(ARTIFACTS / f"{name}-2-reply.png"), full_page=True)
    watched_without_a_silent_switch(page)
    chat = page.inner_text("#chatbot")
    assert "candidates, ranked" not in chat and "条候选回复" not in chat  # the ranking is in its panel, not the chat
    assert page.locator("#chatbot .top-panel button").filter(visible=True).count() == 0  # no trash icon
    for mark in (".if-note", ".if-error"):  # notices and errors take no likes
        rows = page.locator(f"#chatbot .message-row:has({mark}) + .message-buttons button[aria-label=Like]")
        assert rows.filter(visible=True).count() == 0
    page.click("#cand-all button")
    panel = page.inner_text("#cand-list")
    assert ("条候选回复，已排序" in panel) if zh else ("candidates, ranked" in panel)

    pdf = tmp_path / "notes.pdf"  # a kind of file the box does not take: Gradio's refusal, in the page's language
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    page.set_input_files("#input-box input[type=file]", [str(pdf)])
    toast = page.locator("[data-testid=toast-body]").last
    toast.wait_for(timeout=10_000)
    said = toast.inner_text()
    told = "错误" in said and "无法添加“notes.pdf”：只能发送图片或语音。" in said
    assert told if zh else ("notes.pdf" in said and "Only image, audio allowed." in said), said
    assert page.locator("#input-box .thumbnail-item, #input-box audio").count() == 0  # nothing was attached
    page.screenshot(path=str(ARTIFACTS / f"{name}-2b-wrong-file.png"))
    toast.locator("[data-testid=toast-close]").click()

    empty = media["empty"]  # a 0-byte recording: refused, and the user still sees what they sent
    page.set_input_files("#input-box input[type=file]", [str(empty)])
    page.wait_for_function("document.querySelectorAll('#input-box .thumbnail-item, #input-box audio').length >= 1",
                           timeout=20_000)  # fmt: skip
    page.press("#input-box textarea", "Enter")
    page.wait_for_selector("#chatbot .if-error", timeout=60_000)
    idle(page)
    chat = page.inner_text("#chatbot")
    assert "empty.wav" in page.inner_text("#chatbot [data-testid=user] >> nth=-1")
    assert ("是空的（0 字节）" in chat) if zh else ("is empty (0 bytes)" in chat)
    assert not page.locator("#cand-info").is_visible()  # no candidates panel for a refused message

    if zh:  # talk mode speaks Chinese too; then the whole page is checked for English
        page.click("#talk-btn")
        page.wait_for_function("document.querySelector('#talk-status').innerText.includes('正在听')", timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / f"{name}-3-talk.png"), full_page=True)
        page.click("#talk-btn")
        page.wait_for_function("document.querySelector('#talk-status').innerText.includes('对话模式已关闭')",
                               timeout=10_000)  # fmt: skip
        assert english_in_the_ui(page) == []
        statuses = page.evaluate("[...window.statuses]")  # what Gradio said while the turns ran, in Chinese too
        assert statuses and not [s for s in statuses if re.search(r"[A-Za-z]{2,}", s)], statuses
    page.screenshot(path=str(ARTIFACTS / f"{name}-4-error.png"), full_page=True)

    if size == "phone":  # the sidebar opens over the chat and gives it back once a choice is made
        page.click("#sidebar .toggle-button")
        page.wait_for_function("document.querySelector('#sidebar').classList.contains('open')", timeout=5_000)
        page.screenshot(path=str(ARTIFACTS / f"{name}-5-sidebar.png"))
        page.click("#new-chat")
        page.wait_for_function("!document.querySelector('#sidebar').classList.contains('open')", timeout=5_000)
        page.wait_for_function("document.querySelectorAll('#chatbot [data-testid=bot]').length === 0", timeout=10_000)
    browser.close()
