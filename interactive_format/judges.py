"""Judging replies offline, shared by training (choosing λ) and evaluation (the report).

`SimilarityJudge` is the judge that is NOT D (cosine similarity to the human's real reply under
the frozen base encoder); `best_of` picks by the app's score; `win_rate` counts one side's wins.
"""

from __future__ import annotations

import math

import torch

from .discriminator import combine


class SimilarityJudge:
    """Sentence embeddings of the frozen base encoder (mean pooling, L2-normalised)."""

    def __init__(self, encoder, tokenizer, max_length: int = 128) -> None:
        self.encoder, self.tokenizer, self.max_length = encoder.eval(), tokenizer, max_length
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_spec(cls, spec: str = "embedded:minilm", device: str = "cpu") -> SimilarityJudge:
        """Loads the encoder's published weights afresh: never D's fine-tuned layers."""
        from transformers import AutoModel, AutoTokenizer

        from .models import pretrained_source

        source = pretrained_source(spec, "encoder")
        return cls(AutoModel.from_pretrained(source).to(device), AutoTokenizer.from_pretrained(source))

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        batch = batch.to(next(self.encoder.parameters()).device)
        states = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    def similarity(self, texts: list[str], reference: str) -> list[float]:
        """Cosine similarity of each text to the reference (empty text: -1, the worst)."""
        emb = self.embed([reference] + [t or " " for t in texts])
        sims = (emb[1:] @ emb[0]).tolist()
        return [s if t.strip() else -1.0 for s, t in zip(sims, texts)]


def best_of(d: list[float], j: list[float], lam: float, n: int) -> int:
    """Index of the best of the first n candidates under the app's score (empty J=-99 loses)."""
    return max(range(min(n, len(d))), key=lambda i: combine(d[i], j[i], lam))


def win_rate(a: list[float], b: list[float]) -> dict:
    """Share of pairs where a beats b (ties half), with a 95 % normal interval."""
    outcomes = [1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(a, b)]
    n = len(outcomes)
    mean = sum(outcomes) / n
    var = sum((o - mean) ** 2 for o in outcomes) / max(n - 1, 1)
    half = 1.96 * math.sqrt(var / n)
    return {
        "rate": mean,
        "low": mean - half,
        "high": mean + half,
        "n": n,
        "wins": sum(o == 1.0 for o in outcomes),
        "ties": sum(o == 0.5 for o in outcomes),
    }
