"""A verifier: another chat model's likelihood of each candidate given the prompt (signals/verifier.py).

llama.cpp's server sends no log-probs for prompt tokens (its completions refuse "echo"), so the verifier
asks it for the final hidden state of every token instead (a llama.cpp context in embedding mode with
pooling "none": llama-server's native /embeddings returns the states after the output norm, before the
output matrix) and applies the model's output matrix itself: read once from the GGUF with `gguf`'s
dequantizer and kept as a .npy in the cache dir. The N candidates of a turn are one request (N slots in
parallel). A reply's score is its log-likelihood under the verifier, log P(reply | prompt): the sum of its
tokens' log-probs, the end-of-turn token counted for a reply that ended by itself (a model's P(stop here)
says whether it thinks the reply is complete). The sum, not the mean: on the labels it agreed with the
judge more (it also prefers the shorter of two equally likely replies, as the personas ask).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from ..llm.llamacpp import LOOPBACK, LlamaCppGenerator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """What the verifier makes of one reply."""

    mean_logprob: float  # mean log-prob of the reply's tokens (and its end of turn), NaN for no tokens
    logprobs: np.ndarray  # (tokens,) each token's log-prob
    state: np.ndarray  # (hidden,) mean final hidden state over the reply's tokens (a probe's features)

    @property
    def tokens(self) -> int:
        return len(self.logprobs)

    @property
    def total(self) -> float:
        """log P(reply | prompt); NaN for no tokens."""
        return float(self.logprobs.sum()) if len(self.logprobs) else float("nan")


class Verifier:
    """A GGUF chat model that reads (prompt, reply) pairs and gives each reply's log-likelihood."""

    _post = LlamaCppGenerator._post  # the same llama-server endpoints as the generator's
    prompt_text = LlamaCppGenerator.prompt_text

    def __init__(self, gguf: Path, name: str, cache_dir: Path, threads: int = 1, slots: int = 8) -> None:
        self.name, self.gguf = name, Path(gguf)
        self.output, self.end_of_turn = output_matrix(self.gguf, cache_dir)
        self.server = _start(self.gguf, name, threads, slots)
        self.url = self.server.listening_address.rstrip("/")
        if not self.url.startswith(f"http://{LOOPBACK}:"):
            raise ModelLoadError(f"llama.cpp listens on {self.url}, not on loopback; refusing to serve")

    @classmethod
    def from_spec(cls, spec: str, cache_dir: Path, threads: int = 1) -> Verifier:
        """An embedded chat model or a local .gguf path, as the generator's spec names it."""
        from ..models.gguf_file import gguf_path

        path = gguf_path(spec, cache_dir)
        if path is None:
            raise ModelLoadError(f"Model '{spec}' is not a GGUF file; the verifier runs on llama.cpp and needs one.")
        return cls(path, spec, cache_dir, threads)

    def tokenize(self, text: str, special: bool) -> list[int]:
        body = {"content": text, "add_special": special, "parse_special": special}
        return self._post("/tokenize", body)["tokens"]

    def read(self, messages: list[dict], replies: list[str], finished: list[bool]) -> list[Reading]:
        """Each reply's mean token log-prob and mean hidden state, given the chat `messages` (system first)."""
        prompt = self.tokenize(self.prompt_text(messages), special=True)
        ids = [self.tokenize(r, special=False) + [self.end_of_turn] * f for r, f in zip(replies, finished)]
        found = self._post("/embeddings", {"content": [prompt + x for x in ids]}) if replies else []
        states = {item["index"]: np.asarray(item["embedding"], dtype=np.float32) for item in found}
        return [self._reading(states[k], len(prompt), x) for k, x in enumerate(ids)]

    def _reading(self, states: np.ndarray, start: int, reply: list[int]) -> Reading:
        """states: (prompt + reply tokens, hidden); the state before each reply token predicts it."""
        if not reply:
            return Reading(float("nan"), np.zeros(0), np.zeros(self.output.shape[1], np.float32))
        before = states[start - 1 : start - 1 + len(reply)]
        logits = before @ self.output.T  # (reply tokens, vocab)
        top = logits.max(1, keepdims=True)
        norm = top[:, 0] + np.log(np.exp(logits - top).sum(1))
        logprobs = logits[np.arange(len(reply)), reply] - norm
        return Reading(float(logprobs.mean()), logprobs, states[start : start + len(reply)].mean(0))

    def score(self, messages: list[dict], replies: list[str], finished: list[bool]) -> list[float]:
        """Each reply's log-likelihood under the verifier, log P(reply | prompt)."""
        return [r.total for r in self.read(messages, replies, finished)]

    def close(self) -> None:
        server, self.server = getattr(self, "server", None), None
        del server


def _start(gguf: Path, name: str, threads: int, slots: int):
    """llama.cpp in embedding mode (every token's final state, no pooling), its listener on loopback."""
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(gguf)
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = threads
    p.n_parallel, p.kv_unified, p.n_ctx = slots, True, 8192
    p.n_batch = p.n_ubatch = 2048  # a sequence's states come back from one batch
    p.embedding, p.pooling_type = True, xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_NONE
    p.hostnames, p.port, p.verbosity = [LOOPBACK], 0, -1
    try:
        return xllamacpp.Server(p)
    except RuntimeError as e:
        raise ModelLoadError(f"Verifier '{name}': llama.cpp could not load {gguf} ({e}).") from e


def output_matrix(gguf: Path, cache_dir: Path) -> tuple[np.ndarray, int]:
    """The model's output matrix (vocab, hidden) as float32, memory-mapped from the cache, and its end-of-turn id.

    Dequantized from the GGUF on first use (tens of seconds; the tied token embedding when there is no
    separate output matrix) and written atomically beside the joined GGUF files.
    """
    import gguf as gg
    from gguf.quants import dequantize

    reader = gg.GGUFReader(gguf)
    eot = int(reader.fields["tokenizer.ggml.eos_token_id"].contents())
    cached = Path(cache_dir) / f"{gguf.stem}.output.npy"
    if not cached.exists():
        tensors = {t.name: t for t in reader.tensors}
        tensor = tensors.get("output.weight") or tensors["token_embd.weight"]
        log.info("verifier: dequantizing %s's output matrix once into %s", gguf.name, cached)
        matrix = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial.npy")
        np.save(partial, matrix)
        partial.replace(cached)
    return np.load(cached, mmap_mode="r"), eot
