"""How good is the reply each ranking shows? Measured on the reply-quality labels (bench/labels).

    python -m interactive_format.evaluate labels [--write-ranking assets/ranking.json]

For every labelled pool (one source file: one generator, one sampling), per language and N = 2 / 4 / 8
(prompts with at least N labelled candidates; the first N in sample order): the mean label of the reply
each ranking shows, its poor (≤ 2) and good (≥ 4) shares, the first sample's mean, the mean of the N
(= a random pick's expected label, exactly), the oracle (best of the N) and the headroom captured,
(shown − mean) / (oracle − mean). Every ranking that is fitted is cross-validated by prompt: the prompts
(one user message, in every pool that has it) are dealt into `folds` folds, and each fold is ranked by
weights fitted on the others only. Rankings, all from the same run: the first sample, random, the
oracle, each signal alone, the seed (the app's ranking before the labels: the fewest defects, then
λ·D + (1−λ)·J with the shipped D's λ), the fitted ranking of the app (`APP`: the fewest defects, then a
weighted sum of the free and cheap signals; what assets/ranking.json ships) and the same with the
verifier. Plus each ranking's within-prompt pairwise concordance with the labels (0.5 = chance) and a
95 % bootstrap interval of its headroom. Writes bench/results/labels-eval.json and a PNG beside it.

Signal values a model computes (cost "model": the verifier) are kept in a cache file by the hash of the
prompt and the reply, so the evaluation re-runs in a minute; `--compute-verifier` reads what is missing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from .labels import LABELS_DIR, ROOT, LabelledPrompt, folds, read_all
from ..ranking.ranking import Ranking, fit, save_ranking, seed, standardise
from ..ranking.signals import SIGNALS, Context, Models

log = logging.getLogger(__name__)

# What the app's fitted ranking reads (its weights are fitted): the fewest defects first, as the seed (the
# labels found it as good as weighing defects with the rest, and a looping or cut-off reply never wins over a
# clean one), then a weighted sum of the free and cheap signals; no "model" signal (seconds per turn).
APP = Ranking(dict.fromkeys(("j", "d", "consensus", "brevity", "finished"), 0.0), first=("defects",))
POOR, GOOD = 2, 4  # label ≤ POOR is poor, ≥ GOOD is good


@dataclass(frozen=True)
class LabelsConfig:
    labels: Path = LABELS_DIR  # every *.jsonl in it
    out: Path = ROOT / "bench" / "results" / "labels-eval.json"  # and the .png beside it
    ns: tuple[int, ...] = (2, 4, 8)
    folds: int = 5  # cross-validation by prompt
    fold_seed: int = 0  # how prompts are dealt into folds
    l2: float = 1.0  # the fit's L2 penalty (features are standardised per turn)
    discriminator: Path = ROOT / "assets" / "discriminator"  # the shipped D, read with the app's loader
    # A quality run's directory (qualityd.py) of Ds each trained without some folds' prompts: every D value of
    # a labelled prompt then comes from a D that never saw it. Needed when `discriminator` was trained on them.
    fold_discriminators: str = ""
    # Which model reads each generator's candidates as the verifier: GENERATOR=VERIFIER
    verifiers: tuple[str, ...] = (
        "embedded:qwen2.5-coder-0.5b=embedded:qwen2.5-coder-1.5b",
        "embedded:qwen2.5-coder-1.5b=embedded:qwen2.5-coder-0.5b",
    )
    verifier_cache: Path = LABELS_DIR / "cache" / "verifier.jsonl"
    compute_verifier: bool = False  # load the verifiers for readings the cache lacks (else they are missing)
    verifier_limit: int = 4  # read the first this many candidates of a prompt (the verifier is slow on a CPU)
    write_ranking: str = ""  # a path: write the weights fitted on every labelled prompt at N = 4 there


# ---------------------------------------------------------------- folds and signal values


class CachedVerifier:
    """A verifier's readings by (verifier, prompt, reply) hash, read from and appended to a JSON-lines file."""

    def __init__(self, spec: str, path: Path, compute: bool, limit: int) -> None:
        self.spec, self.path, self.compute, self.limit = spec, path, compute, limit
        self.values: dict[tuple[str, str, bool], float] = {}
        self.model = None
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                r = json.loads(line)
                if r["by"] == spec:
                    self.values[(r["prompt"], r["reply"], r["finished"])] = r["total"]

    def score(self, messages: list[dict], replies: list[str], finished: list[bool]) -> list[float]:
        """The cached log-likelihoods; missing ones computed (if allowed, the first `limit`) or NaN."""
        prompt = _digest(json.dumps(messages, ensure_ascii=False, sort_keys=True))
        keys = [(prompt, _digest(r), f) for r, f in zip(replies, finished)]
        todo = [i for i, key in enumerate(keys[: self.limit]) if key not in self.values]
        if todo and self.compute:
            self._read(messages, [replies[i] for i in todo], [finished[i] for i in todo], [keys[i] for i in todo])
        return [self.values.get(key, float("nan")) for key in keys]

    def _read(self, messages, replies, finished, keys) -> None:
        if self.model is None:
            from ..config import default_cache_dir
            from ..ranking.verifier import Verifier

            self.model = Verifier.from_spec(self.spec, default_cache_dir(), threads=2)
        readings = self.model.read(messages, replies, finished)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for (prompt, reply, done), r in zip(keys, readings):
                self.values[(prompt, reply, done)] = round(r.total, 4)
                f.write(json.dumps(cache_record(self.spec, prompt, reply, done, r)) + "\n")


