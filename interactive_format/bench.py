"""python -m interactive_format.bench — speed measured side by side in one run, written as JSON.

`all` (the default) runs every part below in one process and writes one JSON file under
bench/results/ named after the device, the model and the date:

- `llm`: our generator (TransformersGenerator: shared prefill, static cache + compiled decode
  on CUDA, request batching) against plain eager `model.generate` on the same weights: time to
  first token for a long prompt, single-stream decode tokens/s, the latency of N = 1/4/8
  candidates (ratio to N = 1), and 16 users at once (aggregate and per-user tokens/s).
  `--arch NAME --random-weights` builds a published architecture with random weights instead.
- `speech`: our Whisper path (Transcriber) against plain `whisper.transcribe`, real-time factor.
- `vision`: picture description latency.
- `turns`: median latency of text, picture and voice turns through the running app's `chat`
  API (gradio_client, loopback), N candidates each, on the configured (default: embedded) models.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .config import load_config
from .engines import build_engine
from .errors import DEV_LOCK, missing_package
from .generator import TransformersGenerator
from .sampling import SamplingParams

PROMPTS = [
    "Hello! Can you recommend a good book?",
    "What should I cook for dinner tonight?",
    "Tell me a fun fact about space.",
    "How do I stay focused while studying?",
    "What is a good name for a goldfish?",
]
SPOKEN = [
    "What is the weather like today?",
    "Can you tell me a joke?",
    "How far away is the moon?",
    "What time should I go to bed?",
    "Please suggest a weekend activity.",
]


def _media(folder: Path) -> tuple[Path, list[Path]]:
    from PIL import Image
    from skimage import data

    picture = folder / "coffee.png"
    Image.fromarray(data.coffee()).save(picture)
    clips = []
    for i, sentence in enumerate(SPOKEN):
        clips.append(folder / f"voice{i}.wav")
        subprocess.run(["espeak-ng", "-w", str(clips[-1]), sentence], check=True, capture_output=True)
    return picture, clips


def bench_turns(n: int, max_new_tokens: int, repeats: int) -> dict:
    from gradio_client import Client, handle_file

    from .store import Store
    from .ui import build_demo

    config = load_config()
    start = time.perf_counter()
    engine = build_engine(config)
    load_s = time.perf_counter() - start
    demo = build_demo(engine, Store(":memory:"))  # the chat API keeps nothing anyway
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False)
    results: dict[str, list[float]] = {"text": [], "picture": [], "voice": []}
    first_token: dict[str, list[float]] = {k: [] for k in results}
    after_submit: dict[str, list[float]] = {k: [] for k in results}
    with tempfile.TemporaryDirectory() as tmp:
        picture, clips = _media(Path(tmp))
        for i in range(repeats):
            cases = {
                "text": dict(message=PROMPTS[i % 5], image=None, audio=None),
                "picture": dict(message="What is in this picture?", image=handle_file(str(picture)), audio=None),
                "voice": dict(message="", image=None, audio=handle_file(str(clips[i % 5]))),
            }
            for kind, args in cases.items():
                t = time.perf_counter()
                out = client.predict(
                    **args, candidates=n, temperature=0.7, max_new_tokens=max_new_tokens, api_name="/chat"
                )
                results[kind].append(time.perf_counter() - t)
                first_token[kind].append(out["meta"]["first_token_ms"] / 1000)
                # what the engine did not time (HTTP, queue, reading the input) happened before its first token
                outside = results[kind][-1] - out["meta"]["ms"] / 1000
                after_submit[kind].append(outside + first_token[kind][-1])
    demo.close()
    return {
        "benchmark": "turn latency through the chat API",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": _cpus()},
        "models": {"llm": config.models.llm, "asr": config.models.asr, "captioner": config.models.captioner},
        "candidates": n,
        "max_new_tokens": max_new_tokens,
        "engine_load_s": round(load_s, 2),
        "median_s": {k: round(statistics.median(v), 3) for k, v in results.items()},
        "median_first_token_after_reading_s": {k: round(statistics.median(v), 3) for k, v in first_token.items()},
        "median_first_token_after_submit_s": {k: round(statistics.median(v), 3) for k, v in after_submit.items()},
        "all_s": {k: [round(x, 3) for x in v] for k, v in results.items()},
    }


# --- LLM: our generator against plain eager generate ------------------------------------------


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
    from .models import resolve_device

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


# --- LLM engines on the same GGUF: our llama.cpp backend, our transformers backend, the peer server -----


def stream_run(generator, messages: list[dict], n: int, tokens: int, bench: LLMBench, seed: int | None = None) -> Run:
    """Any `Generator.stream`, timed from the call to the first streamed token and to the last sample."""
    params = SamplingParams(n=n, temperature=bench.temperature, top_p=bench.top_p, max_new_tokens=tokens, seed=seed)
    started, first = time.perf_counter(), None
    for sample in generator.stream(messages, params, threading.Event()):
        if first is None and any(d.text for d in sample.drafts):
            first = time.perf_counter() - started
    return Run(first or 0.0, time.perf_counter() - started, max(len(d.token_ids) for d in sample.drafts))


def peer_run(url: str, messages: list[dict], n: int, tokens: int, bench: LLMBench, seed: int = 0) -> Run:
    """The peer as a user runs it: llama-server's /v1/chat/completions, streamed, with `n` and `logprobs`."""
    import httpx

    body = dict(
        messages=messages, n=n, max_tokens=tokens, temperature=bench.temperature, top_p=bench.top_p, seed=seed,
        logprobs=True, top_logprobs=1, stream=True, ignore_eos=True,
    )  # fmt: skip
    started, first, counts = time.perf_counter(), None, [0] * n
    with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=600) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                if (choice.get("delta") or {}).get("content") and first is None:
                    first = time.perf_counter() - started
                counts[choice.get("index", 0)] += len((choice.get("logprobs") or {}).get("content") or [])
    return Run(first or 0.0, time.perf_counter() - started, max(counts))


