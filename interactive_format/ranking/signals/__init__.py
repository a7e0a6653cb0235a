"""Ranking signals: each one scores the N candidates of a turn, higher = better; ranking.py weighs them.

A signal is one module of this package with a `SIGNAL` object and one line in `MODULES`: its `name`
(the key of its weight in assets/ranking.json and of its value in a candidate's stored `scores`),
its `cost` ("free": arithmetic on what sampling gave; "cheap": a small encoder, tens of ms per turn;
"model": another language model reads every candidate, seconds per turn) and
`score(context, candidates) -> list[float] | None`: one number per candidate (NaN where a candidate
has none), or None when the signal cannot apply here (no discriminator loaded, no verifier, one
candidate). `alone` says whether a candidate's score depends on itself only (not on the others), so
an evaluation may compute it once per candidate and keep it. Signals never see labels.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ...dialogue import Candidate

COSTS = ("free", "cheap", "model")
MODULES = ("defects", "j", "d", "consensus", "brevity", "finished", "verifier")  # one line per signal


@dataclass
class Models:
    """What signals may use; None where it is not loaded."""

    discriminator: Any = None  # discriminator.Discriminator / EmbeddingDiscriminator
    verifier: Any = None  # verifier.Verifier: another chat model's likelihood
    sentence_encoder: Any = None  # encoder.SentenceEncoder; default: the discriminator's own

    @property
    def encoder(self):
        """The sentence encoder: the one given, else the one under an embedding discriminator."""
        return self.sentence_encoder or getattr(self.discriminator, "encoder", None)


@dataclass(frozen=True)
class Context:
    """What a signal knows of the turn besides the candidates."""

    text: str  # the dialogue as dialogue.context_text writes it ("user: …" lines): what D and defects read
    messages: tuple[dict, ...] = ()  # the prompt as chat messages, system first (); () when only text is known
    models: Models = field(default_factory=Models)


class Signal(Protocol):
    name: str  # unique; the key of its weight and its stored value
    cost: str  # one of COSTS
    alone: bool  # a candidate's score depends on that candidate only

    def score(self, context: Context, candidates: list[Candidate]) -> list[float] | None: ...


def load(modules: tuple[str, ...] = MODULES) -> dict[str, Signal]:
    """The signals of `modules` (this package's module names, or dotted paths of others) by name.

    ValueError for an unknown cost or a name used twice."""
    found: dict[str, Signal] = {}
    for module in modules:
        signal = importlib.import_module(module if "." in module else f"{__name__}.{module}").SIGNAL
        if signal.cost not in COSTS or signal.name in found:
            raise ValueError(f"signal {signal.name!r} ({module}.py): cost must be one of {COSTS}, name unique")
        found[signal.name] = signal
    return found


SIGNALS: dict[str, Signal] = load()
