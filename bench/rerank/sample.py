"""Sample the candidates the reranking measurement ranks: K replies per held-out prompt, as the app samples them.

    flock /tmp/bench.lock python bench/rerank/sample.py embedded:qwen2.5-coder-0.5b [--k 5] [--tokens 128]

Each prompt of prompts.json gets one request for K candidates (temperature 0.7, top-p 0.9, the app's
defaults) on our llama.cpp backend; every candidate's text, J (mean token log-prob), whether it
finished (False: cut by the token limit) and its token count go to samples-<model>-t<T>.json beside
this file. Prompts already in that file are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from interactive_format.backends import load_generator
from interactive_format.config import ModelsConfig, default_cache_dir
from interactive_format.sampling import SamplingParams

HERE = Path(__file__).resolve().parent


def messages_for(prompts: dict, q: dict) -> list[dict]:
    return [{"role": "system", "content": prompts["systems"][q["system"]]}, {"role": "user", "content": q["text"]}]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("llm")
    p.add_argument("--k", type=int, default=5, help="candidates per prompt (sample 0 = the single sample)")
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=14)
    args = p.parse_args()
    prompts = json.loads((HERE / "prompts.json").read_text())
    name = args.llm.removeprefix("embedded:").replace("/", "_")
    path = HERE / f"samples-{name}-t{args.temperature:g}.json"
    out = json.loads(path.read_text()) if path.exists() else {
        "model": args.llm, "k": args.k, "max_new_tokens": args.tokens, "temperature": args.temperature, "rows": []
    }  # fmt: skip
    done = {r["id"] for r in out["rows"]}
    generator = load_generator(ModelsConfig(llm=args.llm, llm_backend="llamacpp", cache_dir=default_cache_dir()), "cpu")
    for i, q in enumerate(prompts["prompts"]):
        if q["id"] in done:
            continue
        params = SamplingParams(
            n=args.k, temperature=args.temperature, top_p=0.9, max_new_tokens=args.tokens, seed=args.seed + i
        )
        started = time.perf_counter()
        for sample in generator.stream(messages_for(prompts, q), params, threading.Event()):
            pass
        seconds = round(time.perf_counter() - started, 2)
        candidates = [
            {"text": d.text, "j": round(d.mean_logprob, 4), "finished": d.finished, "tokens": len(d.token_ids)}
            for d in sample.drafts
        ]
        out["rows"].append({**q, "seconds": seconds, "candidates": candidates})
        path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
        print(f"[{q['id']}] {seconds:.1f}s {candidates[0]['text'][:100]!r}", flush=True)
    print("->", path)


if __name__ == "__main__":
    main()