def _unique(messages: list[dict], i: int) -> list[dict]:
    """`messages` with a run number in front, so that no run reuses the prompt cache of the one before."""
    return [{**messages[0], "content": f"({i}) " + messages[0]["content"]}, *messages[1:]]


def _engine_metrics(run, long: list[dict], short: list[dict], bench: LLMBench, users: tuple[int, ...]) -> dict:
    """First token, single-stream decode, N candidates and users at once for one engine (`run(messages, n, tokens)`)."""
    counter = iter(range(10**6))

    def median(messages, n, tokens):
        return _median_run([run(_unique(messages, next(counter)), n, tokens) for _ in range(bench.repeats)])

    run(_unique(short, next(counter)), 1, 2)  # untimed: first-call setup
    result = {
        "time_to_first_token": median(long, 1, 2),
        "decode_single_stream": median(short, 1, bench.decode_tokens),
        "candidates": {str(n): median(short, n, bench.decode_tokens) for n in bench.candidates},
    }
    for k in users:
        chats = [_unique(short, next(counter)) for _ in range(k)]
        started = time.perf_counter()
        with ThreadPoolExecutor(k) as pool:
            runs = list(pool.map(lambda m: run(m, 1, bench.user_tokens), chats))
        result[f"users_{k}"] = _users_summary(runs, time.perf_counter() - started)
    return result


def peer_server(spec: str, cache_dir: Path, threads: int):
    """`python -m interactive_format.llamacpp SPEC` (llama-server on 127.0.0.1) in its own process; (process, url)."""
    import socket
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "interactive_format.llamacpp", spec, "--port", str(port),
               "--threads", str(threads), "--cache-dir", str(cache_dir)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the peer llama-server did not start")


