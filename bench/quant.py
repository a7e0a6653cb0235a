"""The same chat model in several GGUF quantization types, side by side in one run, through our llama.cpp backend.

python bench/quant.py THREADS GGUF... (e.g. 1 or 1,2; prints one JSON line per file: the first token of a
~540-token prompt, N = 1/4/8 latency for 64 tokens each with end of turn ignored, single-stream decode, 4 users
at once against one, a greedy Chinese reply, the load average; see docs/performance.md, "The llama.cpp engine").
Convert a file first with interactive_format.models.gguf_file.requantize_gguf(source, out, "Q4_0").
"""

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from interactive_format.llm.generator import SamplingParams
from interactive_format.llm.llamacpp import LlamaCppGenerator, LlamaCppOptions


def run(g, msgs, n, tokens, seed=0):
    p = SamplingParams(n=n, temperature=0.7, top_p=0.9, max_new_tokens=tokens, seed=seed)
    t0 = time.perf_counter()
    first = None
    for s in g.stream(msgs, p, threading.Event()):
        if first is None and any(d.text for d in s.drafts):
            first = time.perf_counter() - t0
    return first, time.perf_counter() - t0, max(len(d.token_ids) for d in s.drafts)


ctr = iter(range(10**6))


def m(text):
    return [{"role": "user", "content": f"({next(ctr)}) {text}"}]


SHORT = "Tell me a short story about a robot who learns to cook dinner for a family."
LONG = " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 36)
files = sys.argv[2:]
threads = [int(x) for x in sys.argv[1].split(",")]
res = {"load_start": os.getloadavg()}
for th in threads:
    for f in files:
        g = LlamaCppGenerator(f, options=LlamaCppOptions(threads=th, batch_threads=th, ignore_eos=True))
        run(g, m("Hi"), 1, 2)
        run(g, m("Hi"), 4, 2)
        r = {}
        pf = [run(g, m(LONG), 1, 2) for _ in range(2)]
        r["prefill_first_s"] = round(min(x[0] for x in pf), 3)
        for n in (1, 4, 8):
            xs = [run(g, m(SHORT), n, 64) for _ in range(2)]
            best = min(xs, key=lambda x: x[1])
            r[f"n{n}_s"] = round(best[1], 2)
            if n == 1:
                r["decode_tps"] = round((best[2] - 1) / (best[1] - best[0]), 1)
        r["n4/n1"] = round(r["n4_s"] / r["n1_s"], 2)
        r["n8/n1"] = round(r["n8_s"] / r["n1_s"], 2)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda k: run(g, m(SHORT), 1, 32, k), range(4)))
        r["users4_agg_tps"] = round(sum(o[2] for o in outs) / (time.perf_counter() - t0), 1)
        t0 = time.perf_counter()
        o = run(g, m(SHORT), 1, 32)
        r["users1_tps"] = round(o[2] / (time.perf_counter() - t0), 1)
        r["users4/1"] = round(r["users4_agg_tps"] / r["users1_tps"], 2)
        # greedy sanity
        gp = SamplingParams(n=1, temperature=0.0, max_new_tokens=24, seed=0)
        g.options = LlamaCppOptions(threads=th, ignore_eos=False)
        *_, s = g.stream([{"role": "user", "content": "请用一句话介绍北京。"}], gp, threading.Event())
        r["zh"] = s.drafts[0].text
        g.close()
        r["load"] = os.getloadavg()
        print(th, os.path.basename(f), json.dumps(r, ensure_ascii=False), flush=True)
