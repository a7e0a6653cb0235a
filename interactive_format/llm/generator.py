"""The generator G: N candidate replies sampled in one batched call, streamed as they grow.

Per-token log-probabilities are read from the model's own distribution (before temperature
and top-p) while sampling, so J(reply) — the mean token log-prob — costs nothing extra.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import GenerationError, log_failure
from .sampling import Deadline, Draft, RowEnds, Sample, SamplingParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeedOptions:
    """How `TransformersGenerator` runs the model; `for_device` picks the defaults."""

    share_prefill: bool = True  # prefill the prompt once and copy its KV cache to the N candidates
    static_cache: bool = False  # preallocated KV caches, one per batch bucket (needed for compiling)
    compile: bool = False  # torch.compile the decode step (CUDA graphs); only with static_cache on CUDA
    buckets: tuple[int, ...] = (1, 2, 4, 8, 16)  # static cache: N is rounded up to one of these batch sizes
    max_cache_len: int = 4096  # static cache length (prompt + reply); longer turns use a dynamic cache
    batch_window_s: float = 0.01  # requests arriving within this window share one generate call (adds to TTFT)
    max_batch_rows: int = 16  # candidates (all requests together) in one shared generate call

    @classmethod
    def for_device(cls, device: str | torch.device) -> "SpeedOptions":
        """Static cache + compiled decode on CUDA; a dynamic cache on CPU (a static one is slower there)."""
        cuda = torch.device(device).type == "cuda"
        return cls(static_cache=cuda, compile=cuda, batch_window_s=0.002 if cuda else 0.01)


class _LogprobRecorder:
    """Logits processor that keeps log-softmax of the raw scores for the step being sampled."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None  # (batch, vocab)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores


@dataclass
class _Request:
    """One `stream` call waiting for, or taking part in, a generate call."""

    prompt_ids: list[int]
    params: SamplingParams
    stop: threading.Event
    seed: int
    ends: RowEnds = field(default_factory=RowEnds)  # its rows ended early by the consumer (pruning.py)
    out: queue.Queue = field(default_factory=queue.Queue)  # list[Draft] snapshots, then None
    ended: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None

    def end(self, failure: BaseException | None = None) -> None:
        """Tell the consumer there is nothing more (once)."""
        if not self.ended.is_set():
            self.failure = failure
            self.ended.set()
            self.out.put(None)


def visible_text(tokenizer, token_ids: list[int]) -> str:
    """The decoded reply without a character cut in half at its end (byte tokens of an emoji still to come,
    or the token limit reached mid-character), which would show as U+FFFD."""
    return tokenizer.decode(token_ids, skip_special_tokens=True).rstrip("\ufffd")


class _DraftStreamer:
    """transformers streamer for one request: receives each step's tokens (batch,), updates its rows' drafts.

    The request ends as soon as all its drafts are complete (end of turn, its token limit, or its
    stop), even while other requests of the same batch go on.
    """

    def __init__(self, tokenizer, recorder: _LogprobRecorder, request: _Request, eos_ids: set[int], rows: slice):
        self.tokenizer, self.recorder, self.request, self.eos_ids, self.rows = (
            tokenizer,
            recorder,
            request,
            eos_ids,
            rows,
        )
        self.drafts = [Draft() for _ in range(request.params.n)]
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        if self.request.ended.is_set():
            return
        picked = value.view(-1)[self.rows]
        tokens = picked.tolist()
        logprobs = [0.0] * len(tokens)
        if self.recorder.last is not None:  # one device-to-host copy for all rows
            logprobs = (
                self.recorder.last[self.rows].gather(1, picked[:, None].to(self.recorder.last.device))[:, 0].tolist()
            )
        for k, (draft, token, logprob) in enumerate(zip(self.drafts, tokens, logprobs)):
            if draft.finished or k in self.request.ends:  # an ended row keeps its text as it was
                continue
            if token in self.eos_ids:
                draft.finished = True
                continue
            draft.token_ids.append(token)
            draft.logprob_sum += logprob
            draft.text = visible_text(self.tokenizer, draft.token_ids)
        self.request.out.put([Draft(d.text, list(d.token_ids), d.logprob_sum, d.finished) for d in self.drafts])
        limit, ends = self.request.params.max_new_tokens, self.request.ends
        done = [d.finished or len(d.token_ids) >= limit or k in ends for k, d in enumerate(self.drafts)]
        if self.request.stop.is_set() or all(done):
            self.request.end()

    def end(self) -> None:
        pass


class _FanOut:
    """One streamer for a batch of several requests: hands each step to every request's streamer."""

    def __init__(self, streamers: list[_DraftStreamer]) -> None:
        self.streamers = streamers

    def put(self, value: torch.Tensor) -> None:
        for streamer in self.streamers:
            streamer.put(value)

    def end(self) -> None:
        pass


