"""D's latency per candidate when it scores N candidates of one fresh context in one batch, as the app does.

    flock -x /tmp/cpu.lock env PYTHONPATH=. python bench/rerank/latency.py [--n 4] [--rounds 3]

Side by side in one run, on the same inputs, with the shipped D (assets/discriminator): its sentence encoder
embedding the context and the N replies in one part (one engine call each, one thread: as shipped before)
and in two parts on two threads (`SentenceEncoder.workers`, the default now). Two kinds of input:
"chitchat" (20 held-out chats of the evaluation; replies as in evaluate.d_latency: the human's next turn
with 1..N words cut off, ~24 tokens) and "app" (bench/rerank prompts with N of their sampled candidates,
up to 128 tokens: what the app scores). Every batch is fresh (the embedding cache is emptied), the best of
`rounds` runs is kept per input; the load average is recorded. Writes bench/results/rerank-latency-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from interactive_format.discriminator import load_discriminator
from interactive_format.evaluate import EvalConfig, training_config
from interactive_format.train import examples_for

HERE = Path(__file__).resolve().parent


def inputs(d, n: int, samples: Path) -> dict[str, list[tuple[str, list[str]]]]:
    examples = examples_for(training_config(d, EvalConfig()), "test", 20)

    def cut(reply: str) -> list[str]:
        words = reply.split() or ["ok"]
        return [" ".join(words[: max(1, len(words) - k)]) + f" {k}" for k in range(n)]

    rows = json.loads(samples.read_text())["rows"]
    app = [(f"user: {r['text']}", [c["text"] for c in r["candidates"][:n]]) for r in rows[::2][:20]]
    return {"chitchat": [(e.context_text, cut(e.reply)) for e in examples], "app": app}


def per_candidate_ms(d, batches: list[tuple[str, list[str]]], rounds: int) -> float:
    total = 0.0
    for context, replies in batches:
        best = float("inf")
        for _ in range(rounds):
            d.encoder.cache.clear()
            t0 = time.perf_counter()
            d.score(context, replies)
            best = min(best, time.perf_counter() - t0)
        total += best
    return round(1000 * total / sum(len(r) for _, r in batches), 2)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--samples", type=Path, default=HERE / "samples-qwen2.5-coder-0.5b-t0.7-s14.json")
    p.add_argument("--out", type=Path, default=HERE.parent / "results" / "rerank-latency-2026-12-02.json")
    args = p.parse_args()
    d = load_discriminator("assets/discriminator", "cpu")
    batches = inputs(d, args.n, args.samples)
    report: dict = {"about": __doc__.splitlines()[0], "n": args.n, "rounds": args.rounds,
                    "load_average_start": os.getloadavg(), "ms_per_candidate": {}}  # fmt: skip
    d.score("user: warm-up", ["one", "two"])
    for kind, items in batches.items():
        scores = {}
        for workers in (1, 2):
            d.encoder.workers = workers
            scores[workers] = [round(s, 6) for c, r in items[:3] for s in d.score(c, r)]
            report["ms_per_candidate"][f"{kind}_workers{workers}"] = per_candidate_ms(d, items, args.rounds)
        assert scores[1] == scores[2], "the split must not change D's scores"
        one, two = (report["ms_per_candidate"][f"{kind}_workers{w}"] for w in (1, 2))
        report["ms_per_candidate"][f"{kind}_ratio_2_to_1"] = round(two / one, 3)
        print(f"{kind}: {one} ms -> {two} ms per candidate (x{two / one:.2f})", flush=True)
    report["load_average_end"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print("->", args.out)


if __name__ == "__main__":
    main()
