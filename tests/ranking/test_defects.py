"""The defect detectors on fixed replies in Chinese and English, and on real bad replies of bench/quality."""

import json
from pathlib import Path

import pytest

from interactive_format.ranking import defects
from interactive_format.dialogue import context_text

QUALITY = Path(__file__).resolve().parents[2] / "bench" / "quality"


def real_reply(model: str, prompt_id: str, candidate: int | None = None) -> tuple[str, str, bool]:
    """(context, reply text, finished) of a reply the quality bench recorded (the shown one by default)."""
    rows = json.loads((QUALITY / f"replies-{model}.json").read_text())["replies"]
    row = next(r for r in rows if r["id"] == prompt_id)
    context = context_text([{"role": "user", "content": row["text"]}])
    if candidate is None:
        c = next(c for c in row["candidates"] if c["text"] == row["shown"])
    else:
        c = row["candidates"][candidate]
    return context, c["text"], c["finished"]


def names(reply: str, context: str = "", finished: bool = True) -> list[str]:
    return [d.name for d in defects.find(reply, context, finished)]


ZH = "user: 第一次去北京，必须去的景点有哪些？"
EN = "user: I have two days in Rome in July. What should I see?"


@pytest.mark.parametrize(
    ("context", "reply"),
    [
        (ZH, "故宫、长城和颐和园都值得一去。建议提前在网上预约故宫的门票。"),
        (EN, "Start with the Colosseum and the Forum, then the Pantheon and Trevi Fountain on day two."),
        ("user: 打开客厅的灯", "好的，已为您打开客厅的灯。"),
        ("user: Close the garage door.", "OK, I'll close the garage door."),
        ("user: Can I change the delivery address?", "Yes, you can change the delivery address in your orders page."),
        ("user: 我们周末用Python写个小游戏好吗？", "好啊！可以先用 pygame 写一个贪吃蛇。"),  # English names in Chinese
        (
            "user: 明天的 meeting 改到几点了？",
            "The meeting moved to 3 pm. 下午三点。",
        ),  # the user mixes: either is fine
        ("user: 用Python怎么读文件？", "可以这样写：\n```python\nwith open('a.txt') as f:\n    text = f.read()\n```"),
        ("user: What should I eat in Beijing?", "Try Peking duck and 饺子 (dumplings) at any local restaurant."),
    ],
)
def test_good_replies_have_no_defects(context, reply):
    assert names(reply, context) == []


def test_empty_and_whitespace():
    assert names("") == ["empty"]
    assert names(" \n\t ") == ["empty"]
    assert names("🌱🌱") == ["empty"]  # SmolLM2's whole reply to "Turn off the lights in the bedroom."
    assert names("……") == ["empty"]
    assert names("好") == []


@pytest.mark.parametrize(
    "reply",
    [
        "北京西站站站站站站站站站站站站站站站站站站站站站站",
        "我很好我很好我很好我很好我很好",
        "Zeetetetetetetetetetetetetetetetetetet",
        "好的；；；；；；；；；；；；",
        "1. Visit the Louvre museum\n2. Eat a croissant\n3. Visit the Louvre museum",
        "Walking can reduce stress and improve your mood. Yoga can reduce stress and improve your mood. "
        "Reading can reduce stress and improve your mood.",
    ],
)
def test_loops_in_both_languages(reply):
    assert "loop" in names(reply)


def test_markdown_rules_and_short_laughs_are_not_loops():
    assert names("好的！\n\n---\n\n========\n\n哈哈哈哈，太好了。") == []
    assert names("Haha, that's funny. Well... let me think.") == []


def test_wrong_language_both_ways():
    assert names("Sure, the Forbidden City and the Great Wall are a must.", ZH) == ["wrong_language"]
    assert names("故宫和长城是必去的景点。", EN) == ["wrong_language"]
    german = "Natürlich! Am ersten Tag sollten Sie das Kolosseum und das Forum besuchen, danach gehen Sie zum Pantheon."
    assert names(german, EN) == ["wrong_language"]
    assert names("コロッセオとフォロ・ロマーノをおすすめします。", EN) == ["wrong_language"]
    assert names("你可以去 Colosseum 和 Forum，然后 see the Pantheon.", EN) == ["wrong_language"]  # half Chinese
    d = defects.wrong_language("Sure.", ZH)
    assert d is not None and d.detail == "English reply to a message in Chinese"


