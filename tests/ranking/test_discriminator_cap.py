"""The e5 D reads a reply's first `reply_bytes` UTF-8 bytes (its time grows with the tokens); saved in its meta."""

from __future__ import annotations

import json

import pytest
import torch

from interactive_format.config import ASSETS
from interactive_format.ranking.discriminator import META, load_discriminator, new_discriminator, reply_head

LONG_EN = (
    "Sure! Here are a few ideas for the weekend: go for a hike in the hills if the weather is nice, visit the "
    "new museum downtown, try that ramen place everyone keeps talking about, or just stay in with a good book."
)
LONG_ZH = "周末可以去爬山，呼吸一下新鲜空气；如果下雨的话，也可以去新开的博物馆看看展览，或者在家里看一部好电影，好好休息一下。晚上还可以约朋友一起吃顿火锅，聊聊天。"


@pytest.fixture(scope="module")
def e5_d():
    torch.manual_seed(0)
    return new_discriminator("embedded:e5-small").eval()


def test_reply_head_cuts_bytes_and_never_half_a_character():
    assert reply_head("hello world", 5) == "hello" and reply_head("hello", 0) == "hello"
    assert reply_head("hi", 192) == "hi"
    assert reply_head("周末去爬山", 7) == "周末"  # 3 bytes a character: the third one, cut in two, is dropped
    assert len(LONG_EN.encode()) > 192 and len(LONG_ZH.encode()) > 192


def test_a_long_reply_scores_as_its_first_192_bytes_in_both_languages(e5_d):
    assert e5_d.reply_bytes == 192  # a new D's default
    context = "user: 周末有什么好玩的？ / what should I do this weekend?"
    for long in (LONG_EN, LONG_ZH):
        whole, head = e5_d.score(context, [long, reply_head(long, 192)])
        assert whole == pytest.approx(head, abs=1e-6)
        assert e5_d.score(context, ["ok"]) != pytest.approx(whole, abs=1e-6)  # scores still differ by reply


def test_the_cap_is_saved_and_a_d_saved_without_it_reads_replies_whole(e5_d, tmp_path):
    e5_d.reply_bytes = 100
    try:
        e5_d.save(tmp_path, lam=0.5)
    finally:
        e5_d.reply_bytes = 192
    info = json.loads((tmp_path / META).read_text())
    assert (info["reply_bytes"], info["context_chars"]) == (100, 600)
    loaded = load_discriminator(tmp_path)
    assert loaded.reply_bytes == 100
    loaded.reply_bytes = 80
    loaded.save(tmp_path / "again", **loaded.meta)  # train.finish re-saves with the loaded meta: D's own value wins
    assert json.loads((tmp_path / "again" / META).read_text())["reply_bytes"] == 80

    for key in ("reply_bytes", "context_chars"):  # the meta of a D saved before the cap
        info.pop(key)
    (tmp_path / META).write_text(json.dumps(info))
    old = load_discriminator(tmp_path)
    assert (old.reply_bytes, old.context_chars, old.meta["lam"]) == (0, 600, 0.5)
    context = "user: what should I do this weekend?"
    whole, head = old.score(context, [LONG_EN, reply_head(LONG_EN, 100)])
    assert whole != pytest.approx(head, abs=1e-4)  # whole, as it was made
    e5_d.reply_bytes = 0
    try:
        assert old.score(context, [LONG_EN]) == pytest.approx(e5_d.score(context, [LONG_EN]), abs=1e-5)
    finally:
        e5_d.reply_bytes = 192


def test_the_shipped_d_reads_192_bytes_of_a_reply():
    d = load_discriminator(ASSETS / "discriminator")
    assert (d.reply_bytes, d.context_chars) == (192, 600)
