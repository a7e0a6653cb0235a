"""Does reranking make replies better? python -m interactive_format.evaluate [labels]

`python -m interactive_format.evaluate labels` measures every ranking on the reply-quality labels
(labeleval.py: a judge's 1–5 scores of our own candidates, cross-validated by prompt). Without
`labels`, two held-out sets, never tuned on, every baseline from the same run:

1. chitchat (English): on test chats never seen in training, D's ROC-AUC of the human's real next turn
   against the generator's reply to the same context (and the same for an older D, to compare), and D's
   latency per candidate when it scores N candidates of one context in one batch, as the app does.
2. bench/rerank (up to 40 Chinese + 40 English prompts, K = 8 candidates each from the default generator,
   bench/rerank/sample.py): per language, the shown reply of each ranking at N = 2, 4, 8 (best of the first
   N candidates; N = 1 is the single sample): the app's `Reranker` (fewest defects, then λ·D + (1−λ)·J), the same `Reranker` without
   the defect count (λ·D + (1−λ)·J), D alone, J alone and the longest reply; single samples at other
   temperatures (the best single temperature); the shown replies' defect rate (defects.py: circular for the
   defect-aware ranking, which uses the same detectors) and distinct-2 against single samples; D's
   ROC-AUC of clean replies against defective ones built from them (the Chinese figure: no human Chinese
   chats ship offline). With --pair-judge, a chat model that never sees D's scores (pairjudge.py) compares
   the app's best-of-N with the single sample, both orders, for each N of --pair-ns (--pair-cache: its
   verdicts kept in a file, so a stopped run resumes without asking again).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import ROOT, default_cache_dir
from ..errors import DEV_LOCK, MissingPackageError, require

log = logging.getLogger(__name__)
BENCH = ROOT / "bench" / "rerank"


def distinct(texts: list[str], n: int) -> float:
    """Distinct-n: unique n-grams / all n-grams over a set of replies (words; characters for Chinese)."""
    from ..ranking.defects import han_share

    def units(t: str) -> list[str]:
        return [c for c in t if not c.isspace()] if (han_share(t) or 0) > 0.3 else t.lower().split()

    grams = [tuple(w[i : i + n]) for w in map(units, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@dataclass(frozen=True)
class EvalConfig:
    discriminator: Path = Path("assets/discriminator")  # the trained D (its meta names the run's settings)
    out_dir: Path = Path("runs/discriminator")  # G's cached samples live in out_dir/samples
    report_dir: Path = Path("assets/discriminator")  # evaluation.json and evaluation.png
    test_contexts: int = 100  # held-out chitchat contexts (one G reply each) for the ROC-AUC
    compare_to: str = ""  # an older D's directory, scored on the same held-out chats ("" = none)
    ns: tuple[int, ...] = (2, 4, 8)
    rerank_samples: tuple[str, ...] = (  # bench/rerank candidate files at the app's temperature, joined per prompt
        "samples-qwen2.5-coder-0.5b-t0.7-s14.json",
    )
    temperature_samples: tuple[str, ...] = (  # single samples at other temperatures
        "samples-qwen2.5-coder-0.5b-t0.3-s14.json",
        "samples-qwen2.5-coder-0.5b-t1-s14.json",
    )
    cache_dir: Path = dataclasses.field(default_factory=default_cache_dir)
    device: str = "auto"
    progress: bool = True
    pair_judge: str = ""  # a chat model (pairjudge.py) that judges best-of-N vs one sample; "" = off
    pair_contexts: int = 40  # prompts per language it judges (~13 s per pair, both orders, on 2 cores)
    pair_ns: tuple[int, ...] = (4, 8, 2)  # judged in this order: each N on every prompt before the next
    pair_cache: str = ""  # a JSON-lines file of the judge's verdicts: read first, each new one appended ("" = none)
    stop_at: float = float("inf")  # Unix time after which the pair judge asks nothing more


def training_config(d, cfg: EvalConfig):
    """The TrainConfig of the run that made D (same split, G and sampling), writing samples to out_dir."""
    from .train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in d.meta.get("training", {}).items() if k in names}
    return TrainConfig(
        **{**saved, "out_dir": cfg.out_dir, "cache_dir": cfg.cache_dir, "device": cfg.device, "progress": cfg.progress}
    )


def test_samples(tcfg, examples, n: int) -> dict:
    """G's n replies per test example, from the cache; G is loaded only if some are missing."""
    from .chitchat import SampleCache
    from .train import g_replies, load_generator

    cache = SampleCache(tcfg.samples_path(), tcfg.sample_key())
    if not cache.missing(examples, n):
        return {e.id: cache.replies[e.id][:n] for e in examples}
    return g_replies(tcfg, load_generator(tcfg), examples, n)[0]