def test_conversation_language_is_the_last_user_message_without_picture_tags():
    picture = context_text(
        [
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {
                "role": "user",
                "content": "[The user sent a picture. A photo that looks like: remote control (71%).]\n这个遥控器怎么用？",
            },
        ]
    )
    assert defects.conversation_language(picture) == "zh"
    assert names("Press the power button first.", picture) == ["wrong_language"]
    assert names("先按电源键，再对准电视。", picture) == []


def test_cut_off_needs_the_token_limit_and_an_open_sentence():
    assert names("去杭州可以先游西湖，然后", ZH, finished=False) == ["cut_off"]
    assert names("You could start with the Colosseum and", EN, finished=False) == ["cut_off"]


def test_cut_off_at_a_list_item_just_begun_or_bold_left_open():
    """The token limit right after the next item's marker, or inside its bold title: "." and "*" do not end it."""
    assert names("杭州值得去的地方：\n1. **西湖**：风景很美。\n2. **灵隐寺**：古寺。\n3. **", ZH, finished=False) == [
        "cut_off"
    ]
    assert names("Pack these:\n1. Boots.\n2. A rain jacket.\n3.", EN, finished=False) == ["cut_off"]
    assert names("Pack these:\n1. **Boots**: good ones.\n2. **A rain", EN, finished=False) == ["cut_off"]
    # complete endings stay complete: a closed bold title, a sentence, a list item that says something
    assert names("Pack these:\n1. **Boots**: good ones.\n2. **A rain jacket**", EN, finished=False) == []
    assert names("Pack these:\n1. Boots.\n2. A rain jacket.", EN, finished=False) == []
    assert names("去杭州可以先游西湖。", ZH, finished=False) == []  # ended at a sentence end
    assert names("You could start with the Colosseum and", EN, finished=True) == []


def test_echo_of_the_prompt():
    assert names("第一次去北京，必须去的景点有哪些？", ZH) == ["echo"]
    assert names("Close the garage door.", "user: Close the garage door.") == ["echo"]
    long = "user: My package says delivered but it's not at my door. What can I do?"
    assert names(
        "Sure! Your question: my package says delivered but it's not at my door. What can I do? Done.", long
    ) == ["echo"]


def test_real_bad_replies_from_the_quality_bench():
    # Qwen2.5-Coder-0.5B, read as defects in bench/quality/README.md. Each is named by its candidate index: the
    # files are re-ranked as the app ranks now (bench/quality/rank.py), so the shown reply is often another one.
    ctx, text, finished = real_reply("qwen2.5-coder-0.5b", "zh-travel-2", candidate=1)  # 故宫博物院博物馆 repeated
    assert "loop" in names(text, ctx, finished)
    ctx, text, finished = real_reply(
        "qwen2.5-coder-0.5b", "en-talk-1", candidate=1
    )  # The Catcher in the Rye three times
    assert "loop" in names(text, ctx, finished)
    ctx, text, finished = real_reply("qwen2.5-coder-0.5b", "zh-home-4")  # answered in English
    assert "wrong_language" in names(text, ctx, finished)
    ctx, text, finished = real_reply("qwen2.5-coder-0.5b", "zh-talk-1", candidate=0)  # quotes the prompt back
    assert "echo" in names(text, ctx, finished)
    # SmolLM2-135M
    ctx, text, finished = real_reply("smollm2-135m", "en-travel-1", candidate=0)  # French, then a loop
    assert {"loop", "cut_off"} <= set(names(text, ctx, finished))
    ctx, text, finished = real_reply("smollm2-135m", "zh-cs-3")  # English to a Chinese question
    assert "wrong_language" in names(text, ctx, finished)
    ctx, text, finished = real_reply("smollm2-135m", "zh-talk-1", candidate=2)  # ；；；；…
    assert "loop" in names(text, ctx, finished)
    ctx, text, finished = real_reply("smollm2-135m", "en-home-1", candidate=0)  # two emoji
    assert names(text, ctx, finished) == ["empty"]
    # and a reply read as fine stays clean
    ctx, text, finished = real_reply("qwen2.5-coder-0.5b", "zh-cs-3")  # 我们支持货到付款。
    assert names(text, ctx, finished) == []


def test_detectors_are_fast():
    import time

    rows = json.loads((QUALITY / "replies-smollm2-135m.json").read_text())["replies"]
    pairs = [(context_text([{"role": "user", "content": r["text"]}]), c) for r in rows for c in r["candidates"]]
    start = time.perf_counter()
    for ctx, c in pairs:
        defects.find(c["text"], ctx, c["finished"])
    assert (time.perf_counter() - start) / len(pairs) < 0.02  # well under D's 30 ms per candidate
