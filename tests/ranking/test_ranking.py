"""Ranking signals as plug-ins, the fitted weights, and their cross-validated evaluation on the labels."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from interactive_format.training import labeleval
from interactive_format.ranking import signals
from interactive_format.dialogue import Candidate
from interactive_format.ranking.ranking import combine
from interactive_format.errors import ModelLoadError
from interactive_format.training.labeleval import APP, LabelsConfig, folds
from interactive_format.training.labels import read_all, read_labels
from interactive_format.ranking.ranking import ASSET, Ranking, Reranker, fit, load_ranking, save_ranking, seed
from interactive_format.ranking.signals import SIGNALS

from ..fakes import FixedD

CONTEXT = "user: 第一次去北京，必须去的景点有哪些？"
LOOP = "北京西站站站站站站站站站站站站站站站站站站站站站站站站"
GOOD = "故宫、长城和颐和园都值得一去。"
LONG = "故宫、长城、颐和园、天坛、北海公园、南锣鼓巷和798艺术区都值得一去，可以安排三到四天慢慢逛。"


def test_every_module_of_the_signals_package_is_registered_once():
    package = Path(signals.__file__).parent
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    assert set(signals.MODULES) == modules
    assert all(s.cost in signals.COSTS and isinstance(s.alone, bool) for s in SIGNALS.values())
    assert {name: s.cost for name, s in SIGNALS.items()}["verifier"] == "model"


def test_a_signal_in_one_new_file_changes_the_ranking(tmp_path, monkeypatch):
    plugin = tmp_path / "myplugins"
    plugin.mkdir()
    (plugin / "__init__.py").write_text("")
    (plugin / "longest.py").write_text(
        "class Longest:\n"
        "    name, cost, alone = 'longest', 'free', True\n"
        "    def score(self, context, candidates):\n"
        "        return [float(len(c.text)) for c in candidates]\n"
        "SIGNAL = Longest()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = signals.load(("j", "myplugins.longest"))  # the registry line
    monkeypatch.setitem(SIGNALS, "longest", found["longest"])
    cands = [Candidate(GOOD, -0.2), Candidate(LONG, -0.9)]
    assert Reranker(ranking=Ranking({"j": 1.0})).rank(CONTEXT, cands) == [0, 1]
    assert Reranker(ranking=Ranking({"j": 1.0, "longest": 2.0})).rank(CONTEXT, cands) == [1, 0]
    assert cands[1].scores["longest"] == len(LONG) and cands[1].scores["j"] == -0.9  # stored by name
    sys.modules.pop("myplugins.longest"), sys.modules.pop("myplugins")
    importlib.invalidate_caches()


def test_a_signal_with_a_bad_cost_or_a_ranking_with_an_unknown_signal_is_refused(tmp_path, monkeypatch):
    (tmp_path / "badplugins").mkdir()
    (tmp_path / "badplugins" / "__init__.py").write_text("")
    (tmp_path / "badplugins" / "pricey.py").write_text(
        "class S:\n    name, cost, alone = 'pricey', 'cheapish', True\nSIGNAL = S()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="cost must be one of"):
        signals.load(("badplugins.pricey",))
    with pytest.raises(ValueError, match="unknown signal"):
        Ranking({"no_such_signal": 1.0})


def test_the_seed_is_the_two_signal_case_of_the_weighted_sum():
    values = {"d": [0.8, None, 0.3, 0.6], "j": [-0.4, -0.2, math.nan, -1.5]}
    for lam in (0.0, 0.3, 1.0):
        ranking = seed(lam)
        assert ranking.weights == {"d": lam, "j": 1 - lam} and ranking.first == ("defects",)
        d = [0.8, math.nan, 0.3, 0.6]
        got = ranking.score({"d": d, "j": values["j"]}, [True] * 4)
        want = [combine(None if math.isnan(x) else x, j, lam) for x, j in zip(d, values["j"])]
        assert got == pytest.approx(want)
    assert seed(0.5).score({"d": None, "j": [-0.4, -0.9]}, [True, True]) == pytest.approx([-0.4, -0.9])  # J alone


def test_the_seed_reranker_still_counts_defects_first_and_fills_in_the_panel():
    cands = [Candidate(LOOP, -0.1), Candidate(GOOD, -0.9), Candidate("", -0.05)]
    order = Reranker(FixedD({LOOP: 0.34, GOOD: 0.81}), lam=0.5).rank(CONTEXT, cands)
    assert order == [1, 0, 2]
    assert (cands[0].defects, cands[0].d, cands[2].d, cands[2].score) == (["loop"], 0.34, None, -math.inf)
    assert cands[1].score == pytest.approx(0.5 * 0.81 + 0.5 * -0.9)
    assert cands[0].scores == {"defects": -1.0, "d": 0.34, "j": -0.1}


def test_fit_finds_the_signal_that_orders_the_labels():
    rng = np.random.default_rng(0)
    turns = []
    for _ in range(60):
        x = rng.normal(size=(4, 2))  # column 0 decides the labels, column 1 is noise
        turns.append((x, list(np.argsort(np.argsort(x[:, 0])) + 1)))
    w = fit(turns, l2=1.0)
    assert w[0] > 2 and abs(w[1]) < 0.3 * w[0]
    assert list(fit([], 1.0)) == []


def test_the_weights_are_fitted_only_on_pairs_the_first_signals_leave_tied():
    """With defects first, a pair of one clean and one looping candidate says nothing about the weights."""
    prompt = read_all()[0]
    values = {"defects": [0.0, -1.0, 0.0, -1.0], "brevity": [-1.0, -8.0, -2.0, -9.0]}
    # within each tie the shorter candidate is the better; across the ties the long (defective) ones score higher
    turn = labeleval.Turn(prompt, [2, 5, 1, 4], [True] * 4, values)
    groups = list(labeleval._tied_groups(turn, ("defects",), ("brevity",)))
    assert [labels for _, labels in groups] == [[2, 1], [5, 4]]
    template = Ranking({"brevity": 0.0}, first=("defects",))
    assert labeleval.fitted([turn] * 10, template, 1.0).weights["brevity"] > 0  # shorter is better within ties
    assert labeleval.fitted([turn] * 10, Ranking({"brevity": 0.0}), 1.0).weights["brevity"] < 0  # all pairs


def test_the_shipped_ranking_loads_and_ranks_with_the_apps_signals():
    ranking = load_ranking(ASSET)
    assert ranking.scale == "turn" and ranking.first == ("defects",) and set(ranking.weights) == set(APP.weights)
    assert all(math.isfinite(w) for w in ranking.weights.values())
    assert ranking.meta["cross_validated_headroom_n4"]  # how well it does on prompts it was not fitted on
    reranker = Reranker(FixedD({LOOP: 0.3, GOOD: 0.3, "": 0.0}), lam=0.5, ranking=ranking)
    assert not reranker.uses_lam and reranker.note.startswith("Replies with the fewest defects")
    assert "fitted on reply-quality labels" in reranker.note
    cands = [Candidate(LOOP, -0.1, finished=False), Candidate(GOOD, -0.9), Candidate("", -0.05)]
    assert reranker.rank(CONTEXT, cands) == [1, 0, 2]  # the loop cut off loses; the empty one is always last
    assert set(cands[1].scores) == set(ranking.signals) - {"consensus"}  # the fake D has no sentence encoder


def test_a_saved_ranking_reads_back_and_a_bad_one_names_the_fix(tmp_path):
    ranking = Ranking({"defects": 1.0, "brevity": 0.2}, meta={"by": "test"})
    save_ranking(ranking, tmp_path / "r.json")
    assert load_ranking(tmp_path / "r.json") == ranking and load_ranking("off") is None
    (tmp_path / "bad.json").write_text(json.dumps({"weights": {"loudness": 1.0}}))
    for path in (tmp_path / "bad.json", tmp_path / "absent.json"):
        with pytest.raises(ModelLoadError, match="--ranking off"):
            load_ranking(path)


def test_folds_never_share_a_prompt_and_fitting_never_sees_the_fold_it_scores(monkeypatch):
    prompts = read_all()
    fold_of = folds(prompts, 5)
    assert set(fold_of.values()) == set(range(5)) and len(fold_of) == len({p.user for p in prompts})
    for lang in ("zh", "en"):  # each fold has about as many prompts of each language
        sizes = [sum(1 for p in prompts if p.lang == lang and fold_of[p.user] == f) for f in range(5)]
        assert max(sizes) - min(sizes) <= 2 * 2  # the quality prompts come in two pools
    turns = [labeleval.Turn(p, p.labels[:4], [True] * 4, {"j": [c.j for c in p.candidates[:4]]}) for p in prompts]
    seen = []

    def spy(train, template, l2):
        seen.append({t.prompt.user for t in train})
        return template

    monkeypatch.setattr(labeleval, "fitted", spy)
    scores, _ = labeleval.cross_validated(turns, fold_of, 5, Ranking({"j": 1.0}), 1.0)
    assert len(scores) == len(turns) and len(seen) == 5
    for f, users in enumerate(seen):
        scored = {p.user for p in prompts if fold_of[p.user] == f}
        assert users and not users & scored and users | scored == {p.user for p in prompts}


def test_the_labels_evaluation_writes_its_report(tmp_path):
    """On 4 + 4 prompts of one real pool, every ranking is reported with its headroom and concordance."""
    source = Path(__file__).resolve().parents[2] / "bench" / "labels" / "quality-qwen0.5b-vs-1.5b.jsonl"
    keep = {"zh-talk-1", "zh-talk-2", "zh-cs-1", "zh-cs-2", "en-talk-1", "en-talk-2", "en-cs-1", "en-cs-2"}
    rows = [line for line in source.read_text().splitlines() if json.loads(line)["id"] in keep]
    rows = [r for r in rows if "0.5b-short" in json.loads(r)["source"]]
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "some.jsonl").write_text("\n".join(rows) + "\n")
    assert len(read_labels(tmp_path / "labels" / "some.jsonl")) == 8
    cfg = LabelsConfig(labels=tmp_path / "labels", out=tmp_path / "out" / "labels-eval.json", ns=(2, 4), folds=2,
                       verifier_cache=tmp_path / "none.jsonl", write_ranking=str(tmp_path / "ranking.json"))  # fmt: skip
    labeleval.run(cfg)
    report = json.loads(cfg.out.read_text())
    assert cfg.out.with_suffix(".png").stat().st_size > 10_000
    assert report["default_model"] == "embedded:qwen2.5-coder-1.5b"  # the app's default, recorded with the pools
    pool = report["pools"]["replies-qwen2.5-coder-0.5b-short-v3"]
    row = pool["zh"]["4"]
    assert set(row) == {"shown_mean", "poor_share", "good_share", "first_mean", "mean", "oracle_mean", "headroom",
                        "prompts", "headroom_ci95"}  # fmt: skip
    assert row["prompts"] == 4 and row["shown_mean"] <= row["oracle_mean"] and row["mean"] <= row["oracle_mean"]
    low, high = row["headroom_ci95"]
    assert low <= row["headroom"] <= high
    assert row["headroom"] == pytest.approx(
        (row["shown_mean"] - row["mean"]) / (row["oracle_mean"] - row["mean"]), abs=2e-3
    )
    rankers = report["rankers"]["replies-qwen2.5-coder-0.5b-short-v3"]["en"]["4"]
    for name in ("first", "random", "oracle", "seed", "fitted", *SIGNALS):
        assert name in rankers
    assert rankers["oracle"]["headroom"] == 1.0 and rankers["random"]["headroom"] == 0.0
    assert rankers["verifier"] is None and rankers["fitted_with_verifier"] is None  # no readings cached
    assert 0 <= report["concordance"]["replies-qwen2.5-coder-0.5b-short-v3"]["en"]["4"]["defects"] <= 1
    written = load_ranking(tmp_path / "ranking.json")
    assert written.first == ("defects",) and written.weights.keys() == APP.weights.keys()


class FakeVerifier:
    """Scores a reply by its length; records the messages it was given."""

    def __init__(self):
        self.asked = []

    def score(self, messages, replies, finished):
        self.asked.append(messages)
        return [float(len(r)) for r in replies]


def test_a_verifier_reads_the_chat_messages_and_is_left_out_without_them():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "第一次去北京，必须去的景点有哪些？"},
    ]
    verifier = FakeVerifier()
    reranker = Reranker(ranking=Ranking({"verifier": 1.0, "j": 0.1}), verifier=verifier)
    cands = [Candidate(GOOD, -0.2), Candidate(LONG, -0.9)]
    assert reranker.rank(messages, cands) == [1, 0] and verifier.asked == [messages]
    assert cands[0].scores["verifier"] == len(GOOD)
    assert reranker.rank(CONTEXT, cands) == [0, 1]  # text only (no system prompt to read): by J alone
    assert "verifier" not in cands[0].scores


@pytest.mark.slow
def test_the_verifier_reads_the_generators_own_candidates_as_it_scored_them(cache_dir):
    """The 0.5B re-reading its candidates gives the J it sampled them with (llama.cpp's log-probs), end of
    turn included: the per-token states times the output matrix are the model's log-probs."""
    from interactive_format.ranking.verifier import Verifier

    prompt = next(p for p in read_all() if p.source.endswith("0.5b-short-v3.json") and p.id == "zh-talk-1")
    verifier = Verifier.from_spec("embedded:qwen2.5-coder-0.5b", cache_dir)
    try:
        readings = verifier.read(prompt.messages, [c.text for c in prompt.candidates], [True] * 4)
    finally:
        verifier.close()
    assert [r.tokens for r in readings] == prompt.tokens
    for r, c in zip(readings, prompt.candidates):
        assert r.mean_logprob == pytest.approx(c.j, abs=0.02) and r.state.shape == (896,)
