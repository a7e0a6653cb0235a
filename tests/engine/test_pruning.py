"""Ending candidates while they are sampled (pruning.py): the policy alone, a turn through the chat engine (the
API result, the panel, the stored turn, the streamed reply), and both real engines ending one row alone."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

from interactive_format.engine.chat import ChatEngine
from interactive_format.config import AppConfig, GenerationConfig
from interactive_format.ranking.ranking import Reranker
from interactive_format.engine.pruning import PruneOptions, Pruner, survivors_first
from interactive_format.web.rendering import candidate_info, candidates_panel, turn_result
from interactive_format.llm.sampling import Draft, RowEnds, Sample, SamplingParams
from interactive_format.store.store import Store

CONTEXT = "user: How do I reset my router?"
LOOP = "OK, let me check. " * 12  # a loop from its 16th word on (defects.loop)
CLEAN = "Unplug the router, wait ten seconds and plug it back in. Then wait until its lights are steady again."
LONG = "First of all you should know that routers come in many kinds and each of them has its own way " * 3


def draft(text: str, tokens: int | None = None, finished: bool = False) -> Draft:
    words = text.split()
    n = len(words) if tokens is None else tokens
    return Draft(" ".join(words[:n]), list(range(n)), -0.5 * n, finished)


# --- the policy --------------------------------------------------------------------------------------------


def test_a_looping_draft_is_pruned_once_its_prefix_loops_and_never_below_keep():
    pruner = Pruner(CONTEXT, 128, PruneOptions(schedule=()))
    assert pruner.decide([draft(LOOP, 12), draft(CLEAN, 12)], {}) == {}  # too short to judge
    assert pruner.decide([draft(LOOP, 16), draft(CLEAN, 16)], {}) == {0: "pruned at 16 tokens: loop"}
    alone = Pruner(CONTEXT, 128, PruneOptions(schedule=()))
    assert alone.decide([draft(LOOP, 16), draft(LOOP, 16)], {1: "pruned at 16 tokens: loop"}) == {}  # the last one
    assert Pruner(CONTEXT, 128).decide([draft(LOOP, 40)], {}) == {}  # one candidate: nothing to choose


def test_a_reply_in_the_wrong_language_is_pruned():
    chinese = "你好，请问你的路由器是什么型号？你可以先把它关掉，然后等十秒钟再打开，看看灯是不是正常。"
    pruner = Pruner(CONTEXT, 128, PruneOptions(schedule=(), min_tokens=4))
    assert pruner.decide([Draft(chinese, list(range(20))), draft(CLEAN, 20)], {}) == {
        0: "pruned at 20 tokens: wrong language"
    }


def test_longer_drafts_are_stopped_once_enough_candidates_finished_clean():
    pruner = Pruner(CONTEXT, 128, PruneOptions(schedule=()))
    finished = draft(CLEAN, finished=True)  # 19 tokens
    short = draft(LONG, 15)  # still shorter than a finished one: it may yet end first and be shown
    assert pruner.decide([finished, finished, draft(LONG, 20), short], {}) == {}
    assert pruner.decide([finished, finished, draft(LONG, 20), draft(LONG, 20)], {}) == {
        2: "stopped: 2 candidates had finished",
        3: "stopped: 2 candidates had finished",
    }
    looping = draft(LOOP, 16, finished=True)  # a finished candidate with a defect does not count
    assert Pruner(CONTEXT, 128, PruneOptions(schedule=())).decide([finished, looping, draft(LONG, 30)], {}) == {}
    assert Pruner(CONTEXT, 128).decide([finished, draft(LONG, 30)], {}) == {1: "stopped: 1 candidate had finished"}


def test_the_watched_draft_may_run_a_little_longer_than_the_finished_ones():
    finished = draft(CLEAN, finished=True)  # 19 tokens
    pruner = Pruner(CONTEXT, 128, PruneOptions(schedule=()))
    pruner.watched = 2
    assert pruner.decide([finished, finished, draft(LONG, 25), draft(LONG, 20)], {}) == {
        3: "stopped: 2 candidates had finished"  # the watched row 2 goes on, up to 1.5 x 19 tokens
    }
    assert pruner.decide([finished, finished, draft(LONG, 12), draft(LONG, 20)], {}) == {
        3: "stopped: 2 candidates had finished"  # shorter than the finished ones: it does not hold the others
    }
    assert pruner.decide([finished, finished, draft(LONG, 29)], {}) == {2: "stopped: 2 candidates had finished"}
    same = Pruner(CONTEXT, 128, PruneOptions(schedule=(), watched_grace=None))  # None: stopped like the others
    same.watched = 2
    assert same.decide([finished, finished, draft(LONG, 25), draft(LONG, 20)], {}) == {
        2: "stopped: 2 candidates had finished",
        3: "stopped: 2 candidates had finished",
    }


def test_the_schedule_prunes_the_weakest_starts_and_counts_clean_finished_ones():
    scores = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.7}

    def score(drafts: list[Draft]) -> list[float]:
        return [scores[d.text[0]] for d in drafts]

    pruner = Pruner(CONTEXT, 128, PruneOptions(schedule=((8, 3), (24, 1))), score)
    rows = [draft(f"{k} " + LONG, 7) for k in "abcd"]
    assert pruner.decide(rows, {}) == {}  # not every draft has 8 tokens yet
    rows = [draft(f"{k} " + LONG, 8) for k in "abcd"]
    assert pruner.decide(rows, {}) == {1: "pruned at 8 tokens: weaker start"}
    ended = {1: "pruned at 8 tokens: weaker start"}
    rows = [draft(f"{k} " + LONG, 24) for k in "abcd"]
    assert pruner.decide(rows, ended) == {2: "pruned at 24 tokens: weaker start", 3: "pruned at 24 tokens: weaker start"}
    clean_first = Pruner(CONTEXT, 128, PruneOptions(schedule=((8, 2),)), score)
    rows = [draft("a " + CLEAN, finished=True)] + [draft(f"{k} " + LONG, 8) for k in "bcd"]
    assert clean_first.decide(rows, {}) == {1: "pruned at 8 tokens: weaker start", 2: "pruned at 8 tokens: weaker start"}


def test_ended_candidates_rank_after_those_that_ran_their_course():
    assert survivors_first([2, 0, 3, 1], ["", "", "pruned at 16 tokens: loop", ""]) == [0, 3, 1, 2]


# --- a turn through the chat engine ------------------------------------------------------------------------


class RowsGenerator:
    """Streams fixed replies word by word (one word a token), one row each; ends rows as the real engines do."""

    name = "rows"
    ends_rows = True

    def __init__(self, replies: list[tuple[str, float, bool]]) -> None:
        self.replies = replies  # (text, J per token, ends with end of turn)
        self.steps = 0  # decode steps of the last stream

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"].split()) for m in messages)

    def stream(self, messages, params: SamplingParams, stop, ends: RowEnds | None = None) -> Iterator[Sample]:
        ends, drafts = RowEnds() if ends is None else ends, [Draft() for _ in range(params.n)]
        words = [text.split()[: params.max_new_tokens] for text, _, _ in self.replies[: params.n]]
        self.steps = 0
        while not stop.is_set() and any(self._running(k, d, words, ends) for k, d in enumerate(drafts)):
            self.steps += 1
            for k, d in enumerate(drafts):
                if self._running(k, d, words, ends):
                    d.token_ids.append(len(d.token_ids))
                    d.text = " ".join(words[k][: len(d.token_ids)])
                    d.logprob_sum = self.replies[k][1] * len(d.token_ids)
                    d.finished = len(d.token_ids) == len(words[k]) and self.replies[k][2]
            yield Sample([Draft(d.text, list(d.token_ids), d.logprob_sum, d.finished) for d in drafts], 7)
        yield Sample(drafts, 7, done=True, stopped=stop.is_set())

    @staticmethod
    def _running(k: int, d: Draft, words: list[list[str]], ends: RowEnds) -> bool:
        return k not in ends and not d.finished and len(d.token_ids) < len(words[k])


def engine_for(replies, n=3, tokens=64, prune=True) -> ChatEngine:
    config = AppConfig(generation=GenerationConfig(num_candidates=n, max_new_tokens=tokens, prune=prune))
    return ChatEngine(config, RowsGenerator(replies), None, None, Reranker(None, 0.5))


def test_a_looping_candidate_is_pruned_and_shown_as_pruned_in_the_api_the_panel_and_the_stored_turn(tmp_path):
    engine = engine_for([(LOOP, -0.1, False), (CLEAN, -0.5, True), (CLEAN.replace("ten", "thirty"), -0.6, True)])
    engine.prune = PruneOptions(schedule=())  # the loop alone
    conversation = engine.new_conversation()
    list(engine.respond(conversation, "How do I reset my router?"))
    reply = conversation.turns[-1]
    assert reply.candidates[0].ended == "pruned at 16 tokens: loop" and len(reply.candidates[0].text.split()) == 16
    assert not reply.candidates[0].finished and reply.candidates[1].ended == reply.candidates[2].ended == ""
    assert reply.chosen == 1 and reply.ranked[-1] == 0  # ranked after the candidates that ran their course
    result = turn_result(conversation)
    assert [c["ended"] for c in result["candidates"]] == ["pruned at 16 tokens: loop", "", ""]
    assert "✂ *pruned at 16 tokens: loop*" in candidates_panel(reply)
    assert "✂ pruned at 16 tokens: loop" in candidate_info(reply, 0) and "✂" not in candidate_info(reply, 1)
    store = Store(tmp_path / "chats.db")
    cid = store.create("alice", conversation.system_prompt, "Router")
    u = store.add_turn("alice", cid, conversation.turns[0])
    store.add_turn("alice", cid, reply, u)
    stored = store.load("alice", cid).turns[1]
    assert [c.ended for c in stored.candidates] == ["pruned at 16 tokens: loop", "", ""]
    assert candidates_panel(stored) == candidates_panel(reply)
    copy = store.import_("bob", store.export("alice", cid))[0]  # an export file keeps it too
    assert [c.ended for c in store.load("bob", copy).turns[1].candidates] == ["pruned at 16 tokens: loop", "", ""]
    store.close()


def test_the_reply_being_watched_is_never_one_that_was_ended_and_the_switch_is_said():
    # The long candidate is the first to show text, so it is the draft being watched, until it is stopped.
    engine = engine_for([(LONG, -0.3, False), (CLEAN, -0.4, True), (CLEAN + " Done.", -0.5, True)])
    conversation, watched = engine.new_conversation(), []
    for _ in engine.respond(conversation, "How do I reset my router?", watched=True):
        reply = conversation.turns[-1]
        watched.append((reply.chosen, reply.candidates[reply.chosen].ended))
    reply = conversation.turns[-1]
    assert reply.candidates[0].ended == "stopped: 2 candidates had finished"
    assert watched[0] == (0, "") and all(why == "" for _, why in watched)  # never shows an ended candidate
    assert reply.meta["streamed"] == reply.chosen == 1
    assert "A draft shown while the reply was written was dropped (stopped: 2 candidates had finished)" in reply.notice


def test_the_watched_draft_a_little_longer_than_the_finished_ones_ends_and_stays_shown():
    # The first candidate shows text first and ends 4 tokens after the others: it is not swapped at the last moment.
    longer = CLEAN + " Then check the lights."
    engine = engine_for([(longer, -0.3, True), (CLEAN, -0.4, True), (CLEAN + " Done.", -0.5, True)])
    conversation = engine.new_conversation()
    list(engine.respond(conversation, "How do I reset my router?", watched=True))
    reply = conversation.turns[-1]
    assert [c.ended for c in reply.candidates] == ["", "", ""] and reply.candidates[0].finished
    assert reply.meta["streamed"] == reply.chosen == 0 and not reply.notice
    unwatched = engine.new_conversation()  # nobody reads the API's stream: the longer one is stopped as before
    list(engine.respond(unwatched, "How do I reset my router?"))
    assert unwatched.turns[-1].candidates[0].ended == "stopped: 2 candidates had finished"


def test_the_policy_ends_a_turn_early_and_off_every_candidate_runs_its_course():
    replies = [(CLEAN, -0.4, True), (CLEAN + " Done.", -0.5, True), (LONG, -0.3, False)]
    engine = engine_for(replies, tokens=64)
    conversation = engine.new_conversation()
    list(engine.respond(conversation, "How do I reset my router?"))
    reply = conversation.turns[-1]
    assert reply.candidates[2].ended == "stopped: 2 candidates had finished" and reply.notice is None
    assert len(reply.candidates[2].text.split()) == 21 and engine.generator.steps == 21  # not 60: LONG's length
    assert reply.chosen in (0, 1)
    off = engine_for(replies, tokens=64, prune=False)
    conversation = off.new_conversation()
    list(off.respond(conversation, "How do I reset my router?"))
    assert off.generator.steps == 60 and not any(c.ended for c in conversation.turns[-1].candidates)


def test_stop_still_ends_a_pruned_turn_at_once():
    engine = engine_for([(LOOP, -0.1, False), (LONG, -0.5, False), (LONG, -0.6, False)], tokens=64)
    conversation, stop = engine.new_conversation(), threading.Event()
    for _ in engine.respond(conversation, "How do I reset my router?", stop=stop):
        if len(conversation.turns[-1].candidates[1].text.split()) == 20:
            stop.set()
    reply = conversation.turns[-1]
    assert "Stopped before the replies were complete." in reply.notice and engine.generator.steps == 20
    assert reply.candidates[0].ended == "pruned at 16 tokens: loop" and reply.chosen != 0


# --- the real engines end one row alone -------------------------------------------------------------------

STORY = [{"role": "user", "content": "Write a long story about a dragon."}]


def end_row_zero(generator, params) -> tuple[list[Draft], bool]:
    """Stream `params` with row 0 ended after its 3rd token; (the last drafts, whether the stream said stopped)."""
    ends = RowEnds()
    for sample in generator.stream(STORY, params, threading.Event(), ends=ends):
        if len(sample.drafts[0].token_ids) >= 3:
            ends.end({0: "pruned at 3 tokens: test"})
    return sample.drafts, sample.stopped


class Recording:
    """llama.cpp's server, recording the candidates of each request."""

    def __init__(self, server) -> None:
        self.server, self.requests = server, []

    def handle_completions(self, body: dict, callback):
        self.requests.append((body["n"], body["seed"]))
        return self.server.handle_completions(body, callback)


