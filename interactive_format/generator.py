"""The generator G: N candidate replies sampled in one batched call, streamed as they grow.

Per-token log-probabilities are read from the model's own distribution (before temperature
and top-p) while sampling, so J(reply) — the mean token log-prob — costs nothing extra.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from .errors import GenerationError, log_failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    n: int = 4  # candidates, sampled as one batch
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 160
    seed: int | None = None  # None: a fresh random seed, recorded in the result
    timeout_s: float | None = None  # wall-clock limit for the whole reply; None: no limit


@dataclass
class Draft:
    """One candidate as it grows."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprob_sum: float = 0.0
    finished: bool = False  # reached end-of-turn (not cut by the token limit or a stop)

    @property
    def mean_logprob(self) -> float:
        """J: length-normalised log-likelihood under the generator (0 tokens -> -inf)."""
        return self.logprob_sum / len(self.token_ids) if self.token_ids else float("-inf")


@dataclass
class Sample:
    """A snapshot of all candidates; `done` on the last one."""

    drafts: list[Draft]
    seed: int
    done: bool = False
    stopped: bool = False  # the user pressed stop


class Generator(Protocol):
    """Anything that turns chat messages into N streamed candidates."""

    name: str

    def count_tokens(self, messages: list[dict]) -> int: ...

    def stream(self, messages: list[dict], params: SamplingParams, stop: threading.Event) -> Iterator[Sample]: ...


class _LogprobRecorder:
    """Logits processor that keeps log-softmax of the raw scores for the step being sampled."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None  # (batch, vocab)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores


class _StopOnEvent:
    """Stopping criterion: every sequence stops once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _DraftStreamer:
    """transformers streamer: receives each step's tokens (batch,) and updates the drafts."""

    def __init__(self, tokenizer, recorder: _LogprobRecorder, n: int, eos_ids: set[int], out: queue.Queue):
        self.tokenizer, self.recorder, self.eos_ids, self.out = tokenizer, recorder, eos_ids, out
        self.drafts = [Draft() for _ in range(n)]
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        tokens = value.view(-1).tolist()
        logprobs = self.recorder.last
        for i, (draft, token) in enumerate(zip(self.drafts, tokens)):
            if draft.finished:
                continue
            if token in self.eos_ids:
                draft.finished = True
                continue
            draft.token_ids.append(token)
            if logprobs is not None:
                draft.logprob_sum += float(logprobs[i, token])
            draft.text = self.tokenizer.decode(draft.token_ids, skip_special_tokens=True)
        self.out.put([Draft(d.text, list(d.token_ids), d.logprob_sum, d.finished) for d in self.drafts])

    def end(self) -> None:
        pass