class _RowStop:
    """Stopping criterion for a batch: a row is done at its request's stop or token limit, or when the
    consumer ended it (RowEnds; the batch keeps its shape, so this saves no work per step, but the call
    ends once every row is done).

    Rows without a request (padding up to a static-cache bucket) are done at once.
    """

    def __init__(self, requests: list[_Request | None], prompt_width: int) -> None:
        self.requests, self.prompt_width = requests, prompt_width
        self.candidate = [sum(x is r for x in requests[:i]) for i, r in enumerate(requests)]  # index in its request

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        made = input_ids.shape[1] - self.prompt_width
        done = [
            r is None or r.stop.is_set() or made >= r.params.max_new_tokens or k in r.ends
            for r, k in zip(self.requests, self.candidate)
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _RowWarper:
    """Logits processor: each row's own temperature and top-p (temperature 0: greedy), for mixed batches."""

    def __init__(self, temperature: torch.Tensor, top_p: torch.Tensor) -> None:
        self.temperature, self.top_p = temperature, top_p  # (rows,)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float() / self.temperature.clamp_min(1e-5)[:, None]
        ordered, index = scores.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        drop = probs.cumsum(-1) - probs > self.top_p[:, None]  # the most likely token is always kept
        drop[:, 1:] |= (self.temperature <= 0)[:, None]
        return torch.empty_like(scores).scatter_(-1, index, ordered.masked_fill(drop, float("-inf")))


class _Batcher:
    """Collects the requests that arrive together and hands them to `run` as one group (one generate call).

    A request that comes while a group is generating waits for the next group. Groups hold at
    most `max_rows` rows (candidates); a larger single request still runs alone.
    """

    def __init__(self, run, max_rows: int, window_s: float) -> None:
        self.run, self.max_rows, self.window_s = run, max_rows, window_s
        self.pending: list[_Request] = []
        self.ready = threading.Condition()
        self.thread: threading.Thread | None = None
        self.idle = threading.Event()  # no group is generating (a stream may end before its generate call does)
        self.idle.set()

    def submit(self, request: _Request) -> None:
        with self.ready:
            self.pending.append(request)
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="generate", daemon=True)
                self.thread.start()
                atexit.register(self.idle.wait, 10.0)  # torch aborts if the interpreter exits mid-generate
            self.ready.notify()

    def _next_group(self) -> list[_Request]:
        with self.ready:
            self.ready.wait_for(lambda: self.pending)
        time.sleep(self.window_s)  # let requests that arrive together join
        with self.ready:
            group, rows = [], 0
            while self.pending and (not group or rows + self.pending[0].params.n <= self.max_rows):
                group.append(self.pending.pop(0))
                rows += group[-1].params.n
            return group

    def _loop(self) -> None:
        while True:
            group = self._next_group()
            self.idle.clear()
            try:
                self._attempt(group)
            finally:
                self.idle.set()

    def _attempt(self, group: list[_Request]) -> None:
        """Run `group`. When a shared call fails, each request it left unfinished is run again on its own,
        so a fault caused by one request (e.g. out of memory for its many candidates) fails that request
        alone and the others are answered; a failure is reported to its consumer, the worker keeps serving."""
        try:
            self.run(group)
        except Exception as e:
            unfinished = [r for r in group if not r.ended.is_set()]
            if len(group) > 1:
                log.warning("a shared generate call failed (%s); running its requests one by one", type(e).__name__)
                for request in unfinished:
                    self._attempt([request])
            for request in unfinished:
                request.end(e)
        except BaseException as e:
            for request in group:
                request.end(e)
            raise
        for request in group:
            request.end()


