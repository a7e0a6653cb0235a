"""Speculative decoding on CPU: Qwen2.5-Coder-1.5B drafted by the 0.5B, against each model alone, one run.

    python bench/spec.py [--tokens 32] [--threads 1] [--configs plain-0.5b,plain-1.5b,spec-4-0.75,spec-2-0.5,plain-0.5b@2,plain-1.5b@2]

Every configuration answers the same prompts (3 from bench/quality, short personas) with the app's sampling
(temperature 0.7, top-p 0.9, fixed seeds; end of turn ignored so that every reply has `--tokens` tokens),
one candidate and then n = 4 in one request, through xllamacpp's in-process llama-server. `spec-K-P` is
llama.cpp's draft-model speculation (types DRAFT_SIMPLE): at most K drafted tokens a step, drafting stops
below the draft's probability P; a suffix "@T" runs that configuration with T threads. Acceptance = draft_n_accepted / draft_n from llama.cpp's own timings.
One greedy single-stream reply per speculative configuration shows the acceptance without sampling noise.
Prints one JSON object (docs/performance.md, "The llama.cpp engine").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from interactive_format.config import default_cache_dir
from interactive_format.models.gguf_file import gguf_path

HERE = Path(__file__).resolve().parent
PROMPTS = ("zh-talk-2", "en-talk-2", "en-travel-1")


def server(target: Path, draft: Path | None, threads: int, n_max: int = 0, p_min: float = 0.0):
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(target)
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = threads
    p.n_parallel, p.kv_unified, p.n_ctx = 4, True, 4096
    p.hostnames, p.port, p.verbosity = ["127.0.0.1"], 0, -1
    if draft is not None:
        p.speculative.types = [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
        d = p.speculative.draft
        d.mparams.path = str(draft)
        d.n_max, d.n_min, d.p_min = n_max, 0, p_min
        d.cpuparams.n_threads = d.cpuparams_batch.n_threads = threads
    return xllamacpp.Server(p)


def ask(s, messages: list[dict], n: int, tokens: int, seed: int, temperature: float = 0.7) -> dict:
    body = dict(
        messages=messages, n=n, max_tokens=tokens, seed=seed, temperature=temperature, top_p=0.9, top_k=0,
        min_p=0.0, repeat_penalty=1.0, ignore_eos=True, stream=False,
    )  # fmt: skip
    started = time.perf_counter()
    r = s.handle_chat_completions(body)
    seconds = time.perf_counter() - started
    timings = r.get("timings") or {}
    if isinstance(timings, list):  # one entry per choice
        timings = {k: sum(t.get(k, 0) for t in timings) for k in ("draft_n", "draft_n_accepted", "predicted_n")}
    return {
        "seconds": seconds,
        "tokens": r["usage"]["completion_tokens"],
        "draft_n": timings.get("draft_n", 0),
        "accepted": timings.get("draft_n_accepted", 0),
        "text": r["choices"][0]["message"]["content"],
    }


def measure(s, prompts: list[list[dict]], tokens: int, greedy: bool) -> dict:
    ask(s, [{"role": "user", "content": "Hi"}], 1, 4, 0)  # warm: weights paged in
    out = {}
    for n in (1, 4):
        runs = [ask(s, m, n, tokens, seed=7 + i) for i, m in enumerate(prompts)]
        seconds = sum(r["seconds"] for r in runs)
        drafted, accepted = sum(r["draft_n"] for r in runs), sum(r["accepted"] for r in runs)
        out[f"n{n}"] = {
            "seconds": round(seconds, 2),
            "tok_s": round(sum(r["tokens"] for r in runs) / seconds, 2),
            "acceptance": round(accepted / drafted, 3) if drafted else None,
            "drafted": drafted,
        }
    if greedy:
        r = [ask(s, m, 1, tokens, seed=7, temperature=0.0) for m in prompts]
        drafted = sum(x["draft_n"] for x in r)
        out["greedy_acceptance"] = round(sum(x["accepted"] for x in r) / drafted, 3) if drafted else None
        out["greedy_tok_s"] = round(sum(x["tokens"] for x in r) / sum(x["seconds"] for x in r), 2)
        out["greedy_sample"] = r[0]["text"][:120]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", default="plain-0.5b,plain-1.5b,spec-4-0.75,spec-2-0.5,plain-0.5b@2,plain-1.5b@2")
    args = ap.parse_args()
    quality = json.loads((HERE / "quality" / "prompts.json").read_text())
    by_id = {q["id"]: q for q in quality["prompts"]}
    prompts = [
        [
            {"role": "system", "content": quality["systems_short"][by_id[i]["system"]]},
            {"role": "user", "content": by_id[i]["text"]},
        ]
        for i in PROMPTS
    ]
    cache = default_cache_dir()
    small, big = gguf_path("embedded:qwen2.5-coder-0.5b", cache), gguf_path("embedded:qwen2.5-coder-1.5b", cache)
    result = {"tokens": args.tokens, "threads": args.threads, "prompts": PROMPTS, "load_start": os.getloadavg()}
    for name in args.configs.split(","):
        config, _, threads = name.partition("@")  # "@2": this configuration with 2 threads
        threads = int(threads or args.threads)
        if config.startswith("plain"):
            s = server(small if config.endswith("0.5b") else big, None, threads)
        else:
            _, k, p = config.split("-")
            s = server(big, small, threads, int(k), float(p))
        result[name] = measure(s, prompts, args.tokens, greedy=config.startswith("spec"))
        del s
        print(name, json.dumps(result[name], ensure_ascii=False), flush=True)
    result["load_end"] = os.getloadavg()
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
