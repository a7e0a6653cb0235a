"""Does defect-aware reranking show fewer defective replies than one sample? And what does the pair judge say?

    python bench/rerank/measure.py                              # defect rates (seconds; D on the CPU)
    flock /tmp/bench.lock python bench/rerank/measure.py --judge  # + the pair judge's check and best-of-4

Reads samples-<model>-t0.7-s14.json (sample.py: K = 8 candidates per held-out prompt). Sample 0 is "the
single sample"; best-of-N picks among samples 1..N by each strategy: defect-aware (fewest defects, then
λ·D + (1−λ)·J, the app's ranking), λ·D + (1−λ)·J, J alone, D alone, the longest reply. The shown reply's
defects are counted by defects.py, per language. With --judge, the pair judge (pairjudge.py, the 1.5B)
(1) is checked on pairs of a real defect-free reply against a defective one built from it (a loop, a
cut-off, an echo of the prompt) or a real reply in the wrong language, and (2) compares best-of-4
(defect-aware) with the first sample, both orders, a 95 % interval. Writes bench/results/rerank-*.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import time
from pathlib import Path

from interactive_format.ranking import defects
from interactive_format.dialogue import context_text
from interactive_format.ranking.ranking import combine
from interactive_format.ranking.discriminator import load_discriminator

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"


def context_of(prompts: dict, row: dict) -> str:
    return context_text([{"role": "user", "content": row["text"]}])


def strategies(lam: float) -> dict:
    """name -> key(candidate) to maximise."""
    return {
        "defect_aware": lambda c: (-len(c["defects"]), combine(c["d"], c["j"], lam)),
        "d_and_j": lambda c: combine(c["d"], c["j"], lam),
        "j_alone": lambda c: c["j"],
        "d_alone": lambda c: c["d"],
        "length": lambda c: len(c["text"]),
    }


def pick(cands: list[dict], key, n: int) -> int:
    """Index of the best of samples 1..n under `key` (ties: the earlier sample)."""
    return max(range(1, n + 1), key=lambda i: (key(cands[i]), -i))


def interval(outcomes: list[float]) -> dict:
    n = len(outcomes)
    mean = sum(outcomes) / n
    var = sum((o - mean) ** 2 for o in outcomes) / max(n - 1, 1)
    half = 1.96 * math.sqrt(var / n)
    return {"rate": round(mean, 3), "low": round(mean - half, 3), "high": round(mean + half, 3), "n": n}


def defect_rates(rows: list[dict], lam: float, ns: tuple[int, ...]) -> dict:
    out: dict = {}
    for lang in ("zh", "en"):
        rs = [r for r in rows if r["lang"] == lang]
        res = {"prompts": len(rs), "single": _rate(rs, [0] * len(rs))}
        res["all_candidates"] = round(
            sum(bool(c["defects"]) for r in rs for c in r["candidates"]) / sum(len(r["candidates"]) for r in rs), 3
        )
        for name, key in strategies(lam).items():
            res[name] = {str(n): _rate(rs, [pick(r["candidates"], key, n) for r in rs]) for n in ns}
        out[lang] = res
    return out


def _rate(rows: list[dict], chosen: list[int]) -> dict:
    bad = [r["candidates"][i]["defects"] for r, i in zip(rows, chosen)]
    kinds: dict[str, int] = {}
    for b in bad:
        for name in b:
            kinds[name] = kinds.get(name, 0) + 1
    return {"defective": sum(bool(b) for b in bad), "rate": round(sum(bool(b) for b in bad) / len(rows), 3), **kinds}


def defect_pairs(rows: list[dict], per_kind: int, seed: int) -> list[dict]:
    """(context, good, bad, kind): a real defect-free reply against a defect built from it, or a real wrong-language one."""
    rng = random.Random(seed)
    pairs = []
    for lang in ("zh", "en"):
        rs = [r for r in rows if r["lang"] == lang]
        built: dict[str, list] = {"loop": [], "cut_off": [], "echo": [], "wrong_language": []}
        for r in rs:
            ctx = r["context"]
            good = next((c["text"] for c in r["candidates"] if not c["defects"] and len(c["text"]) >= 20), None)
            if good is None:
                continue
            first = re.split(r"(?<=[。！？.!?])\s*", good)[0][:60]
            built["loop"].append((ctx, good, good[: len(first)] + (first + " ") * 6, "loop"))
            cut = good[: max(12, len(good) // 2)].rstrip('。！？.!?)）"” ')
            built["cut_off"].append((ctx, good, cut, "cut_off"))
            built["echo"].append((ctx, good, r["text"], "echo"))
            for c in r["candidates"]:
                if c["defects"] == ["wrong_language"]:
                    built["wrong_language"].append((ctx, good, c["text"], "wrong_language"))
                    break
        for kind, items in built.items():
            rng.shuffle(items)
            for ctx, good, bad, k in items[:per_kind]:
                found = [d.name for d in defects.find(bad, ctx, finished=k != "cut_off")]
                if k in found:  # the built defect is the named one
                    pairs.append({"lang": lang, "kind": k, "context": ctx, "good": good, "bad": bad})
    return pairs


def run_judge(rows: list[dict], lam: float, args, report: dict, save) -> None:
    from interactive_format.training.pairjudge import PairJudge

    judge = PairJudge.from_spec(args.judge_model, threads=args.judge_threads)
    started = time.perf_counter()
    pairs = defect_pairs(rows, args.per_kind, args.seed)
    random.Random(args.seed).shuffle(pairs)  # kinds and languages mixed: a run stopped early still covers each
    planned = len(pairs)
    for k, p in enumerate(pairs):
        if time.time() > args.stop_at:
            pairs = pairs[:k]
            break
        v = judge.compare(p["context"], p["good"], p["bad"])
        p.update(p_good=round(v.p, 3), a_first=round(v.a_first, 3), b_first=round(v.b_first, 3))
        print(f"[check {p['lang']} {p['kind']}] p(good) {v.p:.3f}", flush=True)
    check: dict = {"judge": args.judge_model, "seconds": round(time.perf_counter() - started)}
    check["judged"], check["planned"] = len(pairs), planned
    for lang in ("zh", "en", "all"):
        ps = [p for p in pairs if lang in ("all", p["lang"])]
        if not ps:
            continue
        check[lang] = interval([1.0 if p["p_good"] > 0.5 else 0.5 if p["p_good"] == 0.5 else 0.0 for p in ps])
        check[lang]["by_kind"] = {
            k: round(sum(p["p_good"] > 0.5 for p in ps if p["kind"] == k) / max(1, sum(p["kind"] == k for p in ps)), 3)
            for k in sorted({p["kind"] for p in ps})
        }
    check["pairs"] = pairs
    report["judge_check"] = check
    save(report)
    key = strategies(lam)["defect_aware"]
    started = time.perf_counter()
    versus: dict = {}
    results: dict = {"zh": ([], []), "en": ([], [])}  # outcomes, items
    by_lang = [[r for r in rows if r["lang"] == lang][: args.versus_prompts] for lang in ("zh", "en")]
    for r in [r for pair in zip(*by_lang) for r in pair]:  # zh and en alternate: a stopped run has both
        if time.time() > args.stop_at:
            break
        best, first = r["candidates"][pick(r["candidates"], key, 4)]["text"], r["candidates"][0]["text"]
        p = 0.5 if best.strip() == first.strip() else judge.prefer(r["context"], best, first)
        outcomes, items = results[r["lang"]]
        outcomes.append(1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0)
        items.append({"id": r["id"], "p_best": round(p, 3), "same": best.strip() == first.strip()})
        print(f"[best-of-4 {r['id']}] p(best) {p:.3f}", flush=True)
        versus[r["lang"]] = {**interval(outcomes), "items": items}
        report["best_of_4_vs_first_under_judge"] = versus
        save(report)
    versus["seconds"] = round(time.perf_counter() - started)
    report["best_of_4_vs_first_under_judge"] = versus
    judge.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=Path, default=HERE / "samples-qwen2.5-coder-0.5b-t0.7-s14.json")
    p.add_argument("--discriminator", default="assets/discriminator")
    p.add_argument("--ns", type=int, nargs="+", default=[2, 4])
    p.add_argument("--judge", action="store_true")
    p.add_argument("--judge-model", default="embedded:qwen2.5-coder-1.5b")
    p.add_argument("--judge-threads", type=int, default=1)
    p.add_argument("--per-kind", type=int, default=6, help="check pairs per defect kind and language")
    p.add_argument("--versus-prompts", type=int, default=20, help="prompts per language for best-of-4 vs first")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--stop-at", type=float, default=math.inf, help="Unix time after which nothing more is judged")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    data = json.loads(args.samples.read_text())
    prompts = json.loads((HERE / "prompts.json").read_text())
    d = load_discriminator(args.discriminator, "cpu")
    lam = float(d.meta.get("lam", 0.5))
    rows = data["rows"]
    for r in rows:
        r["context"] = context_of(prompts, r)
        texts = [c["text"] for c in r["candidates"]]
        for c, score in zip(r["candidates"], d.score(r["context"], texts)):
            c["d"] = score if c["text"].strip() else -1.0
            c["defects"] = [x.name for x in defects.find(c["text"], r["context"], c["finished"])]
    report: dict = {
        "about": __doc__.splitlines()[0],
        "model": data["model"],
        "candidates_per_prompt": data["k"],
        "max_new_tokens": data["max_new_tokens"],
        "temperature": data["temperature"],
        "discriminator": args.discriminator,
        "lam": lam,
        "load_average_start": os.getloadavg(),
        "defect_rate": defect_rates(rows, lam, tuple(args.ns)),
    }
    name = "rerank-judge" if args.judge else "rerank-defects"
    out = args.out or RESULTS / f"{name}-{data['model'].removeprefix('embedded:')}-2026-12-02.json"

    def save(report: dict) -> None:  # after each step: an interrupted run keeps what it judged
        report["load_average_end"] = os.getloadavg()
        out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")

    if args.judge:
        run_judge(rows, lam, args, report, save)
    save(report)
    print(json.dumps(report["defect_rate"], indent=1))
    print("->", out)


if __name__ == "__main__":
    main()
