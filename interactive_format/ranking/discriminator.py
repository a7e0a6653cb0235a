"""The discriminator D(context, reply) -> P(reply is human): its two kinds, made, saved and loaded.

D reads Chinese and English: the shipped one (EmbeddingDiscriminator) is an MLP over the frozen
multilingual-e5-small embeddings of the context and the reply. The older kind (Discriminator) is a
cross-encoder: an HF text encoder (MiniLM, English only) reads "context [SEP] reply", its token states
are mean-pooled and a linear head gives one logit. Only what training changes (the head and any
unfrozen encoder layers) is saved; the encoder's base weights come from its spec. D is one of the
ranking's signals (signals/d.py); the reranker is ranking.py's, where the seed ranking — the fewest
defects, then `combine`: λ·D + (1−λ)·J with J the generator's mean token log-prob — is the two-signal case.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError
from .encoder import SentenceEncoder

log = logging.getLogger(__name__)

WEIGHTS = "discriminator.safetensors"
META = "discriminator.json"
REPLY_BYTES = 192  # a new D reads its replies' first REPLY_BYTES UTF-8 bytes (~45 tokens; 0: whole), in its meta


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

        from ..models.hub import hub_error, pretrained_source

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
        d = new_discriminator(encoder or info["encoder"], device, info.get("max_length", 256))
        try:
            result = d.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shapes of another encoder's head
            raise ModelLoadError(f"The discriminator in {directory} does not match its encoder ({e}).") from None
        unexpected = list(result.unexpected_keys)
        if unexpected or any(k.startswith("head.") for k in result.missing_keys):
            raise ModelLoadError(f"The discriminator in {directory} does not match its encoder ({unexpected[:3]}).")
        if isinstance(d.encoder, nn.Module):
            for name, p in d.encoder.named_parameters():  # what was trained stays trainable; the rest is the base
                p.requires_grad_(f"encoder.{name}" in state)
        if isinstance(d, EmbeddingDiscriminator):  # settings a D saved before them lacks: as it was made
            d.context_chars, d.reply_bytes = info.get("context_chars", 600), info.get("reply_bytes", 0)
        d.meta = info
        return d.eval()


class EmbeddingDiscriminator(nn.Module):
    """D over a frozen bilingual sentence encoder: an MLP on [c, r, c·r, |c−r|] of the context's and the
    reply's embeddings. Only the MLP is trained and saved; the encoder reads Chinese and English alike. It reads
    the context's last `context_chars` characters and the reply's first `reply_bytes` UTF-8 bytes (the
    encoder's time grows with the tokens; both limits are saved in the meta)."""

    def __init__(
        self, encoder: SentenceEncoder, hidden: int = 256, context_chars: int = 600, reply_bytes: int = REPLY_BYTES
    ) -> None:
        super().__init__()
        self.encoder, self.encoder_spec, self.context_chars = encoder, encoder.spec, context_chars
        self.reply_bytes = reply_bytes  # 0: whole replies (a D saved without the setting)
        self.max_length = 0  # (saved in the meta: a cross-encoder's token limit)
        dim = encoder.dim
        self.head = nn.Sequential(  # LayerNorm first: e5's embeddings all lie close together (cosine ~0.8)
            nn.LayerNorm(4 * dim), nn.Linear(4 * dim, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, 1)
        )

    @classmethod
    def from_encoder(cls, encoder_spec: str, device: str = "cpu", max_length: int = 0) -> "EmbeddingDiscriminator":
        """`max_length` (the cross-encoder's token limit) does not apply: `context_chars` and `reply_bytes` do."""
        return cls(SentenceEncoder(encoder_spec)).to(device)

    @property
    def device(self) -> torch.device:
        return self.head[1].weight.device

    def features(self, contexts: list[str], replies: list[str]) -> torch.Tensor:
        replies = [reply_head(x, self.reply_bytes) for x in replies]
        c, r = self.encoder.embed_both([x[-self.context_chars :] for x in contexts], replies)
        return torch.cat([c, r, c * r, (c - r).abs()], -1).to(self.device)

    def logits(self, contexts: list[str], replies: list[str]) -> torch.Tensor:
        return self.head(self.features(contexts, replies)).squeeze(-1)

    score = Discriminator.score

    def trained_state(self) -> dict[str, torch.Tensor]:
        return {f"head.{k}": v for k, v in self.head.state_dict().items()}

    def save(self, directory: str | Path, **meta) -> None:
        """The head, with the limits D reads its texts by (its own settings win over a loaded D's meta)."""
        Discriminator.save(
            self, directory, **{**meta, "context_chars": self.context_chars, "reply_bytes": self.reply_bytes}
        )


def reply_head(text: str, limit: int) -> str:
    """The first `limit` UTF-8 bytes of `text` (a character cut in two is dropped; 0: the whole text).

    Bytes, not characters: an e5 token is ~4 bytes in both languages (4.2 in Chinese, 4.1 in English on the
    bench/rerank candidates) but 1.6 Chinese characters against 4.1 English ones, so a character limit would
    let a Chinese reply run 2.6 times the tokens of an English one.
    """
    data = text.encode()
    return text if limit <= 0 or len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def is_sentence_encoder(spec: str) -> bool:
    from ..models.specs import EMBEDDED, parse_spec

    parsed = parse_spec(spec)
    return parsed.kind == "embedded" and EMBEDDED[parsed.name].role == "sentence-encoder"


def new_discriminator(encoder_spec: str, device: str = "cpu", max_length: int = 256):
    """A fresh (untrained) D on `encoder_spec`: over sentence embeddings for a sentence encoder, else a cross-encoder."""
    kind = EmbeddingDiscriminator if is_sentence_encoder(encoder_spec) else Discriminator
    return kind.from_encoder(encoder_spec, device, max_length)


def load_discriminator(directory: str | Path | None, device: str = "cpu", encoder: str = "") -> Discriminator | None:
    """The trained D in `directory`; None for "off"/"" (ranking then uses likelihood only).

    A directory that does not hold a D is an error: a typo must not silently switch D off.
    """
    if not directory or str(directory).lower() == "off":
        return None
    if not (Path(directory) / WEIGHTS).exists():
        raise ModelLoadError(
            f"No trained discriminator in {directory} (no {WEIGHTS}). Train one with "
            "`python -m interactive_format.train`, or pass --discriminator off to rank by likelihood only."
        )
    return Discriminator.load(directory, device, encoder)
