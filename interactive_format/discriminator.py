"""The discriminator D(context, reply) -> P(reply is human), and the reranker that uses it.

D is a cross-encoder: the text encoder (MiniLM by default) reads "context [SEP] reply",
its token states are mean-pooled and a linear head gives one logit. Only what training
changes (the head and any unfrozen encoder layers) is saved; the encoder's base weights
come from its spec. score = λ·D + (1−λ)·J with J the generator's mean token log-prob; the
reranker shows the candidate with the fewest defects (defects.py: loop, wrong language, cut
off, echo, empty) first and breaks ties by that score.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import defects
from .dialogue import Candidate
from .errors import ModelLoadError

log = logging.getLogger(__name__)

WEIGHTS = "discriminator.safetensors"
META = "discriminator.json"


class Discriminator(nn.Module):
    """Cross-encoder + linear head over mean-pooled token states."""

    def __init__(self, encoder, tokenizer, encoder_spec: str, max_length: int = 256) -> None:
        super().__init__()
        self.encoder, self.tokenizer = encoder, tokenizer
        self.encoder_spec, self.max_length = encoder_spec, max_length
        self.head = nn.Linear(encoder.config.hidden_size, 1)
        self.tokenizer.truncation_side = "left"  # keep the latest context, cut the oldest

    @classmethod
    def from_encoder(cls, encoder_spec: str, device: str = "cpu", max_length: int = 256) -> "Discriminator":
        """A fresh D (untrained head) on the encoder named by `encoder_spec`."""
        from transformers import AutoModel, AutoTokenizer

        from .models import hub_error, pretrained_source

        source = pretrained_source(encoder_spec, "encoder")
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            encoder = AutoModel.from_pretrained(source)
        except (OSError, ValueError) as e:
            raise hub_error(encoder_spec, e, example="embedded:minilm") from e
        return cls(encoder, tokenizer, encoder_spec, max_length).to(device)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def logits(self, contexts: list[str], replies: list[str]) -> torch.Tensor:
        """Logits of shape (batch,) for (context, reply) pairs."""
        batch = self.tokenizer(
            contexts, replies, truncation="longest_first", max_length=self.max_length, padding=True, return_tensors="pt"
        ).to(self.device)
        states = self.encoder(**batch).last_hidden_state  # (batch, seq, hidden)
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(pooled).squeeze(-1)

    @torch.inference_mode()
    def score(self, context: str, replies: list[str]) -> list[float]:
        """P(human) for each reply to the same context, in one batch."""
        if not replies:
            return []
        return torch.sigmoid(self.logits([context] * len(replies), replies)).float().tolist()

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The parameters training may change: the head and encoder params that require grad."""
        state = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        for name, p in self.encoder.named_parameters():
            if p.requires_grad:
                state[f"encoder.{name}"] = p.detach()
        return state

    def save(self, directory: str | Path, **meta) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous().cpu() for k, v in self.trained_state().items()}, directory / WEIGHTS)
        info = {"encoder": self.encoder_spec, "max_length": self.max_length, **meta}
        (directory / META).write_text(json.dumps(info, indent=2))

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu", encoder: str = "") -> "Discriminator":
        """Load a saved D (on `encoder` if given, else the encoder it was trained on); ModelLoadError if unreadable."""
        from safetensors.torch import load_file

        directory = Path(directory)
        try:
            info = json.loads((directory / META).read_text())
            state = load_file(directory / WEIGHTS)
        except Exception as e:  # OSError, JSON or safetensors errors: all mean "unreadable"
            raise ModelLoadError(f"Could not read the discriminator in {directory}: {e}") from e
        d = cls.from_encoder(encoder or info["encoder"], device, info.get("max_length", 256))
        result = d.load_state_dict(state, strict=False)
        unexpected = list(result.unexpected_keys)
        if unexpected or any(k.startswith("head.") for k in result.missing_keys):
            raise ModelLoadError(f"The discriminator in {directory} does not match its encoder ({unexpected[:3]}).")
        for name, p in d.encoder.named_parameters():  # what was trained stays trainable; the rest is the base
            p.requires_grad_(f"encoder.{name}" in state)
        d.meta = info
        return d.eval()


def load_discriminator(directory: str | Path | None, device: str = "cpu", encoder: str = "") -> Discriminator | None:
    """The trained D in `directory`; None for "off"/"" (ranking then uses likelihood only).

    A directory that does not hold a D is an error: a typo must not silently switch D off.
    """
    if not directory or str(directory).lower() == "off":
        return None
    if not (Path(directory) / WEIGHTS).exists():
        raise ModelLoadError(f"No trained discriminator in {directory} (no {WEIGHTS}). Train one with "
                             "`python -m interactive_format.train`, or pass --discriminator off to rank by likelihood only.")
    return Discriminator.load(directory, device, encoder)


@dataclass
class Reranker:
    """Orders candidates by their number of defects, then by λ·D + (1−λ)·J (J alone when there is no D)."""

    discriminator: Discriminator | None = None
    lam: float = 0.5

    @property
    def uses_discriminator(self) -> bool:
        return self.discriminator is not None

    @property
    def note(self) -> str:
        """The ranking in one sentence, for the page."""
        if self.uses_discriminator:
            return (
                "Replies with the fewest defects (loops, wrong language, cut off, echoes) come first, then by "
                f"λ·D + (1−λ)·J with λ = {self.lam:g}: "
                "D is the trained discriminator's P(human), J the model's mean token log-probability."
            )
        return (
            "Replies with the fewest defects (loops, wrong language, cut off, echoes) come first, then by "
            "likelihood only (J): no trained discriminator is installed yet."
        )

    def rank(self, context: str, candidates: list[Candidate], lam: float | None = None) -> list[int]:
        """Fill in d, score and defects on each candidate; return indices best first (fewest defects, then score)."""
        lam = self.lam if lam is None else lam
        nonempty = [i for i, c in enumerate(candidates) if c.text.strip()]
        if self.discriminator is not None and nonempty:
            scores = self.discriminator.score(context, [candidates[i].text for i in nonempty])
            for i, d in zip(nonempty, scores):
                candidates[i].d = d
        for i, c in enumerate(candidates):
            c.score = combine(c.d, c.j, lam) if i in nonempty else float("-inf")
            c.defects = [d.name for d in defects.find(c.text, context, c.finished)]
        return sorted(range(len(candidates)), key=lambda i: (len(candidates[i].defects), -candidates[i].score))


def combine(d: float | None, j: float, lam: float) -> float:
    """The reranking score: λ·D + (1−λ)·J, J alone without D, D alone when J is unavailable (NaN).

    J is NaN for a server that sends no log-probs; without D too, every candidate scores 0 (server order).
    """
    if math.isnan(j):
        return 0.0 if d is None else d
    return j if d is None else lam * d + (1 - lam) * j