def cache_record(spec: str, prompt: str, reply: str, finished: bool, reading) -> dict:
    """One line of the verifier's cache: whose reading of which reply (hashes), its total and mean log-prob."""
    return {"by": spec, "prompt": prompt, "reply": reply, "finished": finished, "total": round(reading.total, 4),
            "mean": round(reading.mean_logprob, 5), "tokens": reading.tokens}  # fmt: skip


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def signal_values(prompt: LabelledPrompt, n: int, models: Models, names: tuple[str, ...], memo: dict) -> dict:
    """Each signal's values on the prompt's first n candidates; a signal of one candidate alone is computed
    once on all of them (`memo`) and cut to n."""
    context = Context(prompt.context, tuple(prompt.messages), models)
    out = {}
    for name in names:
        signal = SIGNALS[name]
        if signal.alone:
            key = (prompt.source, prompt.id, name)
            if key not in memo:
                memo[key] = signal.score(context, prompt.candidates)
            out[name] = None if memo[key] is None else memo[key][:n]
        else:
            out[name] = signal.score(context, prompt.candidates[:n])
    return out


# ---------------------------------------------------------------- rankings


@dataclass
class Turn:
    """One prompt at one N: its labels, usable (non-empty) candidates and signal values."""

    prompt: LabelledPrompt
    labels: list[int]
    usable: list[bool]
    values: dict[str, list[float] | None]

    def features(self, names: tuple[str, ...]) -> np.ndarray:
        """(candidates, signals): each signal standardised over the turn, as a "turn"-scaled Ranking reads it."""
        columns = [self.values[s] for s in names]
        return np.stack([np.zeros(len(self.labels)) if x is None else standardise(x, self.usable) for x in columns], 1)

    def complete(self, names: tuple[str, ...]) -> bool:
        """Every signal of `names` has a value for every usable (non-empty) candidate."""
        ok = np.asarray(self.usable)
        return all(self.values[s] is not None and np.isfinite(np.asarray(self.values[s])[ok]).all() for s in names)


def fitted(train: list[Turn], template: Ranking, l2: float) -> Ranking:
    """`template` with the weights of its signals fitted on `train`: on the pairs of usable candidates that its
    `first` signals leave tied (only those does the weighted sum order)."""
    names = tuple(template.weights)
    data = [group for t in train for group in _tied_groups(t, template.first, names)]
    w = fit(data, l2) if data else np.zeros(len(names))
    return dataclasses.replace(template, weights={s: round(float(x), 4) for s, x in zip(names, w)})


