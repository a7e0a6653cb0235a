"""An independent judge: a larger chat model compares two replies to the same context, in both orders.

The judge (by default the embedded Qwen2.5-Coder-1.5B through llama.cpp; the app's default generator
is the 0.5B of the same family) reads the conversation and replies A and B and answers one letter; its
preference is read from the log-probs of that answer token, P(A) / (P(A) + P(B)), and averaged over
both orders to cancel its position bias. It sees the texts only: never D's scores, never J, and it is
never used in training (this module imports neither the discriminator nor train).

In `python -m interactive_format.evaluate --pair-judge embedded:qwen2.5-coder-1.5b` it judges best-of-N
against the single sample; bench/rerank/measure.py --judge checks it on pairs with a known defect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

DEFAULT_JUDGE = "embedded:qwen2.5-coder-1.5b"
SYSTEM = (
    "You judge chat replies. A good reply answers the user's last message in the user's language, stays on "
    "topic, is helpful and complete, and does not repeat itself or the user's words."
)
QUESTION = "Which reply is better for the user? Answer A or B."
# Worked examples before the pair (the 1.5B, asked zero-shot, preferred position A or B whatever the
# replies said). Written for the judge, in both languages and both answer positions; none is a reply of
# the measured prompts. They share one cached prompt prefix, so they cost their prefill once.
SHOTS = (
    (
        "user: 周末有什么适合在家做的事情？",
        "周末在家可以做的事情有：看电影、看电影、看电影、看电影、看电影、看电影、看电影、看电影、看电影",
        "可以在家烤蛋糕、看一部老电影，或者整理房间。约朋友视频聊天也不错。",
        "B",
    ),
    (
        "user: How do I keep my basil plant alive?",
        "Give it plenty of sunlight, water it when the top of the soil is dry, and pinch off the flowers so it "
        "keeps growing leaves.",
        "保持充足的阳光，土壤表面干了再浇水，并摘掉花蕾。",
        "A",
    ),
    (
        "user: 从上海到苏州怎么走最方便？",
        "坐高铁最方便，从上海虹桥站出发大约三十分钟就到苏州站，车次很多，",
        "坐高铁最方便：从上海虹桥站到苏州站大约三十分钟，车次很多，不用提前太久买票。",
        "B",
    ),
    (
        "user: Can you suggest a name for my new cat?",
        "How about Miso, Pepper or Luna? Miso suits a calm cat, Pepper a lively one.",
        "Cats are small carnivorous mammals that have lived with humans for thousands of years.",
        "A",
    ),
)
MAX_REPLY_CHARS = 700  # what the judge reads of each reply (a 128-token reply is ~500 characters)


@dataclass(frozen=True)
class Verdict:
    """P(the first reply is better) in each order and their mean (0.5: no preference)."""

    a_first: float  # P(A) when the first reply is shown as A
    b_first: float  # P(B) when the first reply is shown as B (the second one shown as A)

    @property
    def p(self) -> float:
        return (self.a_first + self.b_first) / 2


class PairJudge:
    """Which of two replies a user would prefer, from a chat model's answer-token log-probs (both orders)."""

    def __init__(self, generator, name: str = DEFAULT_JUDGE) -> None:
        self.generator, self.name = generator, name  # a LlamaCppGenerator: its server and chat template

    @classmethod
    def from_spec(cls, spec: str = DEFAULT_JUDGE, cache_dir: Path | None = None, threads: int = 1) -> "PairJudge":
        """The judge model through llama.cpp (2 slots: the two orders of a pair share the prompt's prefix)."""
        from ..config import default_cache_dir
        from ..llm.llamacpp import LlamaCppGenerator, LlamaCppOptions

        options = LlamaCppOptions(threads=threads, batch_threads=threads, slots=2, context=8192)
        return cls(LlamaCppGenerator.from_spec(spec, cache_dir or default_cache_dir(), options), spec)

    def prompt(self, context: str, first: str, second: str) -> str:
        """The judge's prompt (chat template applied): the worked examples, then `first` as A and `second` as B."""
        messages = [{"role": "system", "content": SYSTEM}]
        for shot_context, a, b, answer in SHOTS:
            messages += [
                {"role": "user", "content": _ask(shot_context, a, b)},
                {"role": "assistant", "content": answer},
            ]
        messages.append({"role": "user", "content": _ask(context, _clip(first), _clip(second))})
        return self.generator.prompt_text(messages)

    def letter_probs(self, prompt: str) -> tuple[float, float]:
        """(P(A), P(B)) of the judge's first answer token, from its top-20 log-probs (greedy, 1 token)."""
        body = dict(prompt=prompt, max_tokens=1, temperature=0.0, logprobs=20, stream=False, cache_prompt=True)
        chunks: list[dict] = []
        self.generator.server.handle_completions(body, lambda chunk: chunks.append(chunk) or False)
        if not chunks or "choices" not in chunks[-1]:
            raise RuntimeError(f"The judge model returned no answer: {str(chunks)[:200]}")
        content = (chunks[-1]["choices"][0].get("logprobs") or {}).get("content") or []
        top = content[0].get("top_logprobs", []) if content else []
        p = {"A": 0.0, "B": 0.0}
        for t in top:
            letter = t["token"].strip().strip("*\"'(").upper()[:1]
            if letter in p and len(t["token"].strip().strip("*\"'(")) == 1:
                p[letter] += math.exp(t["logprob"])
        return p["A"], p["B"]

    def compare(self, context: str, first: str, second: str) -> Verdict:
        """The judge's verdict on `first` against `second`, both replies to `context` (shown in both orders)."""
        a1, b1 = self.letter_probs(self.prompt(context, first, second))
        a2, b2 = self.letter_probs(self.prompt(context, second, first))
        return Verdict(_share(a1, b1), _share(b2, a2))

    def prefer(self, context: str, first: str, second: str) -> float:
        """P(`first` is the better reply), 0.5 when the judge has no preference."""
        return self.compare(context, first, second).p

    def close(self) -> None:
        self.generator.close()


