"""The ranking: a weighted combination of ranking signals (signals/), and the reranker that applies it.

score(candidate) = Σ_s w_s · x_s over the ranking's signals. Two kinds ship:

- the fitted ranking (assets/ranking.json, `python -m interactive_format.evaluate labels --write-ranking`):
  the fewest defects first (`first = ("defects",)`), then the other signals, each standardised over the
  turn's candidates (`scale = "turn"`: minus their mean, over their standard deviation, so a weight means
  the same at every N and for every prompt), weights fitted on the reply-quality labels by pairwise
  logistic regression (`fit`);
- the seed, λ·D + (1−λ)·J: weights {d: λ, j: 1−λ} on the raw values (`scale = "raw"`; a signal that cannot
  apply, D when none is loaded or J from a server without log-probs, is left out and the others' weights
  renormalised, so it is J alone without D and D alone without J), after the fewest defects
  (`first = ("defects",)`: those signals are compared before the score).

An empty candidate is always last. The reranker fills in each candidate's defects (shown and stored),
its D and every computed signal's value (`Candidate.scores`) and its combined score.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import defects
from ..config import ASSETS
from ..dialogue import Candidate, context_text
from ..errors import ModelLoadError
from .signals import SIGNALS, Context, Models

ASSET = ASSETS / "ranking.json"
SCALES = ("turn", "raw")


@dataclass(frozen=True)
class Ranking:
    """Which signals count and by how much; see the module docstring."""

    weights: dict[str, float]  # signal name -> weight (signals.SIGNALS names)
    scale: str = "turn"  # "turn": each signal standardised over the turn's candidates; "raw": as scored
    first: tuple[str, ...] = ()  # signals compared before the weighted score, in order (higher first)
    meta: dict = field(default_factory=dict, compare=False)  # how it was made (fit, data, cross-validation)

    def __post_init__(self) -> None:
        unknown = [name for name in (*self.weights, *self.first) if name not in SIGNALS]
        if unknown or self.scale not in SCALES:
            problem = f"unknown signal(s) {unknown}" if unknown else f"scale must be one of {SCALES}"
            raise ValueError(f"ranking: {problem} (signals: {', '.join(SIGNALS)})")

    @property
    def signals(self) -> tuple[str, ...]:
        """Every signal the ranking reads: the `first` ones, then the weighted ones."""
        return tuple(dict.fromkeys((*self.first, *self.weights)))

    def score(self, values: dict[str, list[float] | None], usable: list[bool]) -> list[float]:
        """The combined score of each candidate (−inf where not `usable`: empty) from the signals' values."""
        if self.scale == "raw":
            return self._raw(values, usable)
        total = np.zeros(len(usable))
        for name, w in self.weights.items():
            if (x := values.get(name)) is not None:
                total += w * standardise(x, usable)
        return [float(s) if ok else -math.inf for s, ok in zip(total, usable)]

    def _raw(self, values: dict[str, list[float] | None], usable: list[bool]) -> list[float]:
        """Σ w·x over the signals a candidate has a value for, over Σ |w| of those (the seed: J alone without D,
        D alone when J is unavailable); their plain mean where those weights are all 0 (λ = 0 without J)."""
        total, weight, plain, known = (np.zeros(len(usable)) for _ in range(4))
        for name, w in self.weights.items():
            if (x := values.get(name)) is None:
                continue
            a = np.asarray(x, float)
            ok = np.isfinite(a)
            total += np.where(ok, w * a, 0.0)
            weight += np.where(ok, abs(w), 0.0)
            plain += np.where(ok, a, 0.0)
            known += ok
        weighted = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
        score = np.where(weight > 0, weighted, np.divide(plain, known, out=np.zeros_like(plain), where=known > 0))
        return [float(s) if ok else -math.inf for s, ok in zip(score, usable)]

    def order(self, values: dict[str, list[float] | None], usable: list[bool]) -> list[int]:
        """Candidate indices, best first: the `first` signals, then the score; ties keep sample order."""
        scores = self.score(values, usable)
        keys = [[_key(values.get(name), i) for name in self.first] for i in range(len(usable))]
        return sorted(range(len(usable)), key=lambda i: (not usable[i], [-k for k in keys[i]], -scores[i]))

    def to_json(self) -> dict:
        return {"weights": self.weights, "scale": self.scale, "first": list(self.first), "meta": self.meta}


def seed(lam: float) -> Ranking:
    """The seed ranking: the fewest defects, then λ·D + (1−λ)·J."""
    return Ranking({"d": lam, "j": 1 - lam}, scale="raw", first=("defects",))


def combine(d: float | None, j: float, lam: float) -> float:
    """The reranking score: λ·D + (1−λ)·J, J alone without D, D alone when J is unavailable (NaN).

    J is NaN for a server that sends no log-probs; without D too, every candidate scores 0 (server order).
    """
    if math.isnan(j):
        return 0.0 if d is None else d
    return j if d is None else lam * d + (1 - lam) * j


def standardise(x: list[float], usable: list[bool]) -> np.ndarray:
    """`x` minus its mean over the usable candidates, over their standard deviation; 0 where missing or constant."""
    a = np.asarray(x, float)
    ok = np.asarray(usable) & np.isfinite(a)
    out = np.zeros(len(a))
    if ok.sum() >= 2 and (sd := a[ok].std()) > 1e-9:
        out[ok] = (a[ok] - a[ok].mean()) / sd
    return out


def _key(x: list[float] | None, i: int) -> float:
    return 0.0 if x is None or not math.isfinite(x[i]) else x[i]


