"""D's good and poor replies (goodreplies.py) and the quality run's fold Ds (qualityd.py): a held-out fold's
prompts never reach training, a labelled candidate goes by its label, a bad file is refused by name."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest

from interactive_format.training.goodreplies import PoolError, Selection, rows
from interactive_format.training.labeleval import LabelsConfig, folds
from interactive_format.training.labels import LabelError, read_all
from interactive_format.training.qualityd import DEFAULTS, FoldDiscriminators, hold_outs, run_name
from interactive_format.training.train import TrainConfig, parse_args, quality_batch_rows, quality_rows

RERANK = "bench/rerank/samples-test-t0.7.json"
STRONG = "bench/quality/replies-test-strong.json"


@pytest.fixture
def project(tmp_path) -> Path:
    """A project root: a pool of the generator (two prompts, five candidates, one empty) and a stronger
    model's pool of the same two prompts plus one nobody labelled."""
    for folder in ("bench/rerank", "bench/quality", "labels"):
        (tmp_path / folder).mkdir(parents=True)
    texts = ["good", "fine", "so-so", "poor", ""]
    cands = [{"text": t, "j": -1.0, "finished": True, "tokens": 3} for t in texts]
    prompts = [{"id": "zh-1", "lang": "zh", "system": "default", "text": "你好", "candidates": cands},
               {"id": "en-1", "lang": "en", "system": "default", "text": "Hello", "candidates": cands}]  # fmt: skip
    (tmp_path / RERANK).write_text(json.dumps({"model": "embedded:m", "systems": {"default": "Hi."}, "rows": prompts}))
    strong = [{**p, "candidates": [{"text": f"strong {k}"} for k in range(2)]} for p in prompts]
    strong.append({"id": "en-9", "lang": "en", "text": "Unlabelled prompt", "candidates": [{"text": "strong x"}]})
    (tmp_path / STRONG).write_text(json.dumps({"model": "embedded:big", "replies": strong}))
    return tmp_path


def label_row(prompt: str, k: int, label: int, text: str) -> str:
    lang, user = ("zh", "你好") if prompt == "zh-1" else ("en", "Hello")
    return json.dumps({"source": RERANK, "id": prompt, "lang": lang, "persona": "default", "user": user,
                       "candidate": k, "model": "embedded:m", "text": text, "label": label, "judge_best": False,
                       "judge_note_for_prompt": "a note"}, ensure_ascii=False)  # fmt: skip