def bench_engines(spec: str, cache_dir: Path, bench: LLMBench, threads: int, long, short) -> dict:
    """Our llama.cpp backend and the peer llama-server on the same GGUF, the same prompts and sizes."""
    from .llamacpp import LlamaCppGenerator, LlamaCppOptions

    users = (1, 4, bench.users)
    options = LlamaCppOptions(threads=threads, batch_threads=threads, ignore_eos=True)
    ours = LlamaCppGenerator.from_spec(spec, cache_dir, options)
    result = {"threads": threads, "gguf": str(ours.gguf)}
    result["llamacpp"] = _engine_metrics(
        lambda m, n, t: stream_run(ours, m, n, t, bench, seed=0), long, short, bench, users
    )
    result["llamacpp"]["n_vs_naive_parallel"] = n_vs_naive(ours, short, bench)
    ours.close()
    process, url = peer_server(spec, cache_dir, threads)
    try:
        result["peer"] = _engine_metrics(lambda m, n, t: peer_run(url, m, n, t, bench), long, short, bench, users)
    finally:
        process.kill()
        process.wait()
    result["peer"]["how"] = "llama-server (xllamacpp) /v1/chat/completions on 127.0.0.1, stream, n, logprobs"
    return result


def n_vs_naive(generator, short: list[dict], bench: LLMBench) -> dict:
    """N candidates as one request with "n": N (the prompt shared by the child slots) against N requests of one
    candidate sent at once (the prompt evaluated N times); medians of wall seconds."""
    counter = iter(range(10**6))
    out = {}
    for n in bench.candidates:
        if n == 1:
            continue
        one = [stream_run(generator, _unique(short, next(counter)), n, bench.decode_tokens, bench).total_s
               for _ in range(bench.repeats)]  # fmt: skip
        naive = []
        for _ in range(bench.repeats):
            messages, started = _unique(short, next(counter)), time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(lambda k: stream_run(generator, messages, 1, bench.decode_tokens, bench, k), range(n)))
            naive.append(time.perf_counter() - started)
        out[str(n)] = {
            "one_request_s": round(statistics.median(one), 3),
            "naive_parallel_s": round(statistics.median(naive), 3),
        }
    return out


def bench_turn(spec: str, cache_dir: Path, threads: int, n: int = 4, tokens: int = 96, repeats: int = 3) -> dict:
    """A text turn on the default chat model through our llama.cpp backend: N candidates × `tokens` each
    (end of turn ignored: the worst case), the shown reply's stream rate and the whole turn."""
    from .llamacpp import LlamaCppGenerator, LlamaCppOptions

    generator = LlamaCppGenerator.from_spec(spec, cache_dir, LlamaCppOptions(threads=threads, ignore_eos=True))
    bench = LLMBench()
    runs = []
    stream_run(generator, [{"role": "user", "content": "Hi"}], 1, 2, bench)  # untimed
    for i in range(repeats):
        messages = [{"role": "system", "content": "You are a helpful AI assistant."},
                    {"role": "user", "content": f"({i}) " + PROMPTS[i % len(PROMPTS)]}]  # fmt: skip
        runs.append(stream_run(generator, messages, n, tokens, bench))
    generator.close()
    return {
        "model": spec, "candidates": n, "tokens": tokens,
        "first_token_s": round(statistics.median(r.first_s for r in runs), 3),
        "shown_reply_tokens_per_s": round(statistics.median(r.tokens / (r.total_s - r.first_s) for r in runs), 1),
        "turn_s": round(statistics.median(r.total_s for r in runs), 3),
    }  # fmt: skip