class TransformersGenerator:
    """A local transformers causal LM; GPU (bf16) when present, CPU (fp32) otherwise."""

    def __init__(self, model, tokenizer, name: str = "model") -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.device = next(model.parameters()).device
        self._lock = threading.Lock()  # one generate at a time on this model
        self.eos_ids = self._eos_ids()

    @classmethod
    def from_spec(cls, spec: str, cache_dir: Path, device: str = "auto", dtype: str = "auto") -> "TransformersGenerator":
        """dtype "auto": bf16 on CUDA, fp32 on CPU; or "float32" / "bfloat16" / "float16"."""
        from .models import load_causal_lm, resolve_device

        device = resolve_device(device)
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        model, tokenizer = load_causal_lm(spec, cache_dir, device, dtype=getattr(torch, dtype))
        return cls(model, tokenizer, name=spec)

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Token ids of `messages` under the model's chat template, ready for the reply."""
        if self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
            return list(ids["input_ids"] if isinstance(ids, dict) else ids)
        text = "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
        return self.tokenizer(text)["input_ids"]

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.prompt_ids(messages))

    def stream(self, messages: list[dict], params: SamplingParams, stop: threading.Event) -> Iterator[Sample]:
        """Yield snapshots of the N drafts as they grow; the last one has done=True."""
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        prompt = torch.tensor([self.prompt_ids(messages)], device=self.device)
        out: queue.Queue = queue.Queue()
        recorder = _LogprobRecorder()
        streamer = _DraftStreamer(self.tokenizer, recorder, params.n, self.eos_ids, out)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    torch.manual_seed(seed)
                    self.model.generate(
                        input_ids=prompt,
                        attention_mask=torch.ones_like(prompt),
                        do_sample=True,
                        temperature=params.temperature,
                        top_p=params.top_p,
                        top_k=0,
                        max_new_tokens=params.max_new_tokens,
                        num_return_sequences=params.n,
                        pad_token_id=self.tokenizer.pad_token_id or min(self.eos_ids),
                        logits_processor=[recorder],
                        stopping_criteria=[_StopOnEvent(stop)],
                        streamer=streamer,
                    )
            except BaseException as e:  # reported to the consumer below
                failure.append(e)
            finally:
                out.put(None)

        thread = threading.Thread(target=run, name="generate", daemon=True)
        thread.start()
        drafts = [Draft() for _ in range(params.n)]
        deadline = Deadline(params.timeout_s)
        try:
            while (item := deadline.get(out)) is not None:
                drafts = item
                yield Sample(drafts, seed)
        finally:
            if thread.is_alive():
                stop.set()  # the consumer went away, the stream ended early or timed out: end the generation
        if failure:
            raise generation_error(failure[0]) from failure[0]
        yield Sample(drafts, seed, done=True, stopped=stop.is_set())


class Deadline:
    """Waits on a queue for at most what is left of `timeout_s` (None: forever)."""

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.end = None if timeout_s is None else time.monotonic() + timeout_s

    def get(self, q: queue.Queue):
        """The next item; GenerationError once the time is up (a stalled model included)."""
        if self.end is None:
            return q.get()
        try:
            return q.get(timeout=max(self.end - time.monotonic(), 0.0))
        except queue.Empty:
            raise GenerationError(
                f"The reply took longer than {self.timeout_s:g} seconds and was stopped. Please try again "
                "(fewer candidates or a shorter reply are quicker)."
            ) from None


def generation_error(error: BaseException) -> GenerationError:
    """The user's message for a failure inside the model (logged with its traceback, no user text)."""
    log_failure(log, "generation failed", error)
    if isinstance(error, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()  # give the memory back for the next turn
        return GenerationError(
            "The server ran out of GPU memory for this reply. Please try again, with fewer candidates "
            "or a shorter reply."
        )
    return GenerationError(f"The language model failed while answering ({error.__class__.__name__}). Please try again.")


def sample_replies(generator: TransformersGenerator, prompts: list[list[dict]], params: SamplingParams) -> list[list[Draft]]:
    """N complete replies to each of several prompts, all in one left-padded `generate` call.

    The offline path for training and evaluation (no streaming, no stop): returns, per
    prompt, `params.n` drafts with J from the raw (pre-temperature) distribution.
    """
    model, tok = generator.model, generator.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else min(generator.eos_ids)
    ids = [generator.prompt_ids(m) for m in prompts]
    width = max(map(len, ids))
    input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=generator.device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=generator.device)
    with generator._lock, torch.inference_mode():
        if params.seed is not None:
            torch.manual_seed(params.seed)
        out = model.generate(
            input_ids=input_ids, attention_mask=mask, do_sample=True, temperature=params.temperature,
            top_p=params.top_p, top_k=0, max_new_tokens=params.max_new_tokens, num_return_sequences=params.n,
            pad_token_id=pad, output_logits=True, return_dict_in_generate=True,
        )
    new = out.sequences[:, width:]  # (prompts × n, steps)
    logprobs = torch.stack(out.logits, 1).float().log_softmax(-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    drafts = []
    for row, lp in zip(new.tolist(), logprobs.tolist()):
        end = next((i for i, t in enumerate(row) if t in generator.eos_ids), len(row))
        tokens = row[:end]
        drafts.append(Draft(tok.decode(tokens, skip_special_tokens=True), tokens, float(sum(lp[:end])), end < len(row)))
    return [drafts[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]
