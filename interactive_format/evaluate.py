"""Does reranking make replies better? python -m interactive_format.evaluate

On held-out test contexts (chats never seen in training), G samples 1 + max(N) replies per
context. Sample 0 is "the single reply"; best-of-N picks among samples 1..N by the app's
score λ·D + (1−λ)·J. A separate judge that is NOT D — cosine similarity, under the frozen
MiniLM sentence embedding, to the human's real reply — decides which of the two is better
(ties count half). D's own verdict on the same pairs is reported against its ceiling
n/(n+1) (the chance that the best of n beats one more independent sample).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .config import default_cache_dir
from .errors import DEV_LOCK, MissingPackageError, require
from .judges import SimilarityJudge, best_of, win_rate

log = logging.getLogger(__name__)


def distinct(texts: list[str], n: int) -> float:
    """Distinct-n: unique word n-grams / all word n-grams over a set of replies."""
    grams = [tuple(w[i:i + n]) for w in (t.lower().split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@dataclass(frozen=True)
class EvalConfig:
    discriminator: Path = Path("assets/discriminator")  # the trained D (its meta names the run's settings)
    out_dir: Path = Path("runs/discriminator")  # G's cached samples live in out_dir/samples
    report_dir: Path = Path("assets/discriminator")  # evaluation.json and evaluation.png
    test_contexts: int = 500
    ns: tuple[int, ...] = (2, 4, 8)
    lams: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    cache_dir: Path = dataclasses.field(default_factory=default_cache_dir)
    device: str = "auto"
    progress: bool = True


def training_config(d, cfg: EvalConfig):
    """The TrainConfig of the run that made D (same split, G and sampling), writing samples to out_dir."""
    from .train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in d.meta.get("training", {}).items() if k in names}
    return TrainConfig(**{**saved, "out_dir": cfg.out_dir, "cache_dir": cfg.cache_dir, "device": cfg.device, "progress": cfg.progress})


def test_samples(tcfg, examples, n: int) -> dict:
    """G's n replies per test example, from the cache; G is loaded only if some are missing."""
    from .chitchat import SampleCache
    from .train import g_replies, load_generator

    cache = SampleCache(tcfg.out_dir / "samples", tcfg.sample_key())
    if not cache.missing(examples, n):
        return {e.id: cache.replies[e.id][:n] for e in examples}
    return g_replies(tcfg, load_generator(tcfg), examples, n)[0]


