"""Judging replies offline, shared by training (choosing λ) and evaluation (the report).

`SimilarityJudge` is the judge that is NOT D (cosine similarity to the human's real reply under
the frozen base encoder); `best_of` picks what the app's `Reranker` would show; `win_rate` counts one side's wins.
"""

from __future__ import annotations

import math
import random

import torch

from .chitchat import other_replies
from ..dialogue import Candidate
from ..ranking.ranking import Reranker


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

        from ..models.hub import pretrained_source

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


def best_of(context: str, replies: list, d: list[float], lam: float, n: int) -> int:
    """Index of the reply the app would show among the first n: its `Reranker` (fewest defects, then
    λ·D + (1−λ)·J), given D's scores already computed (`replies` have text, j and finished)."""
    candidates = [Candidate(text=r.text, j=r.j, d=score, finished=r.finished) for r, score in zip(replies[:n], d)]
    return Reranker(None, lam).rank(context, candidates)[0]


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


@torch.inference_mode()
def d_scores(d, contexts: list[str], replies: list[str], batch_size: int = 64) -> list[float]:
    """P(human) for many (context, reply) pairs."""
    d.eval()
    out: list[float] = []
    for i in range(0, len(replies), batch_size):
        out += torch.sigmoid(d.logits(contexts[i : i + batch_size], replies[i : i + batch_size])).float().tolist()
    return out


def roc_auc(positives: list[float], negatives: list[float]) -> float:
    """P(a random positive scores above a random negative), ties as half (Mann–Whitney U)."""
    if not positives or not negatives:
        return float("nan")
    scores = torch.tensor(positives + negatives, dtype=torch.float64)
    ranks = _average_ranks(scores)
    n_pos, n_neg = len(positives), len(negatives)
    u = ranks[:n_pos].sum().item() - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(x)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(1, len(x) + 1, dtype=x.dtype)
    for value in torch.unique(x):  # ties share their mean rank
        tied = x == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def d_metrics(d, examples: list, fakes: dict, direction: float, seed: int, distractors: int = 9) -> dict:
    """ROC-AUC, accuracy, AdverSuc, hits@1 and the length-only AUC on held-out examples."""
    rng = random.Random(seed)
    ctx = [e.context_text for e in examples]
    real = d_scores(d, ctx, [e.reply for e in examples])
    fake_text = [fakes[e.id][0].text for e in examples]
    fake = d_scores(d, ctx, fake_text)
    others = [other_replies(e, examples, distractors, rng) for e in examples]
    flat = d_scores(d, [c for c, o in zip(ctx, others) for _ in o], [r for o in others for r in o])
    hits = sum(real[i] > max(flat[i * distractors : (i + 1) * distractors]) for i in range(len(examples)))
    length = roc_auc([direction * len(e.reply) for e in examples], [direction * len(t) for t in fake_text])
    return {
        "auc": roc_auc(real, fake),
        "accuracy": (sum(s > 0.5 for s in real) + sum(s <= 0.5 for s in fake)) / (2 * len(examples)),
        "adversuc": sum(s > 0.5 for s in fake) / len(fake),
        "hits@1": hits / len(examples),
        "length_auc": length,
        "mean_d_real": sum(real) / len(real),
        "mean_d_fake": sum(fake) / len(fake),
    }