def chitchat_report(d, cfg: EvalConfig) -> dict:
    """D's ROC-AUC (and accuracy, hits@1, ...) on held-out chats; the older D's on the same pairs; latency."""
    from ..ranking.discriminator import load_discriminator
    from .judges import d_metrics
    from .train import examples_for

    tcfg = training_config(d, cfg)
    examples = examples_for(tcfg, "test", cfg.test_contexts)
    samples = test_samples(tcfg, examples, 1)
    direction = float(d.meta.get("length_direction", -1.0))
    out = {
        "contexts": len(examples),
        "generator": tcfg.llm,
        "d": d_metrics(d, examples, samples, direction, tcfg.seed + 99),
    }
    if cfg.compare_to:
        old = load_discriminator(cfg.compare_to, "cpu")
        out["compare_to"] = {"discriminator": cfg.compare_to, "encoder": old.encoder_spec,
                             **d_metrics(old, examples, samples, direction, tcfg.seed + 99)}  # fmt: skip
        out["compare_to"]["latency_ms_per_candidate"] = d_latency(old, examples[:20], samples, 4)
    out["latency_ms_per_candidate"] = d_latency(d, examples[:20], samples, 4)
    return out


def d_latency(d, examples, samples, n: int) -> float:
    """Milliseconds per candidate for D scoring n candidates of one fresh context in one batch (as the app does).

    The candidates are the context's reply with 1..n words cut off its end, so no text is in an embedding cache.
    """

    def batch(e) -> list[str]:
        words = samples[e.id][0].text.split() or ["ok"]
        return [" ".join(words[: max(1, len(words) - k)]) + f" {k}" for k in range(n)]

    d.score(examples[0].context_text + " warm-up", batch(examples[0]))
    t0 = time.perf_counter()
    for e in examples:
        d.score(e.context_text, batch(e))
    return 1000 * (time.perf_counter() - t0) / (len(examples) * n)


# ---------------------------------------------------------------- bench/rerank


def read_rows(files: tuple[str, ...]) -> list[dict]:
    """The bench/rerank prompts with the candidates of every file joined in order (files missing: skipped)."""
    rows: dict[str, dict] = {}
    for name in files:
        path = BENCH / name if not Path(name).is_absolute() else Path(name)
        if not path.exists():
            log.warning("no %s: skipped", path)
            continue
        for r in json.loads(path.read_text())["rows"]:
            rows.setdefault(r["id"], {**r, "candidates": []})["candidates"] += r["candidates"]
    return list(rows.values())


def _candidates(row: dict):
    from ..dialogue import Candidate

    return [Candidate(c["text"], c["j"], finished=c["finished"]) for c in row["candidates"]]


def strategies(d, lam: float) -> dict:
    """name -> function(context, candidates) giving the index shown; every ranking is a `Reranker`'s."""
    from ..ranking.ranking import Reranker

    rankers = {
        "defect_aware": Reranker(d, lam),  # the seed: the app before the labels (`evaluate labels`)
        "d_and_j": Reranker(d, lam, defects_first=False),
        "d_alone": Reranker(d, 1.0, defects_first=False),
        "j_alone": Reranker(None, lam, defects_first=False),
    }
    out = {name: (lambda r: lambda ctx, cands: r.rank(ctx, cands)[0])(r) for name, r in rankers.items()}
    out["length"] = lambda ctx, cands: max(range(len(cands)), key=lambda i: (len(cands[i].text), -i))
    return out


