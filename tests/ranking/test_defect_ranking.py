"""Defect-aware ranking: the fewest defects first, then λ·D + (1−λ)·J; the candidates panel says why and flags."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from interactive_format.web.api import owner_of
from interactive_format.web.callbacks import chat_ui
from interactive_format.engine.chat import ChatEngine
from interactive_format.config import AppConfig, GenerationConfig
from interactive_format.ranking.defects import why_shown
from interactive_format.dialogue import Candidate
from interactive_format.ranking.ranking import Reranker
from interactive_format.llm.generator import Draft, Sample, SamplingParams
from interactive_format.web.rendering import candidates_panel, turn_result
from interactive_format.store.store import Store

from ..fakes import FixedD

LOOP = "北京西站站站站站站站站站站站站站站站站站站站站站站站站"
GOOD = "故宫、长城和颐和园都值得一去。"
ENGLISH = "The Forbidden City and the Great Wall are a must."


def test_fewest_defects_first_then_the_score():
    cands = [Candidate(LOOP, -0.1), Candidate(ENGLISH, -0.2), Candidate(GOOD, -0.9), Candidate("", -0.05)]
    order = Reranker(None).rank("user: 第一次去北京，必须去的景点有哪些？", cands)
    assert order == [2, 0, 1, 3]  # J alone would show the loop (J -0.1); the empty one is last
    assert cands[0].defects == ["loop"] and cands[1].defects == ["wrong_language"] and cands[2].defects == []
    assert cands[3].defects == ["empty"]
    d = FixedD({LOOP: 0.9, ENGLISH: 0.8, GOOD: 0.2})
    assert Reranker(d, lam=1.0).rank("user: 第一次去北京，必须去的景点有哪些？", cands[:3])[0] == 2  # D too


def test_the_ranking_sentence_says_defects_come_first():
    for reranker in (Reranker(None), Reranker(FixedD({}), lam=0.5)):
        assert reranker.note.startswith("Replies with the fewest defects"), reranker.note


def test_a_cut_off_candidate_loses_to_a_complete_one():
    cands = [Candidate("去杭州可以先游西湖，然后", -0.2, finished=False), Candidate("先游西湖。", -0.8)]
    assert Reranker(None).rank("user: 我想五月去杭州玩三天", cands) == [1, 0]
    assert cands[0].defects == ["cut_off"]


def test_the_why_line():
    ctx = "user: 第一次去北京，必须去的景点有哪些？"
    cands = [Candidate(LOOP, -0.1), Candidate(GOOD, -0.9)]
    order = Reranker(FixedD({LOOP: 0.34, GOOD: 0.81}), lam=0.5).rank(ctx, cands)
    assert why_shown(cands, order, order[0]) == "Shown: fewest defects; D 0.81 vs 0.34; 1 of 2 flagged ⚠"
    cands = [Candidate("长城。", -0.3), Candidate(GOOD, -0.9)]
    order = Reranker(None).rank(ctx, cands)
    assert why_shown(cands, order, order[0]) == "Shown: highest score; J -0.30 vs -0.90"
    assert why_shown(cands, order, order[1]) == "You picked this reply (ranked 2 of 2)."
    cands = [Candidate(LOOP, -0.1), Candidate(ENGLISH, -0.2)]
    order = Reranker(None).rank(ctx, cands)
    assert "every candidate has a defect, this one: loop" in why_shown(cands, order, order[0])
    assert why_shown(cands[:1], [0], 0) == ""  # one candidate: nothing to explain


class ScriptedGenerator:
    """Returns fixed candidates (text, J, finished) for every prompt."""

    name = "scripted"

    def __init__(self, replies: list[tuple[str, float, bool]]) -> None:
        self.replies = replies

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"]) for m in messages)

    def stream(self, messages: list[dict], params: SamplingParams, stop: threading.Event) -> Iterator[Sample]:
        drafts = []
        for text, j, finished in self.replies[: params.n]:
            ids = list(range(max(len(text), 1)))
            drafts.append(Draft(text, ids, j * len(ids), finished))
        yield Sample(drafts, 1, done=True)


@pytest.fixture
def ui(tmp_path):
    replies = [(LOOP, -0.1, False), (ENGLISH, -0.2, True), (GOOD, -0.9, True)]
    config = AppConfig(generation=GenerationConfig(num_candidates=3, max_new_tokens=16))
    engine = ChatEngine(
        config, ScriptedGenerator(replies), None, None, Reranker(FixedD({LOOP: 0.34, ENGLISH: 0.5, GOOD: 0.81}))
    )
    store = Store(tmp_path / "chats.db")
    yield chat_ui(engine, store)
    store.close()


def panel(view) -> str:
    """The candidates panel under the chat (not a bubble in it)."""
    assert not any(m.get("metadata") for m in view.chatbot["value"])
    return view.candidate_list


def entry(text: str, reply: str) -> str:
    """The panel's entry (its heading line and reply) for the candidate that begins with `reply`."""
    return next(e for e in text.split("\n\n") if reply in e)


def test_the_panel_says_why_and_flags_defective_candidates_also_after_a_reload(ui):
    from interactive_format.web.callbacks import View

    user = "a" * 32
    chat = View(*ui.load(user)[1:]).chat
    message = {"text": "第一次去北京，必须去的景点有哪些？", "files": []}
    view = list(ui.respond(message, chat, 3, 0.7, 16, 0.5, user))[-1]
    reply = chat.conversation.turns[1]
    assert reply.reply == GOOD  # J alone would have shown the loop, D alone the English reply
    text = panel(view)
    assert "**Shown: fewest defects; D 0.81 vs 0.50; 2 of 3 flagged ⚠**" in text
    assert "⚠ *loop, cut off*" in entry(text, "北京西站") and "⚠ *wrong language*" in entry(text, "The Forbidden")
    assert "▶" in entry(text, GOOD) and "⚠" not in entry(text, GOOD)  # the shown entry has no flag
    assert text.startswith("#### 3 candidates, ranked")
    result = turn_result(chat.conversation)
    assert [c["defects"] for c in result["candidates"]] == [["loop", "cut_off"], ["wrong_language"], []]
    assert "defects" not in result["meta"]
    reloaded = ui.history.open(owner_of(user), chat.id).conversation.turns[1]  # from SQLite
    assert [c.defects for c in reloaded.candidates] == [["loop", "cut_off"], ["wrong_language"], []]  # stored
    assert candidates_panel(reloaded) == candidates_panel(reply)