def _tied_groups(t: Turn, first: tuple[str, ...], names: tuple[str, ...]):
    """The turn's usable candidates grouped by the values of the `first` signals, each group of two or more as
    (features (members, signals), labels); the features are standardised over the whole turn, as ranked."""
    x = t.features(names)
    keys = [tuple(t.values[s][i] for s in first) if ok else None for i, ok in enumerate(t.usable)]
    for key in dict.fromkeys(k for k in keys if k is not None):
        members = [i for i, k in enumerate(keys) if k == key]
        if len(members) >= 2:
            yield x[members], [t.labels[i] for i in members]


def cross_validated(
    turns: list[Turn],
    fold_of: dict[str, int],
    k: int,
    template: Ranking,
    l2: float,
    fit_on: dict[int, list[Turn]] | None = None,
) -> tuple[dict[int, list[float]], list[dict]]:
    """Each turn's order (by id(turn), one number per candidate, higher = earlier) under `template` fitted on
    the other folds, and each fold's weights. `fit_on[f]`: the turns fold f's weights are fitted on instead
    of `turns` (the same prompts, their D values from Ds that saw neither fold f nor the turn's own)."""
    scores, weights = {}, []
    for f in range(k):
        pool = turns if fit_on is None else fit_on[f]
        train = [t for t in pool if fold_of[t.prompt.user] != f and t.complete(template.signals)]
        ranking = fitted(train, template, l2)
        weights.append(ranking.weights)
        for t in turns:
            if fold_of[t.prompt.user] == f:
                scores[id(t)] = _order_key(ranking, t)
    return scores, weights


def concordance(turns: list[Turn], score) -> float | None:
    """Within-prompt pairwise agreement of `score(turn) -> list` with the labels: 1 per agreeing pair of
    different labels, ½ per tie of the score, over all such pairs (0.5 = chance)."""
    agree = pairs = 0.0
    for t in turns:
        s, y = score(t), t.labels
        for i in range(len(y)):
            for j in range(i + 1, len(y)):
                if y[i] != y[j]:
                    pairs += 1
                    order = (s[i] > s[j]) - (s[i] < s[j])  # 0 for a tie or a missing value (NaN)
                    agree += 0.5 + 0.5 * order * (1 if y[i] > y[j] else -1)
    return round(agree / pairs, 3) if pairs else None


# ---------------------------------------------------------------- the report


def summary(turns: list[Turn], picks: list[int] | None) -> dict:
    """Shown mean, poor/good shares and headroom of one ranking (`picks`: index per turn; None = random)."""
    mean = statistics.fmean(statistics.fmean(t.labels) for t in turns)
    oracle = statistics.fmean(max(t.labels) for t in turns)
    if picks is None:  # a random pick: exactly the mean over its N candidates
        shown = [t.labels for t in turns]
    else:
        shown = [[t.labels[i]] for t, i in zip(turns, picks)]
    value = statistics.fmean(statistics.fmean(x) for x in shown)
    poor = statistics.fmean(statistics.fmean(y <= POOR for y in x) for x in shown)
    good = statistics.fmean(statistics.fmean(y >= GOOD for y in x) for x in shown)
    return {
        "shown_mean": round(value, 3),
        "poor_share": round(poor, 3),
        "good_share": round(good, 3),
        "headroom": round((value - mean) / (oracle - mean), 3) if oracle > mean else None,
    }


def headroom_interval(turns: list[Turn], picks: list[int], draws: int = 2000) -> list[float] | None:
    """A 95 % bootstrap interval of the headroom captured, prompts drawn with replacement: how much of a
    difference between rankings a pool of this size can tell from chance."""
    shown = np.array([t.labels[i] for t, i in zip(turns, picks)], float)
    mean = np.array([statistics.fmean(t.labels) for t in turns])
    best = np.array([max(t.labels) for t in turns], float)
    draw = np.random.default_rng(0).integers(0, len(turns), (draws, len(turns)))
    gap = (best[draw] - mean[draw]).mean(1)
    ok = gap > 0
    if not ok.any():
        return None
    values = (shown[draw] - mean[draw]).mean(1)[ok] / gap[ok]
    return [round(float(x), 3) for x in np.quantile(values, [0.025, 0.975])]


