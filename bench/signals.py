"""What each ranking signal costs per turn (N candidates), side by side in one run.

    flock -x /tmp/cpu.lock env PYTHONPATH=. python bench/signals.py [--n 4] [--prompts 8] [--threads 1]

On the first `--prompts` labelled prompts of each language of bench/labels (their first N candidates,
as a turn of the app would have them), each signal of signals.SIGNALS scores the turn: the free ones,
D and consensus (the shipped D and its e5 encoder; e5's cache is cleared before every turn, as a new
turn's texts are new), and the verifier — the 1.5B reading the 0.5B's candidates, and the 0.5B reading
its own (the generator re-reading its turn, what a probe on its hidden states would cost). Also the
whole reranker with the shipped ranking. Writes bench/results/signals-cost-<date>.json with the load
average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import date
from pathlib import Path

from interactive_format.config import default_cache_dir
from interactive_format.ranking.discriminator import load_discriminator
from interactive_format.training.labels import read_all
from interactive_format.ranking.ranking import Reranker, load_ranking
from interactive_format.ranking.signals import SIGNALS, Context, Models
from interactive_format.ranking.verifier import Verifier

HERE = Path(__file__).resolve().parent
VERIFIERS = ("embedded:qwen2.5-coder-1.5b", "embedded:qwen2.5-coder-0.5b")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--prompts", type=int, default=8, help="per language")
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads of the verifier (the app's: 1)")
    p.add_argument("--out", type=Path, default=HERE / "results" / f"signals-cost-{date.today()}.json")
    args = p.parse_args()
    load_before = os.getloadavg()
    prompts = [q for q in read_all() if q.model.endswith("0.5b") and len(q.candidates) >= args.n]
    turns = [q for lang in ("zh", "en") for q in [q for q in prompts if q.lang == lang][: args.prompts]]
    d = load_discriminator(HERE.parent / "assets" / "discriminator", "cpu")
    seconds: dict[str, list[float]] = {}
    tokens: dict[str, list[int]] = {}
    for spec in VERIFIERS:
        started = time.perf_counter()
        verifier = Verifier.from_spec(spec, default_cache_dir(), threads=args.threads)
        seconds[f"verifier load {spec}"] = [time.perf_counter() - started]
        models = Models(d, verifier)
        verifier.read(turns[0].messages, ["warm-up"], [True])
        for q in turns:
            cands = q.candidates[: args.n]
            context = Context(q.context, tuple(q.messages), models)
            seconds.setdefault(f"verifier {spec}", []).append(timed(lambda: SIGNALS["verifier"].score(context, cands)))
            tokens.setdefault(f"verifier {spec}", []).append(sum(q.tokens[: args.n]))
        verifier.close()
    models = Models(d)
    ranking = load_ranking()
    for q in turns:
        cands = q.candidates[: args.n]
        context = Context(q.context, tuple(q.messages), models)
        for name, signal in SIGNALS.items():
            if signal.cost != "model":
                d.encoder.cache.clear()
                seconds.setdefault(name, []).append(timed(lambda: signal.score(context, cands)))
        d.encoder.cache.clear()
        seconds.setdefault("reranker (shipped ranking)", []).append(
            timed(lambda: Reranker(d, ranking=ranking).rank(q.context, cands))
        )
    result = {
        "n": args.n,
        "turns": len(turns),
        "threads": args.threads,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "median_s_per_turn": {k: round(statistics.median(v), 4) for k, v in seconds.items()},
        "mean_s_per_turn": {k: round(statistics.fmean(v), 4) for k, v in seconds.items()},
        "reply_tokens_per_turn": {k: statistics.fmean(v) for k, v in tokens.items()},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