def ratios(llm: dict) -> dict:
    """The engine comparison's headline ratios (same run, same weights)."""
    e = llm["engines"]
    ours, peer = e["llamacpp"], e["peer"]
    decode = ours["decode_single_stream"]["decode_tokens_per_s"]
    n1, peer_n1 = ours["candidates"]["1"]["total_s"], peer["candidates"]["1"]["total_s"]
    many = f"users_{llm['sizes']['users']}"
    return {
        "decode_vs_peer": round(decode / peer["decode_single_stream"]["decode_tokens_per_s"], 2),
        "decode_vs_transformers": round(decode / llm["decode_single_stream"]["ours"]["decode_tokens_per_s"], 2),
        "first_token_peer_over_ours": round(
            peer["time_to_first_token"]["first_token_s"] / ours["time_to_first_token"]["first_token_s"], 2
        ),
        **{f"n{n}_latency_over_n1": round(c["total_s"] / n1, 2) for n, c in ours["candidates"].items()},
        **{f"peer_n{n}_latency_over_n1": round(c["total_s"] / peer_n1, 2) for n, c in peer["candidates"].items()},
        **{
            f"{k}_aggregate_over_1_user": round(
                ours[k]["aggregate_tokens_per_s"] / ours["users_1"]["aggregate_tokens_per_s"], 2
            )
            for k in ("users_4", many)
        },
        "users_4_aggregate_vs_peer": round(
            ours["users_4"]["aggregate_tokens_per_s"] / peer["users_4"]["aggregate_tokens_per_s"], 2
        ),
    }


def engine_lines(llm: dict) -> list[str]:
    """Printed rows: our llama.cpp backend beside the peer llama-server, then the ratios and the turn."""
    lines = []
    if "engines" in llm:
        e, many = llm["engines"], f"users_{llm['sizes']['users']}"
        lines.append(f"{'llama.cpp engines (same GGUF)':<34} {'ours':>10} {'peer':>10}")
        pairs = [("first token, s", ("time_to_first_token", "first_token_s")),
                 ("decode tokens/s, 1 stream", ("decode_single_stream", "decode_tokens_per_s"))]  # fmt: skip
        for name, (part, key) in pairs:
            lines.append(f"{name:<34} {e['llamacpp'][part][key]!s:>10} {e['peer'][part][key]!s:>10}")
        for n in e["llamacpp"]["candidates"]:
            a, b = e["llamacpp"]["candidates"][n]["total_s"], e["peer"]["candidates"][n]["total_s"]
            lines.append(f"{f'N={n} latency, s':<34} {a!s:>10} {b!s:>10}")
        for k in ("users_1", "users_4", many):
            a, b = e["llamacpp"][k]["aggregate_tokens_per_s"], e["peer"][k]["aggregate_tokens_per_s"]
            lines.append(f"{k.replace('_', ' ') + ' aggregate tok/s':<34} {a!s:>10} {b!s:>10}")
        lines.append("ratios: " + json.dumps(llm["ratios"]))
    if "turn" in llm:
        lines.append("text turn: " + json.dumps(llm["turn"]))
    return lines


# --- speech and pictures ----------------------------------------------------------------------

SPEECH = [  # about 5 s each at espeak-ng speed 140
    "Could you please tell me what the weather will be like tomorrow morning in the city?",
    "I would like to know how far away the moon is from the earth, roughly speaking.",
    "Please suggest a fun activity that my family can do together this weekend.",
]


def spoken_clips(folder: Path, sentences: list[str], speed: int = 140) -> list[Path]:
    """espeak-ng recordings of `sentences` (real synthesized speech, 22 kHz WAV)."""
    clips = []
    for i, sentence in enumerate(sentences):
        clips.append(folder / f"speech{i}.wav")
        cmd = ["espeak-ng", "-s", str(speed), "-w", str(clips[-1]), sentence]
        subprocess.run(cmd, check=True, capture_output=True)
    return clips


def bench_speech(spec: str, cache_dir: Path, device: str, repeats: int) -> dict:
    """Our Transcriber (file to text) against plain `whisper.transcribe` on the same loaded model and audio."""
    from .speech import Transcriber, decode_audio

    transcriber = Transcriber(spec, cache_dir, device)
    model = transcriber.load()
    ours, plain, seconds = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        clips = spoken_clips(Path(tmp), SPEECH)
        transcriber.transcribe(clips[0])  # untimed: first-call setup
        for _ in range(repeats):
            for clip in clips:
                audio = decode_audio(clip, transcriber.limits)
                seconds.append(len(audio) / 16_000)
                ours.append(_timed(transcriber.transcribe, clip))
                with torch.inference_mode():
                    plain.append(_timed(model.transcribe, audio, fp16=device != "cpu", verbose=None))
    audio_s = statistics.median(seconds)
    return {
        "model": spec,
        "clip_seconds_median": round(audio_s, 2),
        "ours": {
            "seconds_median": round(statistics.median(ours), 3),
            "x_real_time": round(audio_s / statistics.median(ours), 1),
        },
        "baseline": {
            "how": "whisper model.transcribe(audio) with its defaults",
            "seconds_median": round(statistics.median(plain), 3),
            "x_real_time": round(audio_s / statistics.median(plain), 1),
        },
        "speedup": round(statistics.median(plain) / statistics.median(ours), 2),
    }