def build_turns(cfg: LabelsConfig, prompts: list[LabelledPrompt], models_for) -> dict[int, list[Turn]]:
    """Every labelled prompt at every N of `cfg.ns` it has candidates for, with every signal's values;
    `models_for(prompt)` gives the Models its signals use."""
    memo: dict = {}
    turns: dict[int, list[Turn]] = {}
    for n in cfg.ns:
        turns[n] = []
        for p in prompts:
            if len(p.candidates) >= n:
                values = signal_values(p, n, models_for(p), tuple(SIGNALS), memo)
                usable = [bool(c.text.strip()) for c in p.candidates[:n]]
                turns[n].append(Turn(p, p.labels[:n], usable, values))
    return turns


def evaluate_labels(cfg: LabelsConfig) -> dict:
    """Read the labels, load the shipped D and the verifiers' cache, compute every signal, report."""
    from ..ranking.discriminator import load_discriminator

    prompts = read_all(cfg.labels)
    d = load_discriminator(cfg.discriminator, "cpu")
    by = dict(x.split("=", 1) for x in cfg.verifiers)
    verifiers = {
        g: CachedVerifier(v, cfg.verifier_cache, cfg.compute_verifier, cfg.verifier_limit) for g, v in by.items()
    }
    if cfg.fold_discriminators:  # a D trained on the labels: each prompt's D value from one that never saw it
        ds = FoldDiscriminators.load(cfg.fold_discriminators, prompts, cfg.folds, cfg.fold_seed)
        turns, fit_on = ds.turns(cfg, prompts, lambda p: verifiers.get(p.model))
        return {**make_report(cfg, prompts, turns, ds.lam, fit_on), "d_values": f"held-out: {cfg.fold_discriminators}"}
    seen = d is not None and bool(d.meta.get("training", {}).get("labels"))  # D trained on these very labels
    if seen and cfg.write_ranking:  # D's weight would be fitted on values D learnt: too high
        raise ValueError(
            f"{cfg.discriminator} was trained on the labels: to fit a ranking, pass --fold-discriminators with "
            "the Ds `python -m interactive_format.training.qualityd` trained without each fold."
        )
    if seen:
        log.warning("%s was trained on the labels: its values on them are in-sample", cfg.discriminator)
    turns = build_turns(cfg, prompts, lambda p: Models(d, verifiers.get(p.model)))
    return {**make_report(cfg, prompts, turns, float(d.meta.get("lam", 0.5))), "d_trained_on_labels": seen}


def make_report(
    cfg: LabelsConfig,
    prompts: list[LabelledPrompt],
    turns: dict[int, list[Turn]],
    lam: float,
    fit_on: dict[int, dict[int, list[Turn]]] | None = None,
) -> dict:
    """The report of every ranking on `turns` (see the module docstring); the seed's λ is `lam`; `fit_on[n][f]`:
    the turns at N = n that fold f's weights are fitted on, where they are not `turns` (cross_validated)."""
    from ..config import ModelsConfig

    fold_of = folds(prompts, cfg.folds, cfg.fold_seed)
    names = tuple(SIGNALS)
    rankings = {
        "fitted": APP,
        "fitted_with_verifier": dataclasses.replace(APP, weights={**APP.weights, "verifier": 0.0}),
    }
    out: dict = {
        "default_model": ModelsConfig().llm,
        "labels": {
            "files": sorted(p.name for p in cfg.labels.glob("*.jsonl")),
            "prompts": len(prompts),
            "candidates": sum(len(p.labels) for p in prompts),
        },
        "method": {
            "folds": cfg.folds,
            "by": "prompt (user message)",
            "fit": "pairwise logistic regression on per-turn standardised signals, on the pairs the `first` "
            f"signals leave tied, L2 {cfg.l2:g}",
            "seed_lam": lam,
            "rankings": {k: {"first": list(r.first), "weighted": list(r.weights)} for k, r in rankings.items()},
        },
        "pools": {},
        "rankers": {},
        "concordance": {},
        "signals": {name: {"cost": SIGNALS[name].cost} for name in names},
        "weights": {},
    }
    for n, ts in turns.items():
        weights = out["weights"].setdefault(str(n), {})
        scores = _scores(ts, rankings, lam, fold_of, cfg, weights, fit_on[n] if fit_on else None)
        for pool, pool_turns in _pools(ts).items():
            for lang in ("zh", "en"):
                sel = [t for t in pool_turns if t.prompt.lang == lang]
                if sel:
                    _report_turns(out, pool, lang, n, sel, scores)
    if cfg.write_ranking:
        _write_ranking(turns[4], APP, cfg, out)
    return out