def rerank_report(d, lam: float, cfg: EvalConfig) -> dict:
    """Per language: defect rate and distinct-2 of the shown reply for every strategy and N, temperatures, AUC."""
    from ..ranking.defects import find
    from ..dialogue import context_text

    rows = read_rows(cfg.rerank_samples)
    temps = {f"t{json.loads((BENCH / f).read_text())['temperature']:g}": read_rows((f,))
             for f in cfg.temperature_samples if (BENCH / f).exists()}  # fmt: skip
    k = min(len(r["candidates"]) for r in rows)
    ns = [n for n in cfg.ns if n <= k]
    report: dict = {"candidates_per_prompt": k, "ns": ns, "shown": {}}
    for r in rows:
        r["context"] = context_text([{"role": "user", "content": r["text"]}])
    for lang in ("zh", "en"):
        rs = [r for r in rows if r["lang"] == lang]

        def rate(texts_defects: list[list[str]]) -> float:
            return round(sum(bool(x) for x in texts_defects) / len(texts_defects), 3)

        single = [_candidates(r)[0] for r in rs]
        single_defects = [[x.name for x in find(c.text, r["context"], c.finished)] for c, r in zip(single, rs)]
        res: dict = {
            "prompts": len(rs),
            "single": {
                "defect_rate": rate(single_defects),
                "distinct2": round(distinct([c.text for c in single], 2), 3),
            },
        }
        for name, fn in strategies(d, lam).items():
            res[name] = {}
            for n in ns:
                shown = []
                for r in rs:
                    cands = _candidates(r)[:n]
                    i = fn(r["context"], cands)
                    shown.append((i, cands[i], [x.name for x in find(cands[i].text, r["context"], cands[i].finished)]))
                res[name][str(n)] = {"defect_rate": rate([s[2] for s in shown]),
                                     "distinct2": round(distinct([s[1].text for s in shown], 2), 3),
                                     "picks": [s[0] for s in shown]}  # fmt: skip
        for t, trows in temps.items():
            trs = {r["id"]: r for r in trows}
            cs = [(_candidates(trs[r["id"]])[0], r["context"]) for r in rs if r["id"] in trs]
            res[f"single_{t}"] = {"defect_rate": rate([[x.name for x in find(c.text, ctx, c.finished)] for c, ctx in cs]),
                                  "distinct2": round(distinct([c.text for c, _ in cs], 2), 3)}  # fmt: skip
        singles = {"t0.7": res["single"]["defect_rate"], **{t: res[f"single_{t}"]["defect_rate"] for t in temps}}
        res["best_temperature"] = min(singles, key=lambda t: (singles[t], t != "t0.7"))
        res["d_auc_clean_vs_defective"] = clean_vs_defective_auc(d, rs)
        report["shown"][lang] = res
    return report


