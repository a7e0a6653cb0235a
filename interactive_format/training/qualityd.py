"""A D that sees quality: "real" = a good reply, each fold's D trained without that fold's prompts.

    python -m interactive_format.training.qualityd [--report bench/results/d-quality-<date>.json] [train.py's flags]

train.py's adversarial loop, with the good replies of goodreplies.py (labelled ≥ 4, the 1.5B's) as real
beside the human chat turns, and the poor ones (labelled ≤ 2) as fake beside G's chat replies. It trains,
sharing G's cached chat samples and the sentence encoder's embeddings:
  - `final`: on every labelled prompt (what would ship as assets/discriminator);
  - `without-F`: without fold F's prompts, for every fold (its values on fold F are held-out);
  - `without-F-G`: without folds F and G, for every pair: fold F's fitted ranking is fitted on the other
    folds' prompts, each G's D values from a D that saw neither F nor G (labeleval's `fold_discriminators`).
Then it reports, per language, the shipped D beside the new one, each new value from a D that never saw
the prompt: within-prompt pairwise concordance with the labels (all labelled candidates of one user
message; 0.5 = chance), the clean-vs-defective ROC-AUC on real candidates (evaluate.py's, defects.py
decides) and the app's fitted ranking with each D (`evaluate labels`: headroom captured at N = 4).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .labeleval import FoldDiscriminators, hold_outs, run_name
from .labels import LabelledPrompt

log = logging.getLogger(__name__)

# The quality run's train.py settings: the shipped D's chat part (assets/discriminator's meta), the labels'
# good and poor replies, the 1.5B's unlabelled replies as real, the last epoch kept.
DEFAULTS = {
    "out_dir": Path("runs/quality-d"),
    "train_contexts": 200,
    "val_contexts": 24,
    "val_candidates": 3,
    "defect_negatives": 0.5,
    "head_lr": 0.005,
    "patience": 3,
    "rows_per_call": 16,
    "labels": "bench/labels",
    "real_pools": ",".join(
        ["bench/labels/pending/samples-qwen2.5-coder-1.5b-t0.7-s14.json"]
        + [f"bench/quality/replies-qwen2.5-coder-1.5b-{v}.json" for v in ("short", "short-v2", "short-v3")]
    ),
    "samples_dir": "runs/quality-d/samples",
    "embedding_cache": "runs/quality-d/embeddings.pt",
    "keep": "last",
}


def train_all(base, only: tuple[str, ...] = ()) -> None:
    """Train the final D and every fold's and pair's (in `only`'s names, if given)."""
    from .train import train

    for held in hold_outs(base.label_folds):
        name = run_name(held)
        if only and name not in only:
            continue
        cfg = dataclasses.replace(base, out_dir=base.out_dir / name, hold_out=",".join(map(str, held)))
        log.info("training %s", name)
        train(cfg)


# ---------------------------------------------------------------- the measures


def grouped(prompts: list[LabelledPrompt]) -> dict[str, list[LabelledPrompt]]:
    """The labelled prompts by user message: one message in two pools is one prompt."""
    out: dict[str, list[LabelledPrompt]] = defaultdict(list)
    for p in prompts:
        out[p.user].append(p)
    return out


def d_values(score, prompts: list[LabelledPrompt]) -> dict[tuple[str, str], list[float]]:
    """Each prompt's D values (`score(context, replies)`), NaN for an empty candidate (as the d signal)."""
    out = {}
    for p in prompts:
        texts = [c.text for c in p.candidates]
        got = iter(score(p.context, [t for t in texts if t.strip()]))
        out[(p.source, p.id)] = [next(got) if t.strip() else float("nan") for t in texts]
    return out


@dataclass
class _Group:
    labels: list[int]
    values: list[float]


def concordance_by(prompts: list[LabelledPrompt], values: dict, fold_of: dict[str, int], joined: bool) -> dict:
    """Within-prompt concordance of D with the labels per language, all folds together and each fold; a
    prompt is a user message with its candidates of every pool (`joined`) or one pool's candidates."""
    from .labeleval import concordance

    groups = grouped(prompts) if joined else {(p.source, p.id): [p] for p in prompts}
    scored = {
        key: (ps[0].lang, fold_of[ps[0].user], _Group([y for p in ps for y in p.labels], [v for p in ps for v in values[(p.source, p.id)]]))
        for key, ps in groups.items()
    }  # fmt: skip
    out: dict = {}
    for lang in ("zh", "en"):
        mine = [(f, g) for lg, f, g in scored.values() if lg == lang]
        out[lang] = {
            "all": concordance([g for _, g in mine], lambda g: g.values),
            "per_fold": {
                str(f): concordance([g for h, g in mine if h == f], lambda g: g.values)
                for f in sorted({f for f, _ in mine})
            },
            "prompts": len(mine),
        }
    return out


def defect_auc(score, rows: list[dict], fold_of_context: dict[str, int] | None = None) -> dict:
    """evaluate.py's clean-vs-defective ROC-AUC per language (clean first candidates against the real
    defective candidates, and against defective ones built from them); per fold too with `fold_of_context`."""
    from .evaluate import clean_vs_defective_auc

    class _Scorer:  # clean_vs_defective_auc calls d.score
        def __init__(self, fn):
            self.score = fn

    out: dict = {}
    for lang in ("zh", "en"):
        rs = [r for r in rows if r["lang"] == lang]
        out[lang] = clean_vs_defective_auc(_Scorer(score), rs)
    if fold_of_context:
        out["per_fold"] = {
            str(f): clean_vs_defective_auc(_Scorer(score), [r for r in rows if fold_of_context[r["context"]] == f])
            for f in sorted(set(fold_of_context.values()))
        }
    return out


def all_candidates_auc(prompts: list[LabelledPrompt], values: dict) -> dict:
    """ROC-AUC of D on every labelled candidate: defect-free against defective (defects.py), per language."""
    from ..ranking.defects import find
    from .judges import roc_auc

    out = {}
    for lang in ("zh", "en"):
        clean, bad = [], []
        for p in (p for p in prompts if p.lang == lang):
            for c, v in zip(p.candidates, values[(p.source, p.id)]):
                if c.text.strip():
                    (bad if find(c.text, p.context, c.finished) else clean).append(v)
        out[lang] = {"clean": len(clean), "defective": len(bad), "auc": round(roc_auc(clean, bad), 3)}
    return out


def ranking_summary(report: dict) -> dict:
    """From `evaluate labels`' report, per pool and language at N = 4: the fitted ranking's and the seed's
    shown mean and headroom (with its 95 % interval), D alone's, and the concordances of D and the fit."""
    out: dict = {}
    for pool, langs in report["rankers"].items():
        for lang, ns in langs.items():
            rows, conc = ns.get("4"), report["concordance"][pool][lang].get("4", {})
            if not rows:
                continue
            pick = ("shown_mean", "headroom", "headroom_ci95")
            out.setdefault(pool, {})[lang] = {
                "prompts": report["pools"][pool][lang]["4"]["prompts"],
                "mean": report["pools"][pool][lang]["4"]["mean"],
                "oracle_mean": report["pools"][pool][lang]["4"]["oracle_mean"],
                **{name: {k: rows[name][k] for k in pick} for name in ("fitted", "seed", "d") if rows.get(name)},
                "concordance_n4": {name: conc.get(name) for name in ("d", "fitted", "seed")},
            }
    out["fitted_weights_n4_per_fold"] = report["weights"]["4"]["fitted"]
    return out


# ---------------------------------------------------------------- the report


def measure(cfg_labels, prompts: list[LabelledPrompt], score, fold_of: dict[str, int], route: dict | None) -> dict:
    """Every measure of one D (`score`: the shipped D's or the fold Ds' routed score)."""
    from ..dialogue import context_text
    from .evaluate import read_rows

    values = d_values(score, prompts)
    rows = read_rows(("samples-qwen2.5-coder-0.5b-t0.7-s14.json",))
    for r in rows:
        r["context"] = context_text([{"role": "user", "content": r["text"]}])
    return {
        "concordance": concordance_by(prompts, values, fold_of, joined=True),
        "concordance_within_pool": concordance_by(prompts, values, fold_of, joined=False),
        "auc_clean_vs_defective_t07_pool": defect_auc(score, rows, route),
        "auc_clean_vs_defective_all_labelled": all_candidates_auc(prompts, values),
    }


def run_summaries(base) -> dict[str, dict]:
    """Each trained run's summary.json (train.py's), by run name."""
    out = {}
    for held in hold_outs(base.label_folds):
        path = base.out_dir / run_name(held) / "summary.json"
        if path.exists():
            out[run_name(held)] = json.loads(path.read_text())
    return out


def report(base, out_dir: Path) -> dict:
    """The shipped D and the new fold Ds side by side, every measure cross-validated by fold."""
    from ..ranking.discriminator import load_discriminator
    from .labeleval import LabelsConfig, evaluate_labels, folds
    from .labels import read_all

    lcfg = LabelsConfig(folds=base.label_folds, fold_seed=base.label_fold_seed)
    prompts = read_all(lcfg.labels)
    fold_of = folds(prompts, lcfg.folds, lcfg.fold_seed)
    shipped = load_discriminator(lcfg.discriminator)
    ds = FoldDiscriminators.load(out_dir, prompts, lcfg.folds, lcfg.fold_seed).route(prompts)
    route = {p.context: fold_of[p.user] for p in prompts}
    new_labels = evaluate_labels(dataclasses.replace(lcfg, fold_discriminators=str(out_dir)))
    return {
        "made_by": "python -m interactive_format.training.qualityd " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "train": {k: str(v) for k, v in dataclasses.asdict(base).items()},
        "folds": {
            "k": lcfg.folds,
            "seed": lcfg.fold_seed,
            "by": "user message (labeleval.folds)",
            "prompts_per_fold": {str(f): list(fold_of.values()).count(f) for f in range(lcfg.folds)},
        },
        "runs": run_summaries(base),
        "shipped": {
            **measure(lcfg, prompts, shipped.score, fold_of, route),
            "ranking_n4": ranking_summary(evaluate_labels(lcfg)),
        },
        "new": {**measure(lcfg, prompts, ds.score, fold_of, route), "ranking_n4": ranking_summary(new_labels)},
    }


def main(argv: list[str] | None = None) -> None:
    import argparse

    from .train import parse_args

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Every flag of python -m interactive_format.train applies too."
    )
    p.add_argument("--report", default=f"bench/results/d-quality-{time.strftime('%Y-%m-%d')}.json")
    p.add_argument("--no-train", action="store_true", help="report on the Ds already trained in --out-dir")
    p.add_argument("--only", default="", help="comma-separated run names to train (e.g. final,without-0)")
    own, rest = p.parse_known_args(argv)
    base = parse_args(rest, DEFAULTS)
    try:
        if not own.no_train:
            train_all(base, tuple(x for x in own.only.split(",") if x))
        out = report(base, base.out_dir)
    except ValueError as e:
        raise SystemExit(f"qualityd: {e}") from None
    Path(own.report).parent.mkdir(parents=True, exist_ok=True)
    Path(own.report).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: out[k] for k in ("shipped", "new")}, indent=1, ensure_ascii=False)[:6000])


if __name__ == "__main__":
    main()
