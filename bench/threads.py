"""llama.cpp decode speed with 1 and 2 threads, idle and while another process keeps one core busy.

python bench/threads.py GGUF   (prints the load average and tokens/s; see docs/performance.md)
"""

import json
import os
import subprocess
import sys
import time

import xllamacpp as x

model = sys.argv[1]
res = {}
for threads in (1, 2):
    p = x.CommonParams()
    p.model.path = model
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.n_parallel = 4
    p.n_ctx = 4096
    p.port = 0
    p.verbosity = -1
    s = x.Server(p)
    for load in ("idle", "busy"):
        hog = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if load == "busy" else None
        time.sleep(0.5)
        t = time.perf_counter()
        r = s.handle_completions({"prompt": "Once upon a time", "n_predict": 128, "temperature": 0, "ignore_eos": True})
        dt = time.perf_counter() - t
        tps = r["timings"]["predicted_per_second"] if "timings" in r else r["usage"]["completion_tokens"] / dt
        res[f"{threads}t-{load}"] = round(tps, 1)
        if hog:
            hog.kill()
            hog.wait()
    del s
print(os.getloadavg(), json.dumps(res))
