"""A fake generator and engine: the app's conversation logic without loading any model."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from interactive_format.engine.chat import ChatEngine
from interactive_format.config import AppConfig, GenerationConfig
from interactive_format.ranking.ranking import Reranker
from interactive_format.llm.sampling import Draft, Sample, SamplingParams


class FakeGenerator:
    """Replies "<batch>.<k> re: <last user message>", streamed word by word; J falls with k."""

    name = "fake"

    def __init__(self) -> None:
        self.batches = itertools.count(1)
        self.prompts: list[list[dict]] = []  # every prompt it was asked for

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"].split()) + 2 for m in messages)

    def stream(self, messages: list[dict], params: SamplingParams, stop: threading.Event) -> Iterator[Sample]:
        self.prompts.append(messages)
        batch = next(self.batches)
        words = [f"{batch}.{k} re: {messages[-1]['content'][:40]}".split() for k in range(params.n)]
        drafts = [Draft() for _ in range(params.n)]
        for step in range(max(map(len, words))):
            if stop.is_set():
                break
            for k, draft in enumerate(drafts):
                if step < len(words[k]):
                    draft.text = " ".join(words[k][: step + 1])
                    draft.token_ids.append(step)
                    draft.logprob_sum = -(1.0 + k / 10) * len(draft.token_ids)
            yield Sample([Draft(d.text, list(d.token_ids), d.logprob_sum) for d in drafts], batch)
        for d in drafts:
            d.finished = not stop.is_set()
        yield Sample(drafts, batch, done=True, stopped=stop.is_set())


class FixedD:
    """A discriminator whose P(human) of each reply is given."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def score(self, context: str, replies: list[str]) -> list[float]:
        return [self.scores[r] for r in replies]


def fake_engine() -> ChatEngine:
    """An engine over FakeGenerator, ranking by J alone (no pictures or voice)."""
    config = AppConfig(generation=GenerationConfig(num_candidates=3, max_new_tokens=16))
    return ChatEngine(config, FakeGenerator(), None, None, Reranker(None, 0.5))
