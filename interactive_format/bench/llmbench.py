"""The LLM part of the benchmark: our generator (TransformersGenerator) against plain eager `model.generate`.

Time to first token for a long prompt, single-stream decode tokens/s, the latency of N candidates and
`users` requests at once, on the same weights (`llm_pair`); run by `python -m interactive_format.bench llm`.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..llm.generator import TransformersGenerator
from ..llm.sampling import SamplingParams

PROMPTS = [
    "Hello! Can you recommend a good book?",
    "What should I cook for dinner tonight?",
    "Tell me a fun fact about space.",
    "How do I stay focused while studying?",
    "What is a good name for a goldfish?",
]


@dataclass(frozen=True)
class LLMBench:
    """What the LLM part measures (sizes picked per device by `for_device`)."""

    prompt_tokens: int = 512  # the long prompt for time to first token
    decode_tokens: int = 64  # tokens per reply for decode speed and candidate latency
    candidates: tuple[int, ...] = (1, 4, 8)
    users: int = 16  # concurrent requests, one candidate each
    user_tokens: int = 32  # tokens per user's reply
    repeats: int = 3  # medians over this many runs
    temperature: float = 0.7  # the app's default sampling
    top_p: float = 0.9

    @classmethod
    def for_device(cls, device: str, quick: bool = False) -> "LLMBench":
        if quick:  # the tests: a few seconds on a tiny model
            return cls(prompt_tokens=48, decode_tokens=6, candidates=(1, 2), users=3, user_tokens=4, repeats=1)
        if device.startswith("cuda"):  # eager baseline ~14 tokens/s on a GPU host: keep the run within minutes
            return cls(decode_tokens=128, user_tokens=64, repeats=3)
        return cls()


@dataclass(frozen=True)
class Run:
    """One timed generation: seconds from the call to the first token and to the end, tokens per row."""

    first_s: float
    total_s: float
    tokens: int

    @property
    def decode_tps(self) -> float:
        """Tokens per second per row after the first token."""
        return (self.tokens - 1) / max(self.total_s - self.first_s, 1e-9)


class _Clock:
    """A `generate` streamer that only records when each step's tokens arrive (the first call is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def fixed_length(generator: TransformersGenerator) -> TransformersGenerator:
    """The generator with end-of-turn ignored, so every reply has exactly max_new_tokens (comparable timings)."""
    generator.model.generation_config.eos_token_id = None
    generator.eos_ids = set()
    return generator


def plain_run(model, prompt_ids: list[int], n: int, tokens: int, bench: LLMBench, pad_id: int) -> Run:
    """The baseline: one eager `model.generate` call (dynamic cache, no compile, N rows prefilled N times)."""
    clock = _Clock()
    prompt = torch.tensor([prompt_ids], device=model.device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=True, temperature=bench.temperature,
            top_p=bench.top_p, top_k=0, num_return_sequences=n, max_new_tokens=tokens,
            pad_token_id=pad_id, streamer=clock, disable_compile=True,
        )  # fmt: skip
    _sync(model.device)
    return Run(clock.times[1] - started, time.perf_counter() - started, out.shape[1] - prompt.shape[1])