def _ask(context: str, a: str, b: str) -> str:
    return f"Conversation:\n{context.strip()}\n\nReply A:\n{a}\n\nReply B:\n{b}\n\n{QUESTION}"


def _share(x: float, y: float) -> float:
    return x / (x + y) if x + y > 0 else 0.5


def _clip(text: str) -> str:
    text = text.strip() or "(empty reply)"
    return text if len(text) <= MAX_REPLY_CHARS else text[:MAX_REPLY_CHARS] + " …"


def best_of_n_rates(judge, contexts: list[str], samples: list[list[str]], picks: dict[int, list[int]]) -> dict:
    """Best-of-N (picks[n][k]: the index into samples[k]) against sample 0, as judged pairwise; ties half.

    Identical texts are a tie without asking the judge. Returns {n: {"rate", "low", "high", "n", "wins", "ties"}}.
    """
    out = {}
    for n, chosen in picks.items():
        results = []
        for context, texts, c in zip(contexts, samples, chosen):
            same = texts[c].strip() == texts[0].strip()
            results.append(0.5 if same else outcome(judge.prefer(context, texts[c], texts[0])))
        k = len(results)
        mean = sum(results) / k
        half = 1.96 * math.sqrt(sum((r - mean) ** 2 for r in results) / max(k - 1, 1) / k)
        out[n] = {"rate": mean, "low": mean - half, "high": mean + half, "n": k,
                  "wins": sum(r == 1.0 for r in results), "ties": sum(r == 0.5 for r in results)}  # fmt: skip
    return out


def outcome(p: float, margin: float = 0.0) -> float:
    """A verdict as a win (1), tie (0.5) or loss (0) for the first reply; |p − 0.5| ≤ margin is a tie."""
    return 0.5 if abs(p - 0.5) <= margin else float(p > 0.5)