def evaluate(cfg: EvalConfig) -> dict:
    from .discriminator import Discriminator
    from .models import resolve_device
    from .train import d_metrics, d_scores, examples_for

    device = resolve_device(cfg.device)
    d = Discriminator.load(cfg.discriminator, device)
    tcfg = training_config(d, cfg)
    lam = float(d.meta.get("lam", 0.5))
    examples = examples_for(tcfg, "test", cfg.test_contexts)
    k = 1 + max(cfg.ns)
    samples = test_samples(tcfg, examples, k)
    judge = SimilarityJudge.from_spec(tcfg.encoder, device)

    report: dict = {"contexts": len(examples), "samples_per_context": k, "lam": lam, "discriminator": str(cfg.discriminator)}
    report["d_metrics"] = d_metrics(d, examples, samples, float(d.meta.get("length_direction", -1.0)), tcfg.seed + 99)
    sims, dsc, js = [], [], []
    for e in examples:
        texts = [s.text for s in samples[e.id]]
        sims.append(judge.similarity(texts, e.reply))
        dsc.append(d_scores(d, [e.context_text] * k, texts))
        js.append([s.j for s in samples[e.id]])
    report["latency_ms_per_candidate"] = d_latency(d, examples[:40], samples, max(cfg.ns))

    def picks(lam_: float, n: int) -> list[int]:  # index (into the samples) of best-of-n among 1..n
        return [1 + best_of(ds[1:], jj[1:], lam_, n) for ds, jj in zip(dsc, js)]

    report["by_n"] = {}
    for n in cfg.ns:
        chosen = picks(lam, n)
        by_d = picks(1.0, n)
        report["by_n"][str(n)] = {
            "judge": win_rate([s[c] for s, c in zip(sims, chosen)], [s[0] for s in sims]),
            "d_self": win_rate([ds[c] for ds, c in zip(dsc, by_d)], [ds[0] for ds in dsc]),
            "d_ceiling": n / (n + 1),
        }
    n = max(cfg.ns)
    report["lambda_sweep"] = {
        str(x): win_rate([s[c] for s, c in zip(sims, picks(x, n))], [s[0] for s in sims]) for x in cfg.lams
    }
    chosen = picks(lam, n)
    reranked = [samples[e.id][c].text for e, c in zip(examples, chosen)]
    single = [samples[e.id][0].text for e in examples]
    report["distinct"] = {
        "reranked": {"1": distinct(reranked, 1), "2": distinct(reranked, 2)},
        "single": {"1": distinct(single, 1), "2": distinct(single, 2)},
    }
    report["examples"] = [
        {"context": e.context_text, "human": e.reply, "single": single[i], "reranked": reranked[i]} for i, e in enumerate(examples[:8])
    ]
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    (cfg.report_dir / "evaluation.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    plot(report, cfg.report_dir / "evaluation.png")
    return report


def d_latency(d, examples, samples, n: int) -> float:
    """Milliseconds per candidate for D scoring n candidates of one context in one batch (as the app does)."""
    from .train import d_scores

    d_scores(d, [examples[0].context_text] * n, [s.text for s in samples[examples[0].id][:n]])  # warm-up
    t0 = time.perf_counter()
    for e in examples:
        d_scores(d, [e.context_text] * n, [s.text for s in samples[e.id][:n]])
    return 1000 * (time.perf_counter() - t0) / (len(examples) * n)


def plot(report: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [int(n) for n in report["by_n"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("judge", "separate judge (similarity to human reply)"), ("d_self", "D judging itself")):
        rows = [report["by_n"][str(n)][key] for n in ns]
        a.errorbar(ns, [r["rate"] for r in rows], yerr=[[r["rate"] - r["low"] for r in rows], [r["high"] - r["rate"] for r in rows]],
                   marker="o", capsize=4, label=label)
    a.plot(ns, [n / (n + 1) for n in ns], "k--", label="D's ceiling n/(n+1)")
    a.axhline(0.5, color="grey", lw=0.8)
    a.set_xscale("log", base=2), a.set_xticks(ns, [str(n) for n in ns])
    a.set_xlabel("N candidates"), a.set_ylabel("win rate vs one sample"), a.set_ylim(0.3, 1.0), a.legend(fontsize=8)
    lams = [float(x) for x in report["lambda_sweep"]]
    rows = list(report["lambda_sweep"].values())
    b.errorbar(lams, [r["rate"] for r in rows], yerr=[[r["rate"] - r["low"] for r in rows], [r["high"] - r["rate"] for r in rows]],
               marker="o", capsize=4)
    b.axhline(0.5, color="grey", lw=0.8)
    b.set_xlabel("λ (weight of D)"), b.set_ylabel(f"judge win rate, best-of-{max(ns)}"), b.set_title("λ sweep")
    fig.suptitle(f"{report['contexts']} held-out chitchat contexts")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate best-of-N reranking with a trained discriminator.")
    p.add_argument("--discriminator", type=Path, default=EvalConfig.discriminator)
    p.add_argument("--out-dir", type=Path, default=EvalConfig.out_dir)
    p.add_argument("--report-dir", type=Path, default=EvalConfig.report_dir)
    p.add_argument("--test-contexts", type=int, default=EvalConfig.test_contexts)
    p.add_argument("--ns", type=int, nargs="+", default=list(EvalConfig.ns))
    p.add_argument("--lams", type=float, nargs="+", default=list(EvalConfig.lams))
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    p.add_argument("--device", default="auto")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    args = vars(p.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        require("matplotlib", "The evaluation report", DEV_LOCK)  # checked now, not after the sampling
    except MissingPackageError as e:
        raise SystemExit(f"evaluate: {e}") from None
    report = evaluate(EvalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}))
    print(json.dumps({k: v for k, v in report.items() if k != "examples"}, indent=2))


if __name__ == "__main__":
    main()