def write_labels(project: Path, lines: list[str]) -> str:
    (project / "labels" / "l.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return "labels"


def test_a_labelled_candidate_is_real_or_fake_by_its_label_and_an_unlabelled_one_by_its_pool(project):
    texts = ["good", "fine", "so-so", "poor", ""]
    lines = [label_row(p, k, label, texts[k]) for p in ("zh-1", "en-1") for k, label in enumerate((5, 4, 3, 2, 1))]
    found = rows(Selection(write_labels(project, lines), real_pools=(RERANK,)), project)
    labelled = {(r.lang, r.reply): r.target for r in found}
    for lang in ("zh", "en"):
        assert labelled[(lang, "good")] == labelled[(lang, "fine")] == 1.0  # ≥ 4: real
        assert labelled[(lang, "poor")] == 0.0  # ≤ 2: fake, though its pool is named real
        assert (lang, "so-so") not in labelled and (lang, "") not in labelled  # 3: neither; empty: never
    assert len(found) == 6  # each candidate once: a labelled one is not taken again from its pool
    stricter = rows(Selection(write_labels(project, lines), real_at=5, fake_at=3), project)
    assert {(r.reply, r.target) for r in stricter} == {("good", 1.0), ("so-so", 0.0), ("poor", 0.0)}
    assert all(r.context == f"user: {r.user}" for r in found)  # D reads the dialogue as the app gives it


def test_unlabelled_pool_replies_take_the_pools_side_and_their_prompt(project):
    found = rows(Selection(real_pools=(STRONG,), fake_pools=(RERANK,)), project)
    strong = [r for r in found if r.source == STRONG]
    assert {r.reply for r in strong} == {"strong 0", "strong 1", "strong x"} and {r.target for r in strong} == {1.0}
    assert {r.target for r in found if r.source == RERANK} == {0.0}
    assert {r.user for r in strong} == {"你好", "Hello", "Unlabelled prompt"}


def test_a_held_out_folds_prompts_give_no_example_labelled_or_from_a_pool(project):
    lines = [
        label_row(p, k, label, t) for p in ("zh-1", "en-1") for k, (label, t) in enumerate([(5, "good"), (1, "fine")])
    ]
    labels = write_labels(project, lines)
    fold_of = folds(read_all(project / labels, project), 2)
    for held in (0, 1):
        found = rows(Selection(labels, real_pools=(STRONG,), folds=2, hold_out=(held,)), project)
        users = {r.user for r in found}
        assert not any(fold_of.get(u) == held for u in users)
        assert "Unlabelled prompt" in users  # in no fold: never evaluated, so every D may train on it
        assert {u for u, f in fold_of.items() if f != held} <= users


def test_on_the_project_labels_no_fold_shares_a_prompt_between_training_and_held_out():
    """The quality run's own selection: for every fold and pair of folds a D is trained without, none of
    their prompts (by user message, in any pool) reaches training, and every other labelled prompt does."""
    cfg = parse_args([], DEFAULTS)
    prompts = read_all(LabelsConfig().labels)
    fold_of = folds(prompts, cfg.label_folds, cfg.label_fold_seed)
    everything = {r.user for r in quality_rows(cfg)}
    assert set(fold_of) <= everything
    for held in hold_outs(cfg.label_folds)[1:]:
        users = {r.user for r in quality_rows(dataclasses.replace(cfg, hold_out=",".join(map(str, held))))}
        assert not {u for u in users if fold_of.get(u) in held}, held
        assert {u for u, f in fold_of.items() if f not in held} <= users


def test_bad_labels_pools_and_settings_are_refused_by_name(project):
    bad = write_labels(project, [label_row("zh-1", 0, 7, "good")])
    with pytest.raises(LabelError, match=r"l\.jsonl, line 1, 'label': must be 1 to 5 \(got 7\)"):
        rows(Selection(bad), project)
    (project / "bench/quality/replies-bad.json").write_text(
        json.dumps({"replies": [{"id": "x", "lang": "fr", "text": "t", "candidates": []}]})
    )
    with pytest.raises(PoolError, match="replies-bad.json, prompt 0: 'lang' must be zh or en"):
        rows(Selection(real_pools=("bench/quality/replies-bad.json",)), project)
    (project / "bench/quality/replies-cut.json").write_text('{"replies": [')
    with pytest.raises(PoolError, match="replies-cut.json: cannot be read as a pool"):
        rows(Selection(fake_pools=("bench/quality/replies-cut.json",)), project)
    with pytest.raises(PoolError, match="replies-none.json: cannot be read"):
        rows(Selection(real_pools=("bench/quality/replies-none.json",)), project)
    with pytest.raises(ValueError, match="fake_at .3. must be below real_at .3."):
        Selection(real_at=3, fake_at=3)
    with pytest.raises(ValueError, match="hold_out .5. must name folds 0..4"):
        Selection(hold_out=(5,))
    with pytest.raises(ValueError, match="no good or poor reply"):  # every labelled prompt held out
        quality_rows(TrainConfig(labels="bench/labels", hold_out="0,1,2,3,4"))
    with pytest.raises(ValueError, match="TrainConfig.keep"):
        TrainConfig(keep="first")


def test_the_rarer_side_is_repeated_to_weigh_as_much_as_the_other():
    class R:
        def __init__(self, target):
            self.context, self.reply, self.target = "user: hi", f"r{target}", target

    got = quality_batch_rows([R(1.0)] * 2 + [R(0.0)] * 7, True, random.Random(0))
    assert sum(r[2] == 1.0 for r in got) == sum(r[2] == 0.0 for r in got) == 7
    assert len(quality_batch_rows([R(1.0)] * 2 + [R(0.0)] * 7, False, random.Random(0))) == 9


class FakeD:
    """A D that scores every reply with the folds it was trained without (as one number)."""

    def __init__(self, held: tuple[int, ...]) -> None:
        self.value = sum(10**f for f in held)

    def score(self, context: str, replies: list[str]) -> list[float]:
        return [float(self.value)] * len(replies)


def test_every_d_value_comes_from_a_d_that_never_saw_the_prompt():
    """A prompt of fold f is scored by the D without f; the turns fold f's ranking is fitted on, of fold g,
    by the D without f and g; an empty candidate has no D value."""
    prompts = read_all(LabelsConfig().labels)
    k = 5
    ds = FoldDiscriminators({frozenset(h): FakeD(h) for h in hold_outs(k)[1:]}, folds(prompts, k), k, 0.5)
    cfg = LabelsConfig(ns=(4,))
    turns, fit_on = ds.turns(cfg, prompts, lambda p: None)
    for t in turns[4]:
        f = ds.fold_of[t.prompt.user]
        assert {v for v, ok in zip(t.values["d"], t.usable) if ok} == {10.0**f}
        assert all(math.isnan(v) for v, ok in zip(t.values["d"], t.usable) if not ok)
    for f, ts in fit_on[4].items():
        assert ts and all(ds.fold_of[t.prompt.user] != f for t in ts)
        for t in ts:
            g = ds.fold_of[t.prompt.user]
            assert {v for v, ok in zip(t.values["d"], t.usable) if ok} == {10.0**f + 10.0**g}
    routed = ds.route(prompts)
    p = prompts[0]
    assert routed.score(p.context, ["a reply"]) == [10.0 ** ds.fold_of[p.user]]
    assert [run_name(h) for h in hold_outs(3)] == ["final", "without-0", "without-1", "without-2",
                                                   "without-0-1", "without-0-2", "without-1-2"]  # fmt: skip


def test_fold_ds_that_are_missing_or_of_other_folds_are_refused(tmp_path):
    prompts = read_all(LabelsConfig().labels)
    with pytest.raises(ValueError, match="no D trained without folds \\[0\\]"):
        FoldDiscriminators.load(tmp_path, prompts, 5, 0)


def test_a_d_trained_on_the_labels_fits_no_ranking_without_its_fold_ds(tmp_path):
    """Its values on the labelled prompts are in-sample: a ranking fitted on them would weigh D too high."""
    from interactive_format.ranking.discriminator import new_discriminator
    from interactive_format.training.labeleval import evaluate_labels

    new_discriminator("embedded:e5-small").save(tmp_path / "d", lam=0.5, training={"labels": "bench/labels"})
    cfg = LabelsConfig(discriminator=tmp_path / "d", write_ranking=str(tmp_path / "ranking.json"))
    with pytest.raises(ValueError, match="trained on the labels: to fit a ranking, pass --fold-discriminators"):
        evaluate_labels(cfg)
    assert not (tmp_path / "ranking.json").exists()
