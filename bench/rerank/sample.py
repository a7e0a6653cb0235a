"""Sample the candidates the reranking measurement ranks, as the app samples them, several prompts in flight.

    flock -s /tmp/cpu.lock env PYTHONPATH=. python bench/rerank/sample.py embedded:qwen2.5-coder-0.5b --k 8 --workers 2
    flock -s /tmp/cpu.lock env PYTHONPATH=. python bench/rerank/sample.py embedded:qwen2.5-coder-0.5b --k 1 \
        --temperature 0.3 --workers 16
    flock -x /tmp/cpu.lock env PYTHONPATH=. python bench/rerank/sample.py embedded:qwen2.5-coder-1.5b --k 8 \
        --workers 2 --out bench/labels/pending

K candidates per held-out prompt of prompts.json in one request (sample 0 = the single sample), on our
llama.cpp backend with the app's settings: temperature 0.7 (or another, for the best-temperature baseline),
top-p 0.9, 128 tokens, and the app's current system prompt for the prompt's persona (system_texts: the
default, or a shipped flow's). Every candidate's text, J (mean token log-prob), whether it finished (False:
cut by the token limit) and its token count go to samples-<model>-t<T>-s<seed>.json beside this file (or in
--out, e.g. bench/labels/pending/ for a pool that awaits labels), with the system prompts used, after every
prompt; prompts already in the file are skipped, so an interrupted run resumes (zh and en alternate: a run
stopped early has both). Another seed gives independent candidates.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from interactive_format.llm.backends import load_generator
from interactive_format.config import ModelsConfig, default_cache_dir
from interactive_format.llm.sampling import SamplingParams

HERE = Path(__file__).resolve().parent


def system_texts(prompts: dict) -> dict[str, str]:
    """Each persona of prompts.json as the app ships it now: "" is the app's default system prompt, any other
    name a shipped flow's persona (assets/flows/<name>.toml); so the samples follow the app's current prompts."""
    from interactive_format.config import GenerationConfig
    from interactive_format.flows import FLOWS_DIR
    from interactive_format.settings.flow_file import load_flow

    default = GenerationConfig().system_prompt
    return {k: (load_flow(FLOWS_DIR / f"{v}.toml").persona or default) if v else default
            for k, v in prompts["personas"].items()}  # fmt: skip


def messages_for(systems: dict[str, str], q: dict) -> list[dict]:
    return [{"role": "system", "content": systems[q["system"]]}, {"role": "user", "content": q["text"]}]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("llm")
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--workers", type=int, default=2, help="prompts in flight at once (llama.cpp batches them)")
    p.add_argument("--limit", type=int, default=0, help="only prompts numbered up to LIMIT (0: all)")
    p.add_argument("--out", type=Path, default=HERE, help="folder of the samples file (default: beside this file)")
    args = p.parse_args()
    prompts = json.loads((HERE / "prompts.json").read_text())
    systems = system_texts(prompts)
    name = args.llm.removeprefix("embedded:").replace("/", "_")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"samples-{name}-t{args.temperature:g}-s{args.seed}.json"
    out = json.loads(path.read_text()) if path.exists() else {
        "model": args.llm, "k": args.k, "max_new_tokens": args.tokens, "temperature": args.temperature,
        "seed": args.seed, "systems": systems, "rows": []
    }  # fmt: skip
    if out.get("systems") != systems or out["k"] != args.k:
        raise SystemExit(f"{path} was sampled with other system prompts or K; move it away first")
    done = {r["id"] for r in out["rows"]}
    order = {q["id"]: i for i, q in enumerate(prompts["prompts"])}  # the seed follows the prompt, not the run
    number = lambda q: int(q["id"].split("-")[1])  # noqa: E731
    todo = sorted((q for q in prompts["prompts"] if q["id"] not in done), key=lambda q: (number(q), q["lang"]))
    if args.limit:
        todo = [q for q in todo if number(q) <= args.limit]
    generator = load_generator(ModelsConfig(llm=args.llm, llm_backend="llamacpp", cache_dir=default_cache_dir()), "cpu")
    lock = threading.Lock()

    def one(q: dict) -> None:
        params = SamplingParams(
            n=args.k,
            temperature=args.temperature,
            top_p=0.9,
            max_new_tokens=args.tokens,
            seed=args.seed + order[q["id"]],
        )
        started = time.perf_counter()
        for sample in generator.stream(messages_for(systems, q), params, threading.Event()):
            pass
        candidates = [
            {"text": d.text, "j": round(d.mean_logprob, 4), "finished": d.finished, "tokens": len(d.token_ids)}
            for d in sample.drafts
        ]
        with lock:
            out["rows"].append({**q, "seconds": round(time.perf_counter() - started, 2), "candidates": candidates})
            out["rows"].sort(key=lambda r: order[r["id"]])
            path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
        print(f"[{q['id']}] {time.perf_counter() - started:.1f}s {candidates[0]['text'][:80]!r}", flush=True)

    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(one, todo))
    generator.close()
    print("->", path)


if __name__ == "__main__":
    main()