def bench_vision(spec: str, cache_dir: Path, device: str, repeats: int) -> dict:
    """Median time to describe a real photo (decoding the file included)."""
    from PIL import Image
    from skimage import data

    from .vision import Captioner

    captioner = Captioner(spec, cache_dir, device)
    with tempfile.TemporaryDirectory() as tmp:
        picture = Path(tmp) / "coffee.png"
        Image.fromarray(data.coffee()).save(picture)
        captioner.describe(picture)  # untimed: first-call setup
        times = [_timed(captioner.describe, picture) for _ in range(repeats)]
    return {"model": spec, "seconds_median": round(statistics.median(times), 4)}


def _timed(call, *args, **kwargs) -> float:
    """Seconds that `call(*args, **kwargs)` took."""
    started = time.perf_counter()
    call(*args, **kwargs)
    return time.perf_counter() - started


# --- running it ---------------------------------------------------------------------------------


def device_tag(device: str) -> str:
    """'cpu2' (cores) or the GPU's name in lower case ('nvidia-h200'), for file names."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device)).lower().replace(" ", "-")
    return f"cpu{_cpus()}"


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor(), "cpus": _cpus()}
    info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(), load_average=os.getloadavg())
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_parts(args: argparse.Namespace) -> dict:
    """Run the chosen parts in this process; the result as one JSON-ready dict."""
    from .models import resolve_device

    config = load_config()
    cache_dir = config.models.cache_dir
    device = resolve_device(args.device)
    parts = ("llm", "speech", "vision", "turns") if args.part == "all" else (args.part,)
    result: dict = {"command": "python -m interactive_format.bench " + " ".join(args.argv), "machine": machine()}
    result["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if "llm" in parts:
        generator, baseline, about = llm_pair(args, cache_dir)
        result["llm"] = {**about, "sizes": asdict(bench := LLMBench.for_device(device, args.quick))}
        result["llm"].update(bench_llm(generator, baseline, bench))
        if args.engines and not args.random_weights and device == "cpu":
            long, short = prompt_of(generator, bench.prompt_tokens), prompt_of(generator, 32)
            result["llm"]["engines"] = bench_engines(args.llm, cache_dir, bench, args.threads, long, short)
            result["llm"]["ratios"] = ratios(result["llm"])
        if args.turn_llm and device == "cpu":
            result["llm"]["turn"] = bench_turn(args.turn_llm, cache_dir, args.threads)
        del generator, baseline
    if "speech" in parts:
        result["speech"] = bench_speech(args.asr or config.models.asr, cache_dir, device, args.repeats)
    if "vision" in parts:
        result["vision"] = bench_vision(config.models.captioner, cache_dir, device, args.repeats)
    if "turns" in parts:
        result["turns"] = bench_turns(args.candidates, args.max_new_tokens, args.repeats)
    return result


def summary(result: dict) -> list[str]:
    """Lines 'metric  ours  baseline  speedup' for the printed table."""
    rows = []
    llm = result.get("llm")
    if llm:
        for name, key, better in (
            ("time to first token, s (N=1)", "time_to_first_token", False),
            ("time to first token, s (N=4)", "time_to_first_token_n4", False),
        ):
            rows.append((name, side_by_side(llm[key]["ours"], llm[key]["baseline"], "first_token_s", better)))
        d = llm["decode_single_stream"]
        rows.append(("decode tokens/s, 1 stream", side_by_side(d["ours"], d["baseline"], "decode_tokens_per_s", True)))
        one = llm["candidates"][min(llm["candidates"], key=int)]
        for n, c in llm["candidates"].items():
            rows.append((f"N={n} latency, s", side_by_side(c["ours"], c["baseline"], "total_s", False)))
            ratio = {side: round(c[side]["total_s"] / one[side]["total_s"], 2) for side in ("ours", "baseline")}
            rows.append((f"N={n} latency / N=1", {**ratio, "speedup": None}))
        u = llm["concurrent_users"]
        for key, name in (("aggregate_tokens_per_s", "aggregate"), ("per_user_tokens_per_s_min", "slowest user")):
            row = side_by_side(u["ours"], u["baseline_sequential"], key, True)
            rows.append((f"{u['users']} users, {name} tokens/s", row))
    if "speech" in result:
        sp = result["speech"]
        rows.append(("speech, × real time", side_by_side(sp["ours"], sp["baseline"], "x_real_time", True)))
    lines = [f"{'metric':<34} {'ours':>10} {'baseline':>10} {'speedup':>8}"]
    for name, row in rows:
        lines.append(f"{name:<34} {row['ours']!s:>10} {row['baseline']!s:>10} {row['speedup'] or '':>8}")
    if llm:
        lines += engine_lines(llm)
    if "vision" in result:
        lines.append(f"{'picture description, s':<34} {result['vision']['seconds_median']!s:>10}")
    if "turns" in result:
        lines.append(f"{'turn latency via the app, s':<34} {json.dumps(result['turns']['median_s'])}")
        first = result["turns"]["median_first_token_after_submit_s"]
        lines.append(f"{'first token after submit, s':<34} {json.dumps(first)}")
    return lines


def default_out(args: argparse.Namespace, device: str) -> Path:
    model = args.arch if args.random_weights else args.llm.removeprefix("embedded:").replace("/", "_")
    day = datetime.date.today().isoformat()
    return (
        Path("bench/results")
        / f"{args.part}-{device_tag(device)}-{model}{'-random' if args.random_weights else ''}-{day}.json"
    )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def main(argv: list[str] | None = None) -> Path:
    import sys

    from .archs import ARCHS
    from .models import resolve_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", nargs="?", default="all", choices=("all", "llm", "speech", "vision", "turns"))
    p.add_argument("--llm", default="embedded:smollm2-135m", help="chat model spec (without --random-weights)")
    p.add_argument("--arch", default="smollm2-135m", choices=sorted(ARCHS), help="shape for --random-weights")
    p.add_argument("--random-weights", action="store_true", help="the --arch shape with random weights")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="our generator's dtype (the baseline keeps its plain one)")
    p.add_argument("--asr", default=None, help="speech model spec (default: the configured one)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (the tests)")
    p.add_argument("--candidates", type=int, default=4, help="turns: N")
    p.add_argument("--max-new-tokens", type=int, default=128, help="turns: reply length")
    p.add_argument("--repeats", type=int, default=5, help="speech/vision/turns: runs per case")
    p.add_argument("--no-engines", dest="engines", action="store_false",
                   help="llm: skip our llama.cpp backend and the peer llama-server (CPU, GGUF specs)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads (ours and the peer)")
    p.add_argument("--turn-llm", default="", help="llm: also time a 4 × 96-token text turn on this model (llama.cpp)")
    p.add_argument("--out", default=None, help="JSON path (default: bench/results/PART-DEVICE-MODEL-DATE.json)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result = run_parts(args)
    except ModuleNotFoundError as e:  # e.g. scikit-image (the sample pictures) without the dev lock
        raise SystemExit(f"bench: {missing_package(e, 'The benchmark', DEV_LOCK)}") from None
    out = Path(args.out) if args.out else default_out(args, resolve_device(args.device))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(summary(result)))
    print("->", out)
    return out


if __name__ == "__main__":
    main()