def test_llamacpp_ends_one_candidate_while_the_others_go_on(cache_dir):
    from interactive_format.llm.llamacpp import LlamaCppGenerator, LlamaCppOptions

    options = LlamaCppOptions(slots=4, ignore_eos=True, split=True)  # a request per candidate, then (below) one
    llama = LlamaCppGenerator.from_spec("embedded:smollm2-135m", cache_dir, options)
    server = llama.server
    llama.server = Recording(server)
    try:
        drafts, stopped = end_row_zero(llama, SamplingParams(n=3, temperature=0.8, max_new_tokens=40, seed=4))
        assert not stopped and len(drafts[0].token_ids) == 3 and [len(d.token_ids) for d in drafts[1:]] == [40, 40]
        assert drafts[0].text and not drafts[0].finished
        assert [n for n, _ in llama.server.requests] == [1, 1, 1]  # a request per candidate, so each can end alone
        llama.options = dataclasses.replace(llama.options, split=False)  # one request: an ended row is left as it was
        drafts, stopped = end_row_zero(llama, SamplingParams(n=3, temperature=0.8, max_new_tokens=40, seed=4))
        assert not stopped and len(drafts[0].token_ids) == 3 and [len(d.token_ids) for d in drafts[1:]] == [40, 40]
        assert [n for n, _ in llama.server.requests[3:]] == [3]
        ends, started = RowEnds(), time.monotonic()  # every row ended: the request is cancelled, not run to 400
        for sample in llama.stream(STORY, SamplingParams(n=3, max_new_tokens=400, seed=6), threading.Event(), ends):
            ends.end({k: "test" for k, d in enumerate(sample.drafts) if len(d.token_ids) >= 3})
        assert sample.done and not sample.stopped and [len(d.token_ids) for d in sample.drafts] == [3, 3, 3]
        assert time.monotonic() - started < 10
        llama.server, llama.options = server, dataclasses.replace(llama.options, split=True)
        stop, started = threading.Event(), time.monotonic()  # Stop still ends every row at once
        samples = []
        for sample in llama.stream(STORY, SamplingParams(n=3, max_new_tokens=400, seed=5), stop, ends=RowEnds()):
            samples.append(sample)
            if len(samples) == 6:
                stop.set()
        assert samples[-1].done and samples[-1].stopped and time.monotonic() - started < 10
        assert max(len(d.token_ids) for d in samples[-1].drafts) <= 8
    finally:
        llama.close()


def test_transformers_ends_one_candidate_while_the_others_go_on(generator):
    drafts, stopped = end_row_zero(generator, SamplingParams(n=3, temperature=0.8, max_new_tokens=30, seed=4))
    assert not stopped and len(drafts[0].token_ids) == 3 and not drafts[0].finished
    assert all(len(d.token_ids) > 3 for d in drafts[1:])

