"""llama.cpp's threads on this machine: 1 thread, one per core unpinned, and one per core pinned to its core
(the app's default, `device.llm_threads` / `llm_pinned_cpus`), each idle and while one or two other processes
keep a core busy (a busy loop each), for one candidate and for four (one request, n = 4).

PYTHONPATH=. python bench/threads.py [GGUF] [--tokens 48] [--out bench/results/threads-....json]
(default GGUF: the app's default chat model, joined in the cache; see docs/performance.md)
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from interactive_format.config import default_cache_dir
from interactive_format.llm.llamacpp import LlamaCppOptions, start_server
from interactive_format.models.device import affinity
from interactive_format.models.gguf_file import gguf_path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("gguf", nargs="?", default="embedded:qwen2.5-coder-1.5b")
parser.add_argument("--tokens", type=int, default=48)
parser.add_argument("--out", type=Path)
args = parser.parse_args()
model = gguf_path(args.gguf, default_cache_dir()) if not args.gguf.endswith(".gguf") else Path(args.gguf)
cpus = tuple(sorted(affinity()))
arms = {"1 thread": LlamaCppOptions(threads=1, batch_threads=1),
        f"{len(cpus)} threads": LlamaCppOptions(threads=len(cpus), batch_threads=len(cpus)),
        f"{len(cpus)} threads pinned": LlamaCppOptions(threads=len(cpus), batch_threads=len(cpus), cpus=cpus)}  # fmt: skip
result = {"model": str(model.name), "cpus": len(cpus), "tokens": args.tokens, "load_average_start": os.getloadavg(),
          "how": "seconds for one completion of `tokens` tokens (end of turn ignored, T 0.7, seed 1), n = 1 and n = 4 "
                 "in one request; 'busy k': k other processes each in a busy loop", "seconds": {}}  # fmt: skip
for name, options in arms.items():
    server = start_server(model, "bench", options)
    server.handle_completions({"prompt": "Hi", "max_tokens": 4, "temperature": 0})  # pages the weights in
    for hogs in (0, 1, 2):
        busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(hogs)]
        time.sleep(0.5)
        for n in (1, 4):
            started = time.perf_counter()
            server.handle_completions({"prompt": "Once upon a time", "max_tokens": args.tokens, "temperature": 0.7,
                                       "n": n, "ignore_eos": True, "seed": 1})  # fmt: skip
            seconds = round(time.perf_counter() - started, 2)
            result["seconds"][f"{name}, {'idle' if not hogs else f'busy {hogs}'}, n={n}"] = seconds
            print(name, f"busy {hogs}", f"n={n}", seconds, flush=True)
        for p in busy:
            p.kill()
            p.wait()
    del server
result["load_average_end"] = os.getloadavg()
out = args.out or Path(f"bench/results/threads-cpu{len(cpus)}-{datetime.date.today().isoformat()}.json")
out.write_text(json.dumps(result, indent=1) + "\n")
print(out)
