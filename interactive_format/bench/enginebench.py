"""The engine part of the LLM benchmark: our llama.cpp backend beside the peer llama-server on the same GGUF,
and one text turn on the default chat model (`--turn-llm`); its printed rows and ratios."""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .llmbench import PROMPTS, LLMBench, Run, _median_run, _users_summary
from ..llm.sampling import SamplingParams


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
    """`python -m interactive_format.llm.llamacpp SPEC` (llama-server on 127.0.0.1) in its own process; (process, url)."""
    import socket
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "interactive_format.llm.llamacpp", spec, "--port", str(port),
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
    from ..llm.llamacpp import LlamaCppGenerator, LlamaCppOptions

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
    from ..llm.llamacpp import LlamaCppGenerator, LlamaCppOptions

    generator = LlamaCppGenerator.from_spec(spec, cache_dir, LlamaCppOptions(threads=threads, ignore_eos=True))
    bench = LLMBench()
    runs = []
    stream_run(generator, [{"role": "user", "content": "Hi"}], 1, 2, bench)  # untimed
    for i in range(repeats):
        messages = [{"role": "system", "content": "You are a helpful AI assistant."},
                    {"role": "user", "content": f"({i}) " + PROMPTS[i % len(PROMPTS)]}]  # fmt: skip
        runs.append(stream_run(generator, messages, n, tokens, bench))
    app = app_turns(generator, n, bench, repeats)
    generator.close()
    return {
        "model": spec, "candidates": n, "tokens": tokens,
        "first_token_s": round(statistics.median(r.first_s for r in runs), 3),
        "shown_reply_tokens_per_s": round(statistics.median(r.tokens / (r.total_s - r.first_s) for r in runs), 1),
        "turn_s": round(statistics.median(r.total_s for r in runs), 3),
        "app": app,
    }  # fmt: skip


def app_turns(generator, n: int, bench: LLMBench, repeats: int) -> dict:
    """The same turns as a user meets them: the app's default persona and token limit, end of turn honoured
    (a turn lasts as long as its longest candidate)."""
    from dataclasses import replace

    from ..config import GenerationConfig

    config = GenerationConfig()
    generator.options = replace(generator.options, ignore_eos=False)
    runs = []
    for i in range(repeats):
        messages = [{"role": "system", "content": config.system_prompt},
                    {"role": "user", "content": f"({i}) " + PROMPTS[i % len(PROMPTS)]}]  # fmt: skip
        runs.append(stream_run(generator, messages, n, config.max_new_tokens, bench, seed=i))
    return {
        "max_new_tokens": config.max_new_tokens,
        "first_token_s": round(statistics.median(r.first_s for r in runs), 3),
        "longest_reply_tokens": statistics.median(r.tokens for r in runs),
        "turn_s": round(statistics.median(r.total_s for r in runs), 3),
    }


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
    for turn in [llm["turn"], *llm.get("turn_compare", [])] if "turn" in llm else []:
        lines.append("text turn: " + json.dumps(turn))
    return lines