def our_run(generator: TransformersGenerator, messages: list[dict], n: int, tokens: int, bench: LLMBench) -> Run:
    """Our path: `generator.stream`, timed from the call to the first streamed token and to the last sample."""
    params = SamplingParams(n=n, temperature=bench.temperature, top_p=bench.top_p, max_new_tokens=tokens)
    started, first = time.perf_counter(), None
    for sample in generator.stream(messages, params, threading.Event()):
        if first is None and any(d.token_ids for d in sample.drafts):
            first = time.perf_counter() - started
    _sync(generator.device)
    return Run(first or 0.0, time.perf_counter() - started, max(len(d.token_ids) for d in sample.drafts))


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def prompt_of(generator: TransformersGenerator, length: int) -> list[dict]:
    """Chat messages whose prompt is about `length` tokens (a real text, repeated as needed)."""
    text = " ".join(PROMPTS) + " "
    ids = generator.tokenizer(text * (1 + 3 * length // max(len(generator.tokenizer(text)["input_ids"]), 1)))
    body = ids["input_ids"]
    overhead = generator.count_tokens([{"role": "user", "content": ""}])
    keep = max(length - overhead, 1)
    for _ in range(3):  # re-encoding a decoded cut can shift the count by a token or two
        messages = [{"role": "user", "content": generator.tokenizer.decode(body[:keep])}]
        keep += length - generator.count_tokens(messages)
    return messages


def _median_run(runs: list[Run]) -> dict:
    return {
        "first_token_s": round(statistics.median(r.first_s for r in runs), 4),
        "total_s": round(statistics.median(r.total_s for r in runs), 4),
        "decode_tokens_per_s": round(statistics.median(r.decode_tps for r in runs), 1),
        "tokens": runs[0].tokens,
    }


def side_by_side(ours: dict, base: dict, key: str, higher_is_better: bool) -> dict:
    """{"ours", "baseline", "speedup"} for one metric (speedup > 1 means ours is better)."""
    a, b = ours[key], base[key]
    speedup = (a / b if higher_is_better else b / a) if a and b else None
    return {"ours": a, "baseline": b, "speedup": round(speedup, 2) if speedup else None}


def bench_llm(generator: TransformersGenerator, baseline_model, bench: LLMBench) -> dict:
    """Every LLM measurement, ours and the baseline's, on the same prompts."""
    fixed_length(generator)
    baseline_model.generation_config.eos_token_id = None
    pad = generator.pad_id

    def both(messages: list[dict], n: int, tokens: int) -> dict:
        ids = generator.prompt_ids(messages)
        ours = [our_run(generator, messages, n, tokens, bench) for _ in range(bench.repeats)]
        base = [plain_run(baseline_model, ids, n, tokens, bench, pad) for _ in range(bench.repeats)]
        return {"prompt_tokens": len(ids), "n": n, "ours": _median_run(ours), "baseline": _median_run(base)}

    long, short = prompt_of(generator, bench.prompt_tokens), prompt_of(generator, 32)
    both(short, 1, 2)  # one untimed run each, so neither side pays for first-call setup
    result = {
        "time_to_first_token": both(long, 1, 2),
        "time_to_first_token_n4": both(long, 4, 2),
        "decode_single_stream": both(short, 1, bench.decode_tokens),
        "candidates": {str(n): both(short, n, bench.decode_tokens) for n in bench.candidates},
        "concurrent_users": concurrent_users(generator, baseline_model, short, bench),
    }
    return result


def concurrent_users(generator: TransformersGenerator, baseline_model, messages: list[dict], bench: LLMBench) -> dict:
    """`bench.users` requests arriving together: ours from as many threads; the baseline one after another."""
    ids = generator.prompt_ids(messages)
    started = time.perf_counter()
    with ThreadPoolExecutor(bench.users) as pool:
        ours = list(pool.map(lambda _: our_run(generator, messages, 1, bench.user_tokens, bench), range(bench.users)))
    ours_wall = time.perf_counter() - started
    started = time.perf_counter()
    base, base_starts = [], []
    for _ in range(bench.users):  # a queue served one by one: each user also waits for those before
        base_starts.append(time.perf_counter() - started)
        base.append(plain_run(baseline_model, ids, 1, bench.user_tokens, bench, generator.pad_id))
    base_wall = time.perf_counter() - started
    waited = [Run(s + r.first_s, s + r.total_s, r.tokens) for s, r in zip(base_starts, base)]
    return {
        "users": bench.users,
        "tokens_per_user": bench.user_tokens,
        "ours": _users_summary(ours, ours_wall),
        "baseline_sequential": _users_summary(waited, base_wall),
    }


def _users_summary(runs: list[Run], wall: float) -> dict:
    """Aggregate tokens/s over the wall time; per user: tokens over that user's own submit-to-done time."""
    per_user = [r.tokens / r.total_s for r in runs]
    return {
        "wall_s": round(wall, 3),
        "aggregate_tokens_per_s": round(sum(r.tokens for r in runs) / wall, 1),
        "per_user_tokens_per_s_min": round(min(per_user), 1),
        "per_user_tokens_per_s_median": round(statistics.median(per_user), 1),
        "first_token_s_median": round(statistics.median(r.first_s for r in runs), 3),
        "first_token_s_max": round(max(r.first_s for r in runs), 3),
    }


def llm_pair(args: argparse.Namespace, cache_dir: Path) -> tuple[TransformersGenerator, object, dict]:
    """(our generator, the baseline's model, a description): the same weights, the baseline in its plain dtype."""
    from .archs import random_generator
    from ..models.device import resolve_device

    device = resolve_device(args.device)
    plain_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if args.random_weights:
        generator = random_generator(args.arch, device, plain_dtype)
    else:
        generator = TransformersGenerator.from_spec(args.llm, cache_dir, device, args.dtype)
    baseline = generator.model
    ours_dtype = getattr(torch, args.dtype) if args.dtype != "auto" else generator.model.dtype
    if generator.model.dtype != plain_dtype or ours_dtype != generator.model.dtype:
        baseline = copy.deepcopy(generator.model).to(plain_dtype)
        generator = TransformersGenerator(generator.model.to(ours_dtype), generator.tokenizer, generator.name)
    about = {
        "model": generator.name,
        "parameters": sum(p.numel() for p in generator.model.parameters()),
        "device": device,
        "ours": {"dtype": str(generator.model.dtype), "options": asdict(generator.options)},
        "baseline": {"dtype": str(baseline.dtype), "how": "model.generate, dynamic cache, eager (no compile)"},
    }
    started = time.perf_counter()
    generator.warm_up()
    about["ours"]["warm_up_s"] = round(time.perf_counter() - started, 2)
    return generator, baseline, about


def cpus() -> int:
    """CPU cores this process may run on."""
    from ..models.device import usable_cpus

    return usable_cpus()