def clean_vs_defective_auc(d, rows: list[dict]) -> dict:
    """D's ROC-AUC of defect-free candidates against defective ones built from them (a loop, a cut-off, an
    echo of the prompt, a reply to another prompt) and the real defective candidates."""
    import random
    import re

    from ..ranking.defects import find
    from .judges import roc_auc

    rng = random.Random(14)
    good, bad = [], []
    clean = [
        (r, c["text"]) for r in rows for c in r["candidates"][:1] if not find(c["text"], r["context"], c["finished"])
    ]
    for k, (r, text) in enumerate(clean):
        first = re.split(r"(?<=[。！？.!?])\s*", text)[0][:60]
        other = clean[(k + 1 + rng.randrange(max(1, len(clean) - 1))) % len(clean)][1]
        made = [first + (" " + first) * 5, text[: max(12, len(text) // 2)].rstrip("。！？.!?"), r["text"], other]
        good.append(d.score(r["context"], [text])[0])
        bad += d.score(r["context"], made)
    real_bad = [(r, c["text"]) for r in rows for c in r["candidates"] if find(c["text"], r["context"], c["finished"])]
    real = [d.score(r["context"], [t])[0] for r, t in real_bad]
    return {"clean": len(good), "built": len(bad), "auc_built": round(roc_auc(good, bad), 3),
            "real_defective": len(real), "auc_real": round(roc_auc(good, real), 3)}  # fmt: skip


def pair_judge_report(cfg: EvalConfig, rerank: dict, rows: list[dict]) -> dict:
    """The app's best-of-N against the single sample, under the pair judge (texts only, never D's scores).

    N in the order of `pair_ns`, each on every prompt before the next N (a run stopped at `stop_at` keeps the
    first N whole), zh and en alternating; a pair asked for one N (or found in `pair_cache`: the judge is
    greedy, so a verdict on the same texts is the same) is not asked again.
    """
    from itertools import zip_longest

    from ..dialogue import context_text
    from .judges import win_rate
    from .pairjudge import PairJudge, outcome

    judge = PairJudge.from_spec(cfg.pair_judge, cfg.cache_dir)
    out: dict = {"judge": cfg.pair_judge, "note": "the judge reads the conversation and two replies only"}
    verdicts: dict[tuple[str, str, str], float] = {}  # (context, best, first) -> P(best is better than first)
    cache = Path(cfg.pair_cache) if cfg.pair_cache else None
    if cache and cache.exists():
        for line in cache.read_text().splitlines():
            v = json.loads(line)
            verdicts[(v["context"], v["best"], v["first"])] = v["p"]
    cached, started = len(verdicts), time.perf_counter()
    for r in rows:
        r["context"] = context_text([{"role": "user", "content": r["text"]}])
    for n in cfg.pair_ns:
        planned = {lang: list(zip([r for r in rows if r["lang"] == lang],
                                  rerank["shown"][lang]["defect_aware"][str(n)]["picks"]))[: cfg.pair_contexts]
                   for lang in ("zh", "en")}  # fmt: skip
        results: dict[str, list] = {"zh": [], "en": []}
        for r, i in [x for both in zip_longest(*planned.values()) for x in both if x]:
            if time.time() > cfg.stop_at:
                break
            best, first = r["candidates"][i]["text"], r["candidates"][0]["text"]
            key = (r["context"], best, first)
            if best.strip() != first.strip() and key not in verdicts:
                verdicts[key] = judge.prefer(r["context"], best, first)
                if cache:
                    record = {"context": r["context"], "best": best, "first": first, "p": verdicts[key]}
                    with cache.open("a") as f:
                        f.write(json.dumps(record, ensure_ascii=False) + "\n")
            p = verdicts.get(key, 0.5)
            results[r["lang"]].append({"id": r["id"], "pick": i, "p_best": round(p, 3), "outcome": outcome(p)})
        for lang, items in results.items():
            if items:
                rates = win_rate([x["outcome"] for x in items], [0.5] * len(items))
                out[f"{lang}_best_of_{n}_vs_first"] = {**rates, "planned": len(planned[lang]), "items": items}
    judge.close()
    out["pairs_asked"], out["pairs_cached"] = len(verdicts) - cached, cached
    out["seconds"] = round(time.perf_counter() - started)
    return out


def evaluate(cfg: EvalConfig) -> dict:
    from ..ranking.discriminator import load_discriminator

    d = load_discriminator(cfg.discriminator, "cpu")
    lam = float(d.meta.get("lam", 0.5))
    report: dict = {"discriminator": str(cfg.discriminator), "encoder": d.encoder_spec, "lam": lam,
                    "lam_selection": d.meta.get("lam_selection")}  # fmt: skip
    report["chitchat"] = chitchat_report(d, cfg)
    report["rerank"] = rerank_report(d, lam, cfg)
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    # written now, so that it is kept if the judge fails
    (cfg.report_dir / "evaluation.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    if cfg.pair_judge:
        report["pair_judge"] = pair_judge_report(cfg, report["rerank"], read_rows(cfg.rerank_samples))
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    (cfg.report_dir / "evaluation.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    plot(report, cfg.report_dir / "evaluation.png")
    return report


def plot(report: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = report["rerank"]["shown"]
    ns = report["rerank"]["ns"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, lang in zip(axes, ("zh", "en")):
        res = shown[lang]
        for name in ("defect_aware", "d_and_j", "d_alone", "j_alone", "length"):
            ax.plot(
                [1] + ns,
                [res["single"]["defect_rate"]] + [res[name][str(n)]["defect_rate"] for n in ns],
                marker="o",
                label=name,
            )
        ax.set_xscale("log", base=2), ax.set_xticks([1] + ns, [str(n) for n in [1] + ns])
        ax.set_xlabel("N candidates"), ax.set_ylabel("shown-reply defect rate"), ax.set_ylim(0, 1)
        ax.set_title(f"{lang}: {res['prompts']} held-out prompts"), ax.legend(fontsize=7)
    c = report["chitchat"]
    bars = {"D AUC\nheld-out chats": c["d"]["auc"]}
    if "compare_to" in c:
        bars["older D AUC\nsame chats"] = c["compare_to"]["auc"]
    for lang in ("zh", "en"):
        bars[f"D AUC {lang}\nclean vs defect"] = shown[lang]["d_auc_clean_vs_defective"]["auc_built"]
    axes[2].bar(range(len(bars)), list(bars.values()))
    (
        axes[2].set_xticks(range(len(bars)), list(bars), fontsize=7),
        axes[2].set_ylim(0, 1),
        axes[2].axhline(0.5, color="grey", lw=0.8),
    )
    axes[2].set_title("ROC-AUC")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def config_from_args(kind: type, description: str, argv: list[str] | None):
    """A frozen config dataclass from flags named after its fields (--out-dir for out_dir; lists for tuples)."""
    p = argparse.ArgumentParser(description=description)
    for f in dataclasses.fields(kind):
        default = getattr(kind(), f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            p.add_argument(flag, type=type(default[0]), nargs="*", default=list(default))
        else:
            p.add_argument(flag, type=type(default), default=default)
    args = vars(p.parse_args(argv))
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})


def main(argv: list[str] | None = None) -> None:
    """`evaluate` (chitchat + bench/rerank, below) or `evaluate labels` (labeleval.py: the reply-quality labels)."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        require("matplotlib", "The evaluation report", DEV_LOCK)  # checked now, not after the sampling
    except MissingPackageError as e:
        raise SystemExit(f"evaluate: {e}") from None
    if argv[:1] == ["labels"]:
        from .labeleval import LabelsConfig, run

        run(config_from_args(LabelsConfig, "Evaluate the rankings on the reply-quality labels.", argv[1:]))
        return
    report = evaluate(config_from_args(EvalConfig, "Evaluate best-of-N reranking with a trained discriminator.", argv))
    print(json.dumps(report, indent=1, ensure_ascii=False)[:4000])


if __name__ == "__main__":
    main()
