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

from .errors import GenerationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    n: int = 4  # candidates, sampled as one batch
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 160
    seed: int | None = None  # None: a fresh random seed, recorded in the result

    @property
    def greedy(self) -> bool:
        """Temperature 0 means greedy decoding (the tests' and the benchmark's exact-match mode)."""
        return self.temperature <= 0


@dataclass(frozen=True)
class SpeedOptions:
    """How `TransformersGenerator` runs the model; `for_device` picks the defaults."""

    share_prefill: bool = True  # prefill the prompt once and copy its KV cache to the N candidates
    static_cache: bool = False  # preallocated KV caches, one per batch bucket (needed for compiling)
    compile: bool = False  # torch.compile the decode step (CUDA graphs); only with static_cache on CUDA
    buckets: tuple[int, ...] = (1, 2, 4, 8, 16)  # static cache: N is rounded up to one of these batch sizes
    max_cache_len: int = 4096  # static cache length (prompt + reply); longer turns use a dynamic cache
    warmup: bool = True  # run every bucket once at start so no user turn pays for compiling

    @classmethod
    def for_device(cls, device: str | torch.device) -> "SpeedOptions":
        """Static cache + compiled decode on CUDA; a dynamic cache on CPU (a static one is slower there)."""
        cuda = torch.device(device).type == "cuda"
        return cls(static_cache=cuda, compile=cuda)


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


