"""Flows in a real browser: a Chinese page (zh-CN browser, smart-home flow, a Mandarin voice turn) and an
English one that switches flow from the menu. Screenshots: test-artifacts/browser/flow-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import ARTIFACTS, CHROMIUM, speak
from .test_browser import idle, panel_text, ready

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


def finished(page, bots: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#chatbot [data-testid=bot]').length > n", arg=bots, timeout=90_000
    )
    idle(page)


def test_a_chinese_browser_gets_chinese_labels_and_a_mandarin_voice_turn(browser, flow_server, tmp_path):
    page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page.goto(f"{flow_server}/?flow=smart-home")
    ready(page)
    page.wait_for_function("document.querySelector('#flow-header').innerText.includes('智能家居助手')", timeout=20_000)
    sidebar = page.inner_text("#sidebar")
    assert "新对话" in sidebar and "你的对话" in sidebar and "场景" in sidebar
    assert "设置" in page.inner_text("body") and "每次回复的候选数" in page.inner_text("body")
    assert page.get_attribute("#input-box textarea", "placeholder") == "输入消息、添加图片或录制语音…"
    assert page.locator("#quick-replies button").filter(has_text="打开客厅的灯").count() == 1
    clip = speak("你好，请帮我打开客厅的灯，谢谢。", tmp_path / "mandarin.wav", voice="cmn-latn-pinyin")
    page.set_input_files("#input-box input[type=file]", [str(clip)])
    page.wait_for_function(
        "document.querySelectorAll('#input-box .thumbnail-item, #input-box audio').length >= 1", timeout=20_000
    )
    page.press("#input-box textarea", "Enter")
    finished(page, 0)
    page.screenshot(path=str(ARTIFACTS / "flow-smart-home-zh.png"), full_page=True)
    text = page.inner_text("#chatbot")
    assert "语音转写（中文）" in text and "你好" in text
    page.close()


def test_an_english_page_switches_flow_from_the_menu(browser, flow_server):
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1000})
    page.goto(flow_server)
    ready(page)
    assert "New chat" in page.inner_text("#sidebar")
    page.click("#flow-menu input")
    page.locator("ul[role=listbox] li").filter(has_text="Customer service").click()
    page.wait_for_function(
        "document.querySelector('#flow-header').innerText.includes('Customer service')", timeout=20_000
    )
    assert page.locator("#quick-replies button").filter(has_text="Track my order").is_visible()
    assert "How can I help you with your order" in page.inner_text("#chatbot")  # the flow's welcome
    page.click("#examples >> text=How do I return a pair of shoes?")
    page.wait_for_function(
        "document.querySelector('#input-box textarea').value.includes('return a pair')", timeout=10_000
    )
    page.fill("#input-box textarea", "")
    page.click("#quick-replies button:has-text('Track my order')")
    finished(page, 0)
    page.screenshot(path=str(ARTIFACTS / "flow-customer-service-en.png"), full_page=True)
    assert "Track my order" in page.inner_text("#chatbot") and "candidates, ranked" in panel_text(page)
    assert page.locator("#chat-list label").filter(has_text="Track my order").count() == 1
    page.close()
