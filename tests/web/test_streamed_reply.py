"""The reply a user watches being written is not silently replaced; regenerating shows a different reply or says
why not; the candidates panel folds repeats and shows each number once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from interactive_format.web.callbacks import ChatUI, chat_ui
from interactive_format.engine.chat import ChatEngine
from interactive_format.config import AppConfig, GenerationConfig
from interactive_format.dialogue import Candidate, Turn
from interactive_format.ranking.ranking import Reranker
from interactive_format.llm.generator import Draft, Sample, SamplingParams
from interactive_format.web.rendering import NOTE_MARK, candidates_panel, candidate_info, score_fields
from interactive_format.store.store import Store

USER = "b" * 32
CLEAN = "Paris is the capital of France."
OTHER = "The capital of France is Paris."
LOOP = "Paris " * 12


class FixedD:
    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def score(self, context, replies):
        return [self.scores.get(r, 0.5) for r in replies]


class Streaming:
    """Streams each script's texts word by word, all candidates together; candidate k starts `delays[k]` words
    late (so the first to show text is known)."""

    name = "streaming"

    def __init__(self, scripts: list[list[tuple[str, bool]]], delays: tuple[int, ...] = (0, 2, 4, 6)) -> None:
        self.scripts, self.delays, self.calls = scripts, delays, 0

    def count_tokens(self, messages):
        return sum(len(m["content"]) for m in messages)

    def stream(self, messages, params: SamplingParams, stop: threading.Event) -> Iterator[Sample]:
        script = self.scripts[min(self.calls, len(self.scripts) - 1)][: params.n]
        self.calls += 1
        words = [text.split(" ") for text, _ in script]
        steps = max(len(w) + d for w, d in zip(words, self.delays))
        for step in range(1, steps + 1):
            drafts = []
            for (text, finished), w, delay in zip(script, words, self.delays):
                shown = " ".join(w[: max(0, step - delay)])
                done = shown == text
                drafts.append(Draft(shown, list(range(len(shown))), -0.5 * len(shown), finished and done))
            yield Sample(drafts, 7, done=step == steps)
            time.sleep(0.05)  # as a model does: the page gets an update per step


def make_ui(tmp_path, generator, d_scores: dict[str, float], n: int = 2) -> ChatUI:
    config = AppConfig(generation=GenerationConfig(num_candidates=n, max_new_tokens=32))
    engine = ChatEngine(config, generator, None, None, Reranker(FixedD(d_scores), lam=1.0))
    return chat_ui(engine, Store(tmp_path / "chats.db"))


def turn(ui: ChatUI, text: str = "What is the capital of France?"):
    chat = ui.history.new()
    views = list(ui.respond({"text": text, "files": []}, chat, 2, 0.7, 32, 1.0, USER))
    return chat, views


def messages(view) -> list[dict]:
    """The chat's messages in a view (a streaming update holds the list itself)."""
    return view.chatbot if isinstance(view.chatbot, list) else view.chatbot["value"]


def notices(view) -> list[str]:
    return [m["content"] for m in messages(view) if m["content"].startswith(NOTE_MARK)]


def test_the_watched_draft_stays_when_no_candidate_has_fewer_defects(tmp_path):
    ui = make_ui(tmp_path, Streaming([[(CLEAN, True), (OTHER, True)]]), {CLEAN: 0.2, OTHER: 0.9})
    chat, views = turn(ui)
    streamed = [messages(v)[-1]["content"] for v in views if v.status.startswith("Sampling")]
    reply = chat.conversation.turns[-1]
    assert reply.reply == CLEAN and streamed[-1] == CLEAN  # what was watched is what stays
    assert all(CLEAN.startswith(s.rstrip("…")) for s in streamed if s != "…")  # it only ever grew
    assert reply.meta["streamed"] == 0 and reply.meta["kept_streamed"] and not notices(views[-1])
    assert "Shown: the reply you watched being written" in views[-1].candidate_list
    # the API has no reader watching: the reranker's choice (D) stands
    api_turn = Turn("user", "What is the capital of France?")
    conversation = ui.engine.new_conversation()
    conversation.turns.append(api_turn)
    list(ui.engine.rerun(conversation))
    assert conversation.turns[-1].reply == OTHER and "streamed" not in conversation.turns[-1].meta


