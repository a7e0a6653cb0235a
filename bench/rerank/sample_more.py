"""More candidates for the reranking measurement: other temperatures (the best-single-temperature baseline) and
extra samples at the app's temperature (N = 8), drawn like sample.py but with several prompts in flight at once.

    flock -s /tmp/cpu.lock python bench/rerank/sample_more.py embedded:qwen2.5-coder-0.5b --k 1 --temperature 0.3
    flock -s /tmp/cpu.lock python bench/rerank/sample_more.py embedded:qwen2.5-coder-0.5b --k 3 --seed 1014

Writes samples-<model>-t<T>-s<seed>.json beside this file (same rows as sample.py: text, J, finished, tokens);
a seed other than sample.py's gives candidates independent of the first K.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from interactive_format.backends import load_generator
from interactive_format.config import ModelsConfig, default_cache_dir
from interactive_format.sampling import SamplingParams

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("llm")
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--workers", type=int, default=8, help="prompts in flight at once (llama.cpp batches them)")
    args = p.parse_args()
    prompts = json.loads((HERE / "prompts.json").read_text())
    name = args.llm.removeprefix("embedded:").replace("/", "_")
    path = HERE / f"samples-{name}-t{args.temperature:g}-s{args.seed}.json"
    out = {"model": args.llm, "k": args.k, "max_new_tokens": args.tokens, "temperature": args.temperature,
           "seed": args.seed, "rows": []}  # fmt: skip
    generator = load_generator(ModelsConfig(llm=args.llm, llm_backend="llamacpp", cache_dir=default_cache_dir()), "cpu")

    def one(i: int) -> dict:
        q = prompts["prompts"][i]
        messages = [
            {"role": "system", "content": prompts["systems"][q["system"]]},
            {"role": "user", "content": q["text"]},
        ]
        params = SamplingParams(
            n=args.k, temperature=args.temperature, top_p=0.9, max_new_tokens=args.tokens, seed=args.seed + i
        )
        started = time.perf_counter()
        for sample in generator.stream(messages, params, threading.Event()):
            pass
        candidates = [
            {"text": d.text, "j": round(d.mean_logprob, 4), "finished": d.finished, "tokens": len(d.token_ids)}
            for d in sample.drafts
        ]
        return {**q, "seconds": round(time.perf_counter() - started, 2), "candidates": candidates}

    with ThreadPoolExecutor(args.workers) as pool:
        out["rows"] = list(pool.map(one, range(len(prompts["prompts"]))))
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    generator.close()
    print("->", path)


if __name__ == "__main__":
    main()