def _scores(
    ts: list[Turn], rankings: dict, lam: float, fold_of: dict, cfg: LabelsConfig, weights: dict, fit_on=None
) -> dict:
    """Every ranking's scores of every turn's candidates (by id(turn), higher = shown first); None where its
    signals are missing. The fitted rankings' are cross-validated; their weights per fold go to `weights`."""
    out: dict[str, dict[int, list[float] | None]] = {
        "first": {id(t): [-i for i in range(len(t.labels))] for t in ts},
        "oracle": {id(t): [y - i / 100 for i, y in enumerate(t.labels)] for t in ts},
        "seed": {id(t): _order_key(seed(lam), t) for t in ts},
    }
    for name in SIGNALS:  # each alone: its own values (ties are ties), empty candidates last
        out[name] = {id(t): _usable_only(t.values[name], t.usable) if t.complete((name,)) else None for t in ts}
    for label, template in rankings.items():
        scores, weights[label] = cross_validated(ts, fold_of, cfg.folds, template, cfg.l2, fit_on)
        out[label] = {id(t): scores[id(t)] if t.complete(template.signals) else None for t in ts}
    return out


def _usable_only(x: list[float], usable: list[bool]) -> list[float]:
    return [v if ok else -math.inf for v, ok in zip(x, usable)]


def _order_key(ranking: Ranking, t: Turn) -> list[float]:
    """A ranking's order of the turn as one number per candidate, higher = earlier (its `first` signals and
    ties included, which its score alone does not say)."""
    order = ranking.order(t.values, t.usable)
    return [-float(order.index(i)) for i in range(len(t.labels))]


def _pools(ts: list[Turn]) -> dict[str, list[Turn]]:
    out: dict[str, list[Turn]] = defaultdict(list)
    for t in ts:
        out[Path(t.prompt.source).stem].append(t)
    return out


def _report_turns(report: dict, pool: str, lang: str, n: int, ts: list[Turn], scores: dict) -> None:
    """The pool's row for (lang, n) — the app's fitted ranking — and every ranking's under "rankers", with its
    concordance under "concordance"."""
    entry = report["pools"].setdefault(pool, {"model": ts[0].prompt.model, "source": ts[0].prompt.source})
    rows = report["rankers"].setdefault(pool, {}).setdefault(lang, {}).setdefault(str(n), {})
    conc = report["concordance"].setdefault(pool, {}).setdefault(lang, {}).setdefault(str(n), {})
    rows["random"] = summary(ts, None)
    for name, by_turn in scores.items():
        got = [by_turn[id(t)] for t in ts]
        picks = None if None in got else [_pick(s) for s in got]
        rows[name] = None if picks is None else {**summary(ts, picks), "headroom_ci95": headroom_interval(ts, picks)}
        if name not in ("first", "oracle"):
            conc[name] = None if picks is None else concordance(ts, lambda t, d=by_turn: d[id(t)])
    entry.setdefault(lang, {})[str(n)] = {
        **rows["fitted"],
        "first_mean": rows["first"]["shown_mean"],
        "mean": round(statistics.fmean(statistics.fmean(t.labels) for t in ts), 3),
        "oracle_mean": round(statistics.fmean(max(t.labels) for t in ts), 3),
        "prompts": len(ts),
    }