class TransformersGenerator:
    """A local transformers causal LM; GPU (bf16, static cache, compiled decode) when present, CPU otherwise."""

    ends_rows = True  # a candidate can be ended alone (RowEnds)

    def __init__(self, model, tokenizer, name: str = "model", options: SpeedOptions | None = None) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.device = next(model.parameters()).device
        self.options = options or SpeedOptions.for_device(self.device)
        self._lock = threading.Lock()  # one generate at a time on this model
        self._static: dict[int, object] = {}  # batch rows -> a reusable StaticCache
        self._batcher = _Batcher(self._run_group, self.options.max_batch_rows, self.options.batch_window_s)
        self.eos_ids = self._eos_ids()

    @classmethod
    def from_spec(
        cls, spec: str, cache_dir: Path, device: str = "auto", dtype: str = "auto"
    ) -> "TransformersGenerator":
        """dtype "auto": bf16 on CUDA, fp32 on CPU; or "float32" / "bfloat16" / "float16".

        On a CPU with native bf16 (AVX512-BF16, AMX) "bfloat16" is faster with similar replies; "auto" keeps
        fp32 there so that J stays exact (see README, "Speed").
        """
        from ..models.device import configure_threads, resolve_device
        from ..models.hub import load_causal_lm

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

        shared = self.model(input_ids=prompt[:, :-1], use_cache=True).cache
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
            kwargs["cache"] = cache  # `past_key_values` until transformers 5.24; removed in 6.0
        if not self.options.compile:
            kwargs["disable_compile"] = True
        return kwargs

    def group_kwargs(self, group: list[_Request]) -> tuple[dict, list[_Request | None]]:
        """Arguments for one `model.generate` call answering several requests (left-padded prompts, one row
        per candidate, each row with its own temperature/top-p), and the request of each row."""
        requests: list[_Request | None] = [r for r in group for _ in range(r.params.n)]
        requests += [None] * (self.rows(len(requests)) - len(requests))  # static-cache bucket padding
        prompts = [(r or group[0]).prompt_ids for r in requests]
        width = max(map(len, prompts))
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        longest = max(r.params.max_new_tokens for r in group)
        kwargs = dict(
            input_ids=ids, attention_mask=mask, max_new_tokens=longest, pad_token_id=self.pad_id,
            do_sample=True, temperature=1.0, top_p=1.0, top_k=0,  # _RowWarper does each row's own
        )  # fmt: skip
        cache = self._static_cache(len(requests), width + longest)
        if cache is not None:
            kwargs["cache"] = cache  # `past_key_values` until transformers 5.24; removed in 6.0
        if not self.options.compile:
            kwargs["disable_compile"] = True
        return kwargs, requests

    def _run_group(self, group: list[_Request]) -> None:
        """Generate for the requests of one group (the batcher's worker thread), streaming to each."""
        recorder = _LogprobRecorder()
        with self._lock, torch.inference_mode():
            torch.manual_seed(group[0].seed)
            if len(group) == 1:  # alone: N rows of one prompt (shared prefill; the seed reproduces it)
                (request,) = group
                kwargs = self.generate_kwargs(request.prompt_ids, request.params)
                rows = [request] * request.params.n + [None] * (kwargs["num_return_sequences"] - request.params.n)
                processors = [recorder]
                streamer = _DraftStreamer(self.tokenizer, recorder, request, self.eos_ids, slice(0, request.params.n))
            else:
                kwargs, rows = self.group_kwargs(group)
                warper = _RowWarper(*self._row_sampling(rows))
                processors = [recorder, warper]
                streamer = _FanOut(self._streamers(group, recorder))
            width = kwargs["input_ids"].shape[1]
            self.model.generate(
                **kwargs, logits_processor=processors, stopping_criteria=[_RowStop(rows, width)], streamer=streamer
            )

    def _row_sampling(self, rows: list[_Request | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """(temperature, top_p) per row; padding rows are greedy."""
        temperature = [r.params.temperature if r else 0.0 for r in rows]
        top_p = [r.params.top_p if r else 1.0 for r in rows]
        return torch.tensor(temperature, device=self.device), torch.tensor(top_p, device=self.device)

    def _streamers(self, group: list[_Request], recorder: _LogprobRecorder) -> list[_DraftStreamer]:
        """One streamer per request over its own rows of the batch."""
        streamers, start = [], 0
        for r in group:
            streamers.append(
                _DraftStreamer(self.tokenizer, recorder, r, self.eos_ids, slice(start, start + r.params.n))
            )
            start += r.params.n
        return streamers

    def stream(
        self, messages: list[dict], params: SamplingParams, stop: threading.Event, ends: RowEnds | None = None
    ) -> Iterator[Sample]:
        """Yield snapshots of the N drafts as they grow; the last one has done=True.

        Requests from several callers that arrive together are answered by one generate call; the
        seed reproduces a reply when the request ran alone. A row in `ends` stops growing at once, and
        the stream is done once every row has finished, reached its limit or ended.
        """
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        request = _Request(self.prompt_ids(messages), params, stop, seed, RowEnds() if ends is None else ends)
        self._batcher.submit(request)
        drafts = [Draft() for _ in range(params.n)]
        deadline = Deadline(params.timeout_s)
        try:
            while (item := deadline.get(request.out)) is not None:  # an ended row keeps the text its consumer saw
                drafts = [old if k in request.ends else new for k, (old, new) in enumerate(zip(drafts, item))]
                yield Sample(drafts, seed)
        finally:
            if not request.ended.is_set():
                stop.set()  # the consumer went away, or the reply timed out: end its rows
        if request.failure is not None:
            raise generation_error(request.failure) from request.failure
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
