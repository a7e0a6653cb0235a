"""Replies of one chat model to the fixed prompt set (prompts.json), as the app would show them.

    python bench/quality/run.py embedded:qwen2.5-coder-0.5b [--backend llamacpp] [--n 4] [--tokens 128]
        [--systems systems_short] [--tag short] [--only zh-home,en-home] [--system home=TEXT]
        [--temperature 0.7] [--top-p 0.9] [--engine '{"min_p": 0.05}']

Samples N candidates per prompt with the app's defaults (temperature 0.7, top-p 0.9), ranks them with
the app's Reranker (fewest defects first, then λ·D + (1−λ)·J with the shipped discriminator) and writes
every candidate with its J, D, token count and detected defects, and the shown one, to
replies-<model>[-<tag>].json beside this file. `--systems` picks the personas (prompts.json's "systems",
or "systems_short": the same with a short-answer instruction). Defects are counted by reading the
shown replies (README.md here). `--only` keeps the prompts whose id starts with one of the prefixes
(a quick look, not a table row); `--system KEY=TEXT` replaces one persona (recorded in the file, and
rank.py uses it); `--temperature` / `--top-p` and `--engine` (extra llama.cpp request fields such as
min_p, repeat_penalty, presence_penalty; recorded) are for trying sampling settings one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

from interactive_format.llm.backends import load_generator
from interactive_format.config import ModelsConfig, default_cache_dir
from interactive_format.dialogue import Candidate, context_text
from interactive_format.ranking.ranking import Reranker
from interactive_format.ranking.discriminator import load_discriminator
from interactive_format.llm.sampling import SamplingParams

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("llm")
    p.add_argument("--backend", default="llamacpp")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--systems", default="systems", help='the personas: "systems" or "systems_short" (prompts.json)')
    p.add_argument("--tag", default="", help="a suffix for the output file, e.g. short")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default="", help="comma-separated id prefixes: sample only these prompts")
    p.add_argument("--system", action="append", default=[], help="KEY=TEXT: replace one persona")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--engine", default="{}", help="JSON: extra llama.cpp request fields, e.g. min_p")
    args = p.parse_args()
    prompts = json.loads((HERE / "prompts.json").read_text())
    overrides = dict(x.split("=", 1) for x in args.system)
    systems = {**prompts[args.systems], **overrides}
    engine = json.loads(args.engine)
    only = tuple(x for x in args.only.split(",") if x)
    models = ModelsConfig(
        llm=args.llm, llm_backend=args.backend, cache_dir=default_cache_dir(), llm_threads=args.threads
    )
    generator = load_generator(models, "cpu")
    if engine:  # the bench's hook for sampling settings the app does not expose
        request = generator.request
        generator.request = lambda prompt, params, seed: {**request(prompt, params, seed), **engine}
    d = load_discriminator(models.discriminator, "cpu")
    reranker = Reranker(d, float(d.meta.get("lam", 0.5)) if d else 0.5)
    rows = []
    for i, q in enumerate(prompts["prompts"]):
        if only and not q["id"].startswith(only):
            continue
        messages = [
            {"role": "system", "content": systems[q["system"]]},
            {"role": "user", "content": q["text"]},
        ]
        params = SamplingParams(
            n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.tokens, seed=args.seed + i
        )
        started = time.perf_counter()
        for sample in generator.stream(messages, params, threading.Event()):
            pass
        seconds = time.perf_counter() - started
        candidates = [Candidate(x.text, x.mean_logprob, finished=x.finished) for x in sample.drafts]
        lengths = [len(x.token_ids) for x in sample.drafts]
        order = reranker.rank(context_text(messages), candidates)
        rows.append(
            {
                **q,
                "shown": candidates[order[0]].text,
                "shown_d": candidates[order[0]].d,
                "shown_defects": candidates[order[0]].defects,
                "seconds": round(seconds, 2),
                "candidates": [
                    {
                        "text": c.text,
                        "j": round(c.j, 4),
                        "d": c.d,
                        "finished": c.finished,
                        "tokens": k,
                        "defects": c.defects,
                    }
                    for c, k in zip(candidates, lengths)
                ],
            }
        )
        print(f"[{q['id']}] {candidates[order[0]].text[:160]!r}", flush=True)
    ds = [c["d"] for r in rows for c in r["candidates"] if c["d"] is not None]
    out = {
        "model": args.llm,
        "backend": args.backend,
        "n": args.n,
        "max_new_tokens": args.tokens,
        "systems": args.systems,
        **({"system_overrides": overrides} if overrides else {}),
        "temperature": args.temperature,
        "top_p": args.top_p,
        **({"engine": engine} if engine else {}),
        **({"only": list(only)} if only else {}),
        "threads": args.threads,
        "load": [round(x, 2) for x in os.getloadavg()],
        "mean_d": round(statistics.mean(ds), 4) if ds else None,
        "mean_d_shown": round(statistics.mean(r["shown_d"] for r in rows if r["shown_d"] is not None), 4)
        if ds
        else None,
        "seconds_median": statistics.median(r["seconds"] for r in rows),
        "shown_detected": {
            lang: sum(bool(r["shown_defects"]) for r in rows if r["lang"] == lang) for lang in ("zh", "en")
        },
        "replies": rows,
    }
    name = args.llm.removeprefix("embedded:").replace("/", "_") + (f"-{args.tag}" if args.tag else "")
    path = HERE / f"replies-{name}.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print("mean D", out["mean_d"], "->", path)


if __name__ == "__main__":
    main()