def _pick(scores: list[float]) -> int:
    """The highest score's index (ties: the earlier candidate)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def _write_ranking(ts: list[Turn], template: Ranking, cfg: LabelsConfig, report: dict) -> None:
    """Fit the app's ranking on every labelled prompt at N = 4 and save it where the app reads it."""
    ranking = fitted([t for t in ts if t.complete(template.signals)], template, cfg.l2)
    headroom = {
        pool: {lang: rows.get("4", {}).get("headroom") for lang, rows in entry.items() if lang in ("zh", "en")}
        for pool, entry in report["pools"].items()
    }
    meta = {
        "fitted_on": report["labels"],
        "n": 4,
        "l2": cfg.l2,
        "signals": list(template.signals),
        "cross_validated_headroom_n4": headroom,
        "made_by": "python -m interactive_format.evaluate labels --write-ranking",
    }
    ranking = dataclasses.replace(ranking, meta=meta)
    save_ranking(ranking, cfg.write_ranking)
    report["shipped_ranking"] = ranking.to_json()


def run(cfg: LabelsConfig) -> dict:
    """Evaluate, write the JSON and the PNG, print the pools' table."""
    report = evaluate_labels(cfg)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    plot(report, cfg.out.with_suffix(".png"))
    print(table(report))
    return report


def table(report: dict) -> str:
    """The pools' rows as text: shown / mean / oracle / headroom per language and N."""
    lines = ["pool | lang | N | prompts | first | mean | shown | oracle | headroom | seed | poor | good"]
    for pool, entry in report["pools"].items():
        for lang in ("zh", "en"):
            for n, r in entry.get(lang, {}).items():
                seed_row = report["rankers"][pool][lang][n]["seed"]
                lines.append(
                    f"{pool} | {lang} | {n} | {r['prompts']} | {r['first_mean']:.2f} | {r['mean']:.2f} | "
                    f"{r['shown_mean']:.2f} | {r['oracle_mean']:.2f} | {_percent(r['headroom'])} | "
                    f"{_percent(seed_row['headroom'])} | {r['poor_share']:.2f} | {r['good_share']:.2f}"
                )
    return "\n".join(lines)


def _percent(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.0f} %"


