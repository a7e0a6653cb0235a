"""D's latency per candidate when it scores N candidates of one fresh context in one batch, as the app does.

    flock -x /tmp/cpu.lock env PYTHONPATH=. python bench/rerank/latency.py [--n 4] [--rounds 3] [--caps 256 192]
    flock -s /tmp/cpu.lock env PYTHONPATH=. python bench/rerank/latency.py --ranking   # what a cap changes

Side by side in one run, on the same inputs, with the shipped D (assets/discriminator): its replies read whole
and cut to their first `--caps` UTF-8 bytes (`EmbeddingDiscriminator.reply_bytes`), each with the encoder in
`--workers` parts (2: two threads, the default; 1: one engine call each, as shipped before). Two kinds of
input: "chitchat" (20 held-out chats of the evaluation; replies as in evaluate.d_latency: the human's next
turn with 1..N words cut off, ~24 tokens) and "app" (bench/rerank prompts with N of their sampled
candidates, up to 128 tokens: what the app scores). Every batch is fresh (the embedding cache is emptied);
the settings take turns within each round, and the best of `rounds` runs is kept per input and setting; the
load average is recorded. With --ranking (no timing): on all bench/rerank prompts, through evaluate's
rerank part (the app's `Reranker`), how often each cap changes the shown reply at each N, per language, the
shown replies' defect rates and D's clean-vs-defective AUC with and without it, what the pair judge's cached
verdicts say of the changed picks (it is never asked anew), and, for scale, what λ 0.1 lower changes.
Adds its figures to --out (every run kept).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import time
from pathlib import Path

from interactive_format.dialogue import context_text
from interactive_format.ranking.discriminator import load_discriminator, reply_head
from interactive_format.training.evaluate import EvalConfig, read_rows, rerank_report, training_config
from interactive_format.training.train import examples_for

HERE = Path(__file__).resolve().parent
JUDGE_CACHE = HERE.parent / "results" / "rerank-judge-verdicts-2026-12-02.jsonl"


def inputs(d, n: int, samples: Path) -> dict[str, list[tuple[str, list[str]]]]:
    examples = examples_for(training_config(d, EvalConfig()), "test", 20)

    def cut(reply: str) -> list[str]:
        words = reply.split() or ["ok"]
        return [" ".join(words[: max(1, len(words) - k)]) + f" {k}" for k in range(n)]

    rows = json.loads(samples.read_text())["rows"]
    app = [(f"user: {r['text']}", [c["text"] for c in r["candidates"][:n]]) for r in rows[::2][:20]]
    return {"chitchat": [(e.context_text, cut(e.reply)) for e in examples], "app": app}


def token_counter(d):
    lib = d.encoder._lib
    lib.e5_token_count.restype, lib.e5_token_count.argtypes = (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int],
    )
    return lambda text, query=False: lib.e5_token_count(d.encoder._model, (text or " ").encode(), int(query))


def timings(d, batches: list[tuple[str, list[str]]], settings: list[tuple[int, int]], rounds: int) -> dict:
    """ms per candidate for each (reply_bytes, workers), the settings taking turns on each batch."""
    best = {s: [float("inf")] * len(batches) for s in settings}
    for k, (context, replies) in enumerate(batches):
        for _ in range(rounds):
            for cap, workers in settings:
                d.reply_bytes, d.encoder.workers = cap, workers
                d.encoder.cache.clear()
                t0 = time.perf_counter()
                d.score(context, replies)
                best[(cap, workers)][k] = min(best[(cap, workers)][k], time.perf_counter() - t0)
    candidates = sum(len(r) for _, r in batches)
    return {s: round(1000 * sum(b) / candidates, 2) for s, b in best.items()}


def latency(d, args) -> dict:
    batches = inputs(d, args.n, args.samples)
    tokens = token_counter(d)
    caps = [0, *args.caps]
    settings = [(cap, w) for cap in caps for w in args.workers]
    report: dict = {"n": args.n, "rounds": args.rounds, "caps_utf8_bytes": args.caps, "workers": args.workers,
                    "load_average_start": os.getloadavg(), "ms_per_candidate": {}, "reply_tokens_mean": {},
                    "context_tokens_mean": {}, "replies_capped_share": {}}  # fmt: skip
    d.score("user: warm-up", ["one", "two"])
    for kind, items in batches.items():
        replies = [r for _, rs in items for r in rs]
        report["context_tokens_mean"][kind] = round(sum(tokens(c, True) for c, _ in items) / len(items), 1)
        for cap in caps:
            name = f"{kind}_reply_bytes{cap}" if cap else kind
            report["reply_tokens_mean"][name] = round(
                sum(tokens(reply_head(r, cap)) for r in replies) / len(replies), 1
            )
            report["replies_capped_share"][name] = round(
                sum(reply_head(r, cap) != r for r in replies) / len(replies), 3
            )
            scores = set()
            for w in args.workers:
                d.reply_bytes, d.encoder.workers = cap, w
                d.encoder.cache.clear()
                scores.add(tuple(round(s, 6) for c, r in items[:3] for s in d.score(c, r)))
            assert len(scores) == 1, "the split must not change D's scores"
        for (cap, w), ms in timings(d, items, settings, args.rounds).items():
            name = f"{kind}_workers{w}" + (f"_reply_bytes{cap}" if cap else "")
            report["ms_per_candidate"][name] = ms
        for w in args.workers:
            whole = report["ms_per_candidate"][f"{kind}_workers{w}"]
            line = ", ".join(f"{report['ms_per_candidate'][f'{kind}_workers{w}_reply_bytes{c}']} ms at {c} bytes"
                             for c in args.caps)  # fmt: skip
            print(f"{kind}, {w} part(s): {whole} ms per candidate whole, {line}", flush=True)
    report["load_average_end"] = os.getloadavg()
    return report


def ranking(d, args) -> dict:
    """What each cap changes in evaluate's rerank part (the app's Reranker on all bench/rerank prompts)."""
    lam = float(d.meta.get("lam", 0.5))
    cfg = EvalConfig(rerank_samples=(args.samples.name,), ns=(2, 4, 8))
    started = time.perf_counter()
    runs = {}
    for cap in [0, *args.caps]:
        d.reply_bytes = cap
        runs[cap] = rerank_report(d, lam, cfg)
    d.reply_bytes = 0
    reference = rerank_report(d, round(lam - 0.1, 2), cfg)  # for scale: the same D, whole, with λ 0.1 lower
    prompts = {lang: [r for r in read_rows(cfg.rerank_samples) if r["lang"] == lang] for lang in ("zh", "en")}
    verdicts = {}  # the pair judge's cached verdicts (best-of-N whole vs the first sample): never asked anew
    for line in JUDGE_CACHE.read_text().splitlines():
        v = json.loads(line)
        verdicts[(v["context"], v["best"], v["first"])] = v["p"]

    def judged(lang: str, i: int, pick: int) -> float | None:
        r = prompts[lang][i]
        best, first = r["candidates"][pick]["text"], r["candidates"][0]["text"]
        return (
            0.5
            if best.strip() == first.strip()
            else verdicts.get((context_text([{"role": "user", "content": r["text"]}]), best, first))
        )

    out: dict = {"lam": lam, "ns": runs[0]["ns"], "note": "defect_aware: the app's shown reply; d_alone: by D alone; "
                 f"whole_lam{lam - 0.1:g}: for scale, D reading whole replies with λ 0.1 lower (its 'capped' figures)"}  # fmt: skip
    for label, other in [*((f"reply_bytes{c}", runs[c]) for c in args.caps), (f"whole_lam{lam - 0.1:g}", reference)]:
        res: dict = {}
        for lang in ("zh", "en"):
            whole, capped = runs[0]["shown"][lang], other["shown"][lang]
            res[lang] = {"prompts": whole["prompts"]}
            for name in ("defect_aware", "d_alone"):
                for n in out["ns"]:
                    a, b = whole[name][str(n)], capped[name][str(n)]
                    changed = [k for k, (x, y) in enumerate(zip(a["picks"], b["picks"])) if x != y]
                    res[lang][f"{name}_{n}"] = {"changed": len(changed), "defect_rate_whole": a["defect_rate"],
                                                "defect_rate_capped": b["defect_rate"]}  # fmt: skip
                    if name == "defect_aware":  # where the judge's cache holds both picks against the first sample
                        ps = [(judged(lang, k, a["picks"][k]), judged(lang, k, b["picks"][k])) for k in changed]
                        ps = [(x, y) for x, y in ps if x is not None and y is not None]
                        res[lang][f"{name}_{n}"]["judge_cache_covers"] = len(ps)
                        res[lang][f"{name}_{n}"]["judge_prefers_capped_whole"] = [sum(y > x for x, y in ps),
                                                                                  sum(x > y for x, y in ps)]  # fmt: skip
            for key in ("auc_built", "auc_real"):
                res[lang][f"d_{key}_whole"] = whole["d_auc_clean_vs_defective"][key]
                res[lang][f"d_{key}_capped"] = capped["d_auc_clean_vs_defective"][key]
        out[label] = res
    rows = json.loads(args.samples.read_text())["rows"]
    texts = [c["text"] for r in rows for c in r["candidates"]]
    out["candidates"] = len(texts)
    out["capped_share"] = {
        str(cap): round(sum(reply_head(t, cap) != t for t in texts) / len(texts), 3) for cap in args.caps
    }
    out["same_prefix_pairs"] = {  # candidates of one prompt that differ whole but not capped: D cannot tell them apart
        str(cap): sum(a != b and reply_head(a, cap) == reply_head(b, cap)
                      for r in rows for i, a in enumerate(t["text"] for t in r["candidates"])
                      for b in [t["text"] for t in r["candidates"]][i + 1 :])
        for cap in args.caps
    }  # fmt: skip
    examples = examples_for(training_config(d, EvalConfig()), "test", 100)
    out["chitchat_test_human_replies_capped"] = {
        str(cap): f"{sum(reply_head(e.reply, cap) != e.reply for e in examples)} of {len(examples)}"
        for cap in args.caps
    }
    out["seconds"] = round(time.perf_counter() - started)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--caps", type=int, nargs="+", default=[256, 192], help="reply caps in UTF-8 bytes")
    p.add_argument("--workers", type=int, nargs="+", default=[2], help="encoder parts (1: as shipped before)")
    p.add_argument("--ranking", action="store_true", help="what the caps change in the ranking (no timing)")
    p.add_argument("--samples", type=Path, default=HERE / "samples-qwen2.5-coder-0.5b-t0.7-s14.json")
    p.add_argument("--out", type=Path, default=HERE.parent / "results" / "rerank-latency-cap-2026-12-02.json")
    args = p.parse_args()
    d = load_discriminator("assets/discriminator", "cpu")
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report["about"] = __doc__.splitlines()[0]
    report["shipped_reply_bytes"] = d.reply_bytes
    if args.ranking:
        report["ranking"] = ranking(d, args)
        print(json.dumps(report["ranking"], indent=1))
    else:
        run = {"utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), **latency(d, args)}
        report.setdefault("latency_runs", []).append(run)  # every run kept: the load moves the figures
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print("->", args.out)


if __name__ == "__main__":
    main()