def load_ranking(path: str | Path | None = ASSET) -> Ranking | None:
    """The ranking saved in `path`; None for "off"/"" (the seed λ·D + (1−λ)·J); ModelLoadError if unreadable."""
    if not path or str(path).lower() == "off":
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Ranking(
            {str(k): float(v) for k, v in data["weights"].items()},
            data.get("scale", "turn"),
            tuple(data.get("first", ())),
            data.get("meta", {}),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelLoadError(
            f"Could not read the ranking in {path} ({e}). Write one with `python -m interactive_format.evaluate "
            "labels --write-ranking`, or pass --ranking off to rank by λ·D + (1−λ)·J."
        ) from e


def save_ranking(ranking: Ranking, path: str | Path) -> None:
    Path(path).write_text(json.dumps(ranking.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def fit(turns: list[tuple[np.ndarray, list[int]]], l2: float = 1.0) -> np.ndarray:
    """Weights w (one per feature column) that order each turn's candidates by label: pairwise logistic regression.

    `turns`: (features (candidates, signals) already standardised per turn, labels). Every pair of one turn
    with different labels is one example, x_i − x_j with target "i is better"; no intercept (a constant
    shift never changes an order); an L2 penalty `l2` on w keeps weights of weak, correlated signals small.
    Minimised by Newton's method (a convex loss of a few weights: it converges in a few steps).
    """
    if not turns:
        return np.zeros(0)
    diffs = [
        (x[i] - x[j]) * np.sign(y[i] - y[j])
        for x, y in turns
        for i in range(len(y))
        for j in range(i + 1, len(y))
        if y[i] != y[j]
    ]
    width = turns[0][0].shape[1]
    a, w = np.array(diffs).reshape(-1, width), np.zeros(width)
    for _ in range(25):
        p = 1 / (1 + np.exp(-(a @ w)))
        gradient = -(a * (1 - p)[:, None]).sum(0) + l2 * w
        hessian = (a * (p * (1 - p))[:, None]).T @ a + l2 * np.eye(width)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


@dataclass
class Reranker:
    """Ranks a turn's candidates: by a fitted `ranking` (assets/ranking.json) or, without one, the seed —
    the fewest defects, then λ·D + (1−λ)·J (J alone when there is no D)."""

    discriminator: object | None = None  # discriminator.Discriminator / EmbeddingDiscriminator
    lam: float = 0.5
    defects_first: bool = True  # the seed only; False: by λ·D + (1−λ)·J alone (the evaluation's baselines)
    ranking: Ranking | None = None  # None: the seed with λ
    verifier: object | None = None  # verifier.Verifier, for a ranking that weighs "verifier"

    @property
    def uses_discriminator(self) -> bool:
        return self.discriminator is not None and "d" in self.ranking_for(self.lam).signals

    @property
    def uses_lam(self) -> bool:
        """λ applies (the seed ranking); a fitted ranking has its own weights."""
        return self.ranking is None and self.discriminator is not None

    @property
    def models(self) -> Models:
        return Models(self.discriminator, self.verifier)

    @property
    def note(self) -> str:
        """The ranking in one sentence, for the page."""
        if self.ranking is not None:
            weights = sorted(self.ranking.weights.items(), key=lambda kv: -abs(kv[1]))
            fitted = (
                "a weighted sum of signals fitted on reply-quality labels ("
                + ", ".join(f"{name} {w:+.2f}" for name, w in weights)
                + "; each standardised over the turn's candidates)"
            )
            if "defects" in self.ranking.first:
                first = "Replies with the fewest defects (loops, wrong language, cut off, echoes) come first, then by"
                return f"{first} {fitted}."
            return f"Replies are ranked by {fitted}."
        if self.discriminator is not None:
            return (
                "Replies with the fewest defects (loops, wrong language, cut off, echoes) come first, then by "
                f"λ·D + (1−λ)·J with λ = {self.lam:g}: "
                "D is the trained discriminator's P(human), J the model's mean token log-probability."
            )
        return (
            "Replies with the fewest defects (loops, wrong language, cut off, echoes) come first, then by "
            "likelihood only (J): no trained discriminator is installed yet."
        )

    def ranking_for(self, lam: float | None) -> Ranking:
        """The fitted ranking, or the seed with λ (`lam`, else the reranker's own)."""
        if self.ranking is not None:
            return self.ranking
        base = seed(self.lam if lam is None else lam)
        return base if self.defects_first else Ranking(base.weights, base.scale)

    def rank(self, context: str | list[dict], candidates: list[Candidate], lam: float | None = None) -> list[int]:
        """Fill in defects, d, scores and score on each candidate; return indices best first.

        `context`: the dialogue as context_text writes it, or its chat messages (a verifier needs them).
        """
        messages = tuple(context) if isinstance(context, list) else ()
        ctx = Context(context_text(list(messages)) if messages else context, messages, self.models)
        ranking = self.ranking_for(lam)
        values = {name: SIGNALS[name].score(ctx, candidates) for name in ranking.signals}
        usable = [bool(c.text.strip()) for c in candidates]
        for c, score in zip(candidates, ranking.score(values, usable)):
            c.score = score
        for i, c in enumerate(candidates):
            c.defects = [d.name for d in defects.find(c.text, ctx.text, c.finished)]
            c.scores = {name: float(x[i]) for name, x in values.items() if x is not None and math.isfinite(x[i])}
            if values.get("d") is not None and usable[i]:
                c.d = values["d"][i]
        return ranking.order(values, usable)