def plot(report: dict, png: Path) -> None:
    """Per pool (rows) and language (columns) at N = 4: the headroom each ranking captures, with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pools = [pool for pool in report["rankers"] if any("4" in report["rankers"][pool].get(x, {}) for x in ("zh", "en"))]
    fig, axes = plt.subplots(len(pools), 2, figsize=(11, 3.6 * len(pools)), squeeze=False)
    for row, pool in zip(axes, pools):
        for ax, lang in zip(row, ("zh", "en")):
            rows = report["rankers"][pool].get(lang, {}).get("4", {})
            names = [k for k, v in rows.items() if v is not None and k not in ("oracle", "random")]
            values = [100 * rows[k]["headroom"] for k in names]
            low = [v - 100 * rows[k]["headroom_ci95"][0] for k, v in zip(names, values)]
            high = [100 * rows[k]["headroom_ci95"][1] - v for k, v in zip(names, values)]
            colours = ["tab:orange" if k.startswith("fitted") else "tab:blue" for k in names]
            ax.barh(range(len(names)), values, xerr=[low, high], color=colours, error_kw={"lw": 0.8})
            ax.set_yticks(range(len(names)), names, fontsize=8)
            ax.axvline(0, color="grey", lw=1), ax.axvline(60, color="tab:green", lw=1, ls="--")
            ax.set_xlim(-110, 110)
            prompts = report["pools"][pool][lang]["4"]["prompts"]
            ax.set_title(f"{pool} — {lang}, N = 4, {prompts} prompts", fontsize=9)
            ax.set_xlabel(
                "% of best-of-4 headroom captured (0: random, 100: oracle; dashed: the 60 % target)", fontsize=7
            )
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------- Ds trained on the labels (training/qualityd.py)

FINAL = "final"  # the run of the D trained on every labelled prompt


def run_name(held: tuple[int, ...]) -> str:
    """The run directory of the D trained without the folds `held` (none: the final D)."""
    return "without-" + "-".join(map(str, sorted(held))) if held else FINAL


def hold_outs(k: int) -> list[tuple[int, ...]]:
    """Every set of held-out folds a fold-by-fold evaluation needs: none, each fold, each pair."""
    return [(), *((f,) for f in range(k)), *combinations(range(k), 2)]


@dataclass
class FoldDiscriminators:
    """The Ds of one quality run by the folds each was trained without, sharing one sentence encoder."""

    by_held: dict[frozenset, object]  # frozenset of held-out folds -> D
    fold_of: dict[str, int]  # user message -> fold
    k: int
    lam: float  # the final D's λ (the seed ranking's λ·D + (1−λ)·J)

    @classmethod
    def load(cls, directory: str | Path, prompts: list[LabelledPrompt], k: int, seed: int) -> FoldDiscriminators:
        """The fold and pair Ds of `directory` (qualityd's out_dir); ValueError if one is missing or was
        trained on other folds than `k` and `seed` deal."""
        from ..ranking.discriminator import load_discriminator

        ds, encoder = {}, None
        final = Path(directory) / FINAL / "best" / "discriminator.json"
        lam = json.loads(final.read_text()).get("lam", 0.5) if final.exists() else 0.5
        for held in hold_outs(k)[1:]:
            path = Path(directory) / run_name(held) / "best"
            if not (path / "discriminator.json").exists():
                raise ValueError(
                    f"no D trained without folds {list(held)} in {path}: run python -m interactive_format.training.qualityd"
                )
            d = load_discriminator(path)
            t = d.meta.get("training", {})
            made = (t.get("label_folds"), t.get("label_fold_seed"), t.get("hold_out"))
            if made != (k, seed, ",".join(map(str, held))):
                raise ValueError(f"{path} was not trained without folds {list(held)} of {k} (fold seed {seed})")
            if encoder is None:  # one encoder and embedding cache for all, filled from the run's file
                encoder = d.encoder
                if t.get("embedding_cache") and hasattr(encoder, "read_cache"):
                    encoder.read_cache(ROOT / t["embedding_cache"])
            d.encoder = encoder
            ds[frozenset(held)] = d
        return cls(ds, folds(prompts, k, seed), k, float(lam))

    def without(self, *folds_: int):
        """The D that never saw a prompt of `folds_`."""
        return self.by_held[frozenset(folds_)]

    def turns(self, cfg, prompts: list[LabelledPrompt], verifier_for) -> tuple[dict, dict]:
        """labeleval's turns with each prompt's D values from the D without its fold, and `fit_on[n][f]`:
        the turns fold f's ranking is fitted on (fold g's D values from the D without f and g)."""
        from ..ranking.signals import Models

        def models(*extra: int):
            return lambda p: Models(self.without(*sorted({self.fold_of[p.user], *extra})), verifier_for(p))

        turns = build_turns(cfg, prompts, models())
        fit_on: dict[int, dict[int, list]] = defaultdict(dict)
        for f in range(self.k):
            others = [p for p in prompts if self.fold_of[p.user] != f]
            for n, ts in build_turns(cfg, others, models(f)).items():
                fit_on[n][f] = ts
        return turns, dict(fit_on)

    def score(self, context: str, replies: list[str]) -> list[float]:
        """D.score by the D without the context's fold (the context of a labelled prompt, no system line)."""
        return self.without(self._context_fold[context]).score(context, replies)

    def route(self, prompts: list[LabelledPrompt]) -> FoldDiscriminators:
        """Let `score` find each labelled prompt's fold by its context."""
        self._context_fold = {p.context: self.fold_of[p.user] for p in prompts}
        return self