class _RowsDone:
    """Stopping criterion: rows from `n` on (batch padding up to a static-cache bucket) are done at once."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.arange(input_ids.shape[0], device=input_ids.device) >= self.n


class TransformersGenerator:
    """A local transformers causal LM; GPU (bf16, static cache, compiled decode) when present, CPU otherwise."""

    def __init__(self, model, tokenizer, name: str = "model", options: SpeedOptions | None = None) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.device = next(model.parameters()).device
        self.options = options or SpeedOptions.for_device(self.device)
        self._lock = threading.Lock()  # one generate at a time on this model
        self._static: dict[int, object] = {}  # batch rows -> a reusable StaticCache
        self.eos_ids = self._eos_ids()

    @classmethod
    def from_spec(
        cls, spec: str, cache_dir: Path, device: str = "auto", dtype: str = "auto"
    ) -> "TransformersGenerator":
        """dtype "auto": bf16 on CUDA, fp32 on CPU; or "float32" / "bfloat16" / "float16".

        On a CPU with native bf16 (AVX512-BF16, AMX) "bfloat16" decodes ~1.3× faster with the same replies in
        most turns; "auto" keeps fp32 there so that J stays exact (see README, "Speed").
        """
        from .models import configure_threads, load_causal_lm, resolve_device

        device = resolve_device(device)
        configure_threads()
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

    @property
    def pad_id(self) -> int:
        """The id that fills finished rows (the eos id where the tokenizer has no pad token)."""
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else min(self.eos_ids, default=0)

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Token ids of `messages` under the model's chat template, ready for the reply."""
        if self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            return list(ids["input_ids"] if isinstance(ids, dict) else ids)
        text = "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
        return self.tokenizer(text)["input_ids"]

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.prompt_ids(messages))

    # --- one batched generate call -------------------------------------------------------------

    def rows(self, n: int) -> int:
        """Batch rows used for n candidates: n, or the next static-cache bucket (extra rows stop at once)."""
        if not self.options.static_cache:
            return n
        return next((b for b in sorted(self.options.buckets) if b >= n), n)

    def _static_cache(self, rows: int, length: int):
        """The reusable StaticCache for `rows` (emptied), or None when the turn does not fit in it."""
        from transformers import StaticCache

        if not self.options.static_cache or length > self.options.max_cache_len:
            return None
        cache = self._static.get(rows)
        if cache is None:
            cache = self._static[rows] = StaticCache(config=self.model.config, max_cache_len=self.options.max_cache_len)
        cache.reset()
        return cache

    def _prefilled(self, prompt: torch.Tensor, rows: int, cache):
        """Run the prompt (all but its last token) once, batch 1, and copy its KV cache into `rows` rows.

        `generate` then only feeds the last prompt token per candidate instead of the whole prompt N times.
        """
        from transformers import DynamicCache

        shared = self.model(input_ids=prompt[:, :-1], use_cache=True).past_key_values
        cache = cache if cache is not None else DynamicCache(config=self.model.config)
        for i, layer in enumerate(shared.layers):
            cache.update(layer.keys.repeat(rows, 1, 1, 1), layer.values.repeat(rows, 1, 1, 1), i)
        return cache

    def generate_kwargs(self, prompt_ids: list[int], params: SamplingParams) -> dict:
        """Arguments for one `model.generate` call sampling `params.n` replies to one prompt.

        Call under `inference_mode`: with `share_prefill` this already runs the prompt through the model.
        """
        rows = self.rows(params.n)
        prompt = torch.tensor([prompt_ids], device=self.device)
        kwargs = dict(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=params.max_new_tokens,
            num_return_sequences=rows,
            pad_token_id=self.pad_id,
        )
        if params.greedy:  # top-1 sampling is argmax, and unlike do_sample=False it allows N rows of one prompt
            kwargs.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=1)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        cache = self._static_cache(rows, len(prompt_ids) + params.max_new_tokens)
        if self.options.share_prefill and rows > 1 and len(prompt_ids) > 1:
            cache = self._prefilled(prompt, rows, cache)
        if cache is not None:
            kwargs["past_key_values"] = cache
        if not self.options.compile:
            kwargs["disable_compile"] = True
        return kwargs

    def stream(self, messages: list[dict], params: SamplingParams, stop: threading.Event) -> Iterator[Sample]:
        """Yield snapshots of the N drafts as they grow; the last one has done=True."""
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        prompt_ids = self.prompt_ids(messages)
        out: queue.Queue = queue.Queue()
        recorder = _LogprobRecorder()
        streamer = _DraftStreamer(self.tokenizer, recorder, params.n, self.eos_ids, out)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    torch.manual_seed(seed)
                    self.model.generate(
                        **self.generate_kwargs(prompt_ids, params),
                        logits_processor=[recorder],
                        stopping_criteria=[_StopOnEvent(stop), _RowsDone(params.n)],
                        streamer=streamer,
                    )
            except BaseException as e:  # reported to the consumer below
                failure.append(e)
            finally:
                out.put(None)

        thread = threading.Thread(target=run, name="generate", daemon=True)
        thread.start()
        drafts = [Draft() for _ in range(params.n)]
        try:
            while (item := out.get()) is not None:
                drafts = item
                yield Sample(drafts, seed)
        finally:
            if thread.is_alive():
                stop.set()  # the consumer went away (or the stream ended early): end the generation
        if failure:
            log.exception("generation failed", exc_info=failure[0])
            raise GenerationError(
                f"The language model failed while answering ({failure[0].__class__.__name__})."
            ) from failure[0]
        yield Sample(drafts, seed, done=True, stopped=stop.is_set())

    def warm_up(self, ns: tuple[int, ...] = (1, 4)) -> float:
        """Run each batch size the app uses once (every bucket with a static cache), so that kernels are
        loaded, caches allocated and, on CUDA, the decode step compiled before the first user turn.

        Returns the seconds it took.
        """
        started = time.perf_counter()
        sizes = self.options.buckets if self.options.static_cache else ns
        runs = 3 if self.options.compile else 1  # CUDA graphs are recorded on the second and third call
        messages = [{"role": "user", "content": "Hello!"}]
        for n in sorted(set(sizes)):
            for _ in range(runs):
                for _ in self.stream(messages, SamplingParams(n=n, max_new_tokens=4, seed=0), threading.Event()):
                    pass
        log.info("generator warmed up for batch sizes %s in %.1f s", sorted(set(sizes)), time.perf_counter() - started)
        return time.perf_counter() - started


def sample_replies(
    generator: TransformersGenerator, prompts: list[list[dict]], params: SamplingParams
) -> list[list[Draft]]:
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
            input_ids=input_ids,
            attention_mask=mask,
            do_sample=True,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=0,
            max_new_tokens=params.max_new_tokens,
            num_return_sequences=params.n,
            pad_token_id=pad,
            output_logits=True,
            return_dict_in_generate=True,
        )
    new = out.sequences[:, width:]  # (prompts × n, steps)
    logprobs = torch.stack(out.logits, 1).float().log_softmax(-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    drafts = []
    for row, lp in zip(new.tolist(), logprobs.tolist()):
        end = next((i for i, t in enumerate(row) if t in generator.eos_ids), len(row))
        tokens = row[:end]
        drafts.append(Draft(tok.decode(tokens, skip_special_tokens=True), tokens, float(sum(lp[:end])), end < len(row)))
    return [drafts[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]