def test_a_watched_draft_replaced_at_the_end_says_so(tmp_path):
    cut = "Paris is the capital and"
    ui = make_ui(tmp_path, Streaming([[(cut, False), (OTHER, True)]]), {cut: 0.9, OTHER: 0.2})
    chat, views = turn(ui)
    reply = chat.conversation.turns[-1]
    assert reply.reply == OTHER and reply.candidates[0].defects == ["cut_off"]
    [notice] = notices(views[-1])
    assert "The streamed draft was replaced by the best-ranked reply (the draft: cut off)" in notice
    assert "*streamed*" in views[-1].candidate_list  # the draft stays one click away, marked


def test_a_draft_that_starts_looping_is_dropped_while_written_and_the_user_is_told(tmp_path):
    ui = make_ui(tmp_path, Streaming([[(LOOP.strip(), True), (OTHER, True)]], delays=(0, 1)), {})
    chat, views = turn(ui)
    streamed = [messages(v)[-1]["content"] for v in views if v.status.startswith("Sampling")]
    assert streamed[0].startswith("Paris") and streamed[-1] == OTHER  # left for the clean one mid-stream
    reply = chat.conversation.turns[-1]
    assert reply.reply == OTHER
    assert any("A draft shown while the reply was written was dropped (loop)" in n for n in notices(views[-1]))


def test_regenerate_shows_a_different_reply_or_says_none_came(tmp_path):
    generator = Streaming([[(CLEAN, True), (CLEAN, True)], [(CLEAN, True), (CLEAN, True)], [(CLEAN, True), (OTHER, True)]])
    ui = make_ui(tmp_path, generator, {CLEAN: 0.9, OTHER: 0.1})
    chat, _ = turn(ui)
    view = list(ui.regenerate(chat, 2, 0.7, 32, 1.0, USER))[-1]
    reply = chat.conversation.turns[-1]
    assert reply.reply == CLEAN and len(reply.candidates) == 4
    assert any("Every new candidate repeated an earlier reply" in n for n in notices(view))
    view = list(ui.regenerate(chat, 2, 0.7, 32, 1.0, USER))[-1]
    assert chat.conversation.turns[-1].reply == OTHER  # D prefers CLEAN, but the user asked for something new
    assert not any("repeated" in n for n in notices(view))


def test_the_panel_folds_repeats_and_shows_each_number_once():
    turn_ = Turn("assistant", candidates=[Candidate(CLEAN, -0.5, 0.8), Candidate(OTHER, -0.7, 0.6),
                                          Candidate(" Paris is  the capital of France. ", -0.6, 0.7)])  # fmt: skip
    for c in turn_.candidates:
        c.score = c.d  # λ = 1: the score is D
    turn_.ranked, turn_.chosen = [0, 2, 1], 0
    panel = candidates_panel(turn_)
    assert panel.startswith("#### 3 candidates, ranked (1 identical)")
    assert panel.count(CLEAN) == 1 and "×2" in panel and panel.count("**2**") == 0  # the repeat folded into 1
    assert score_fields(turn_.candidates) == ("score", "J") and " · D " not in panel  # D is the score: not twice
    assert "score 0.800 · J -0.500" in candidate_info(turn_, None)
    assert "<table" not in panel and "|---" not in panel  # a list, not a table squeezed by long replies
    zh = candidates_panel(turn_, lang="zh")
    assert zh.startswith("#### 3 条候选回复，已排序（1 条相同）") and "得分 0.800" in zh


@pytest.fixture(autouse=True)
def _close_stores():
    yield
