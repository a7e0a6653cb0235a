"""Adversarial training and evaluation: the real code on a tiny subset, with a tiny random G.

G here is a 4-layer random Llama that uses SmolLM2's tokenizer and chat template (built by
the `tiny_llm` fixture), so sampling takes milliseconds; D is the real embedded MiniLM.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch

from interactive_format import train as T
from interactive_format.chitchat import Example, SampleCache, load_conversations, split_ids
from interactive_format.config import ASSETS
from interactive_format.evaluate import EvalConfig, distinct, evaluate
from interactive_format.judges import SimilarityJudge, win_rate


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory, cache_dir) -> Path:
    """A random-weight 4-layer Llama with the embedded model's tokenizer and chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from interactive_format.models import llm_path

    tokenizer = AutoTokenizer.from_pretrained(llm_path("embedded:smollm2-135m", cache_dir))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-g")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def cfg(tmp_path_factory, tiny_llm, cache_dir) -> T.TrainConfig:
    return T.TrainConfig(
        out_dir=tmp_path_factory.mktemp("train") / "run", llm=str(tiny_llm), llm_dtype="float32", cache_dir=cache_dir,
        device="cpu", train_contexts=32, val_contexts=10, val_candidates=3, max_new_tokens=8, max_length=64, epochs=2,
        batch_size=16, g_eval_contexts=4, progress=False,
    )


@pytest.fixture(scope="module")
def run(cfg) -> dict:
    """One tiny training run shared by the tests that read its outputs."""
    return T.train(cfg)


# --- data -------------------------------------------------------------------------------


def test_split_is_by_conversation_never_by_turn(cfg):
    conversations = load_conversations()
    splits = split_ids(list(conversations), cfg.split, cfg.seed)
    sets = {k: set(v) for k, v in splits.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    assert set().union(*sets.values()) == set(conversations)
    assert len(sets["train"]) == pytest.approx(0.8 * len(conversations), abs=1)
    assert split_ids(list(conversations), cfg.split, cfg.seed) == splits  # seeded: the same every run
    for name in ("train", "val", "test"):
        examples = T.examples_for(cfg, name, 50)
        assert {e.conversation for e in examples} <= sets[name]
        for e in examples:  # the reply really is the turn after the context in that chat
            turns = conversations[e.conversation]
            t = int(e.id.rsplit(":", 1)[1])
            assert turns[t] == e.reply and list(e.context) == turns[max(0, t - cfg.context_turns):t]


def test_a_split_smaller_than_the_request_gives_other_turns_of_its_chats():
    from interactive_format.chitchat import make_examples

    chats = {"a": ["hi", "hey", "how are you", "good"], "b": ["yo", "sup"], "c": ["hello", "hi there", "bye"]}
    first = make_examples(chats, ["a", "b", "c"], 2, 3, seed=1)
    more = make_examples(chats, ["a", "b", "c"], 2, 5, seed=1)
    assert more[:3] == first  # asking for more never changes the first pass (cached samples stay valid)
    assert len({e.id for e in more}) == 5 and {e.conversation for e in more[3:]} <= {"a", "c"}
    assert len(make_examples(chats, ["a", "b", "c"], 2, 99, seed=1)) == 6  # every reply turn, once


def test_context_is_given_to_g_with_the_answered_turn_as_the_users():
    e = Example("c:3", "c", ("hi", "hello, how are you?", "good, you?"), "fine thanks")
    msgs = e.messages("be brief")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert e.context_text == "user: hi\nassistant: hello, how are you?\nuser: good, you?"


# --- D ----------------------------------------------------------------------------------


def test_freeze_ratio_sets_which_encoder_layers_train(cfg):
    d = T.build_discriminator(dataclasses.replace(cfg, freeze_ratio=0.5))
    layers = d.encoder.encoder.layer
    assert [any(p.requires_grad for p in layer.parameters()) for layer in layers] == [False] * 3 + [True] * 3
    assert not any(p.requires_grad for p in d.encoder.embeddings.parameters())
    assert all(p.requires_grad for p in d.head.parameters())


def test_d_step_lowers_loss_on_a_tiny_batch(cfg):
    torch.manual_seed(0)
    d = T.build_discriminator(cfg)
    opt = T.d_optimizer(cfg, d)
    contexts = ["user: what did you do this weekend?"] * 4 + ["user: do you like dogs?"] * 4
    replies = ["went hiking with my sister, it was great", "not much, just chilled", "The weekend is a period of time.",
               "I'm sorry, as an AI I cannot", "yes! I have two labs", "I'm sorry, I can't help with that.",
               "Dogs are a domesticated species.", "haha love them, you?"]
    labels = torch.tensor([1.0, 1, 0, 0, 1, 0, 0, 1])
    first = T.d_step(d, opt, contexts, replies, labels)
    for _ in range(8):
        last = T.d_step(d, opt, contexts, replies, labels)
    assert last < 0.7 * first


# --- G-step ----------------------------------------------------------------------------


def test_g_step_changes_only_the_parameters_it_is_allowed_to(cfg, tiny_llm):
    from interactive_format.generator import TransformersGenerator

    g = TransformersGenerator.from_spec(str(tiny_llm), cfg.cache_dir, "cpu", "float32")
    allowed = T.g_trainable_params(g.model, 0.25)  # the top 1 of 4 layers
    assert allowed and all(n.startswith("model.layers.3.") for n in allowed)
    before = {n: p.detach().clone() for n, p in g.model.named_parameters()}
    opt = torch.optim.AdamW([p for p in g.model.parameters() if p.requires_grad], lr=1e-3)
    examples = T.examples_for(cfg, "train", 2)
    stats = T.g_step(dataclasses.replace(cfg, g_samples=3), g, T.build_discriminator(cfg), opt, examples)
    changed = {n for n, p in g.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(allowed)
    assert set(stats["fresh"]) == {e.id for e in examples} and all(len(v) == 3 for v in stats["fresh"].values())
    assert stats["g_loss"] == stats["g_loss"]  # finite, not NaN


# --- the loop -------------------------------------------------------------------------


def test_training_run_writes_metrics_curves_and_a_loadable_d_then_resumes(cfg, run):
    from interactive_format.discriminator import load_discriminator

    summary = run
    out = cfg.out_dir
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("val_auc", "val_accuracy", "val_adversuc", "val_hits@1", "val_length_auc"):
        assert 0.0 <= rows[-1][key] <= 1.0
    assert rows[-1]["val_auc"] > 0.75  # random-weight G writes gibberish: even 32 examples teach D that
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    d = load_discriminator(out / "best")
    assert d.meta["lam"] in cfg.lam_grid and d.meta["training"]["train_contexts"] == 32
    assert summary["best_val_auc"] == max(r["val_auc"] for r in rows)

    samples = sorted((out / "samples").iterdir())
    sizes = [p.stat().st_size for p in samples]
    T.train(dataclasses.replace(cfg, epochs=3, resume=True))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # continued, not restarted
    assert [p.stat().st_size for p in samples] == sizes  # G's replies came from the cache


@pytest.mark.slow
def test_early_stopping_triggers_when_val_auc_stops_improving(cfg, run, tmp_path):
    import shutil

    frozen = dataclasses.replace(cfg, out_dir=tmp_path, lr=0.0, head_lr=0.0, epochs=5, patience=1)  # AUC cannot change
    shutil.copytree(cfg.out_dir / "samples", tmp_path / "samples")  # G's replies: no need to sample again
    summary = T.train(frozen)
    assert summary["stopped_early"] and summary["epochs_run"] == 2


def test_sample_cache_survives_a_cut_last_line(tmp_path):
    from interactive_format.chitchat import SampledReply

    cache = SampleCache(tmp_path, {"k": 1})
    cache.add({"a:1": [SampledReply("hi", -1.0, True)]}, 2.0)
    with cache.path.open("a") as f:
        f.write('{"id": "b:1", "replies": [{"te')  # a run killed mid-write
    again = SampleCache(tmp_path, {"k": 1})
    assert list(again.replies) == ["a:1"] and again.seconds == 2.0
    assert SampleCache(tmp_path, {"k": 2}).replies == {}  # other settings, other file


# --- evaluation ------------------------------------------------------------------------


def test_auc_and_win_rate_arithmetic():
    assert T.roc_auc([2.0, 3.0], [1.0]) == 1.0
    assert T.roc_auc([1.0], [1.0]) == 0.5  # ties count half
    assert T.roc_auc([0.0, 2.0], [1.0]) == 0.5
    w = win_rate([1, 2, 3, 4], [0, 2, 5, 1])
    assert w["rate"] == pytest.approx((1 + 0.5 + 0 + 1) / 4) and w["ties"] == 1 and w["low"] < w["rate"] < w["high"]
    assert distinct(["a b a b"], 1) == 0.5 and distinct(["a b", "a c"], 2) == 1.0


def test_evaluate_judges_with_the_frozen_encoder_not_with_d(cfg, run, tmp_path):
    from transformers import AutoModel

    from interactive_format.discriminator import load_discriminator
    from interactive_format.models import pretrained_source

    report = evaluate(EvalConfig(discriminator=cfg.out_dir / "best", out_dir=cfg.out_dir, report_dir=tmp_path / "rep",
                                 test_contexts=12, ns=(2, 4), cache_dir=cfg.cache_dir, device="cpu", progress=False))
    assert report["contexts"] == 12 and report["samples_per_context"] == 5
    for n in ("2", "4"):
        row = report["by_n"][n]
        assert row["d_ceiling"] == int(n) / (int(n) + 1)
        for key in ("judge", "d_self"):
            assert 0 <= row[key]["rate"] <= 1 and row[key]["n"] == 12
    assert set(report["lambda_sweep"]) == {"0.0", "0.25", "0.5", "0.75", "1.0"}
    assert json.loads((tmp_path / "rep" / "evaluation.json").read_text())["contexts"] == 12
    assert (tmp_path / "rep" / "evaluation.png").exists()

    judge = SimilarityJudge.from_spec(cfg.encoder)
    d = load_discriminator(cfg.out_dir / "best")
    pristine = AutoModel.from_pretrained(pretrained_source(cfg.encoder, "encoder")).state_dict()
    assert all(torch.equal(v, pristine[k]) for k, v in judge.encoder.state_dict().items())  # published weights
    trained = dict(d.encoder.named_parameters())
    assert any(not torch.equal(trained[k], pristine[k]) for k in trained if k in pristine)  # D's layers moved
    assert not hasattr(judge, "head")
    sims = judge.similarity(["I love pizza", "", "quantum chromodynamics"], "I love pizza")
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[1] == -1.0 and sims[2] < 0.5


# --- the shipped D ---------------------------------------------------------------------


SHIPPED = ASSETS / "discriminator"
FIXED = [
    ("user: what are you up to this weekend?", "probably just going to relax and watch some movies"),
    ("user: do you have any pets?", "yes I have a dog named max, he is a golden retriever"),
    ("user: what kind of music do you like?", "I mostly listen to rock and some country, how about you?"),
    ("user: how was school today?", "it was alright, I had a big math test that I think went well"),
    ("user: where are you from?", "I'm from Texas but I go to college in Utah now"),
]


def test_shipped_d_scores_human_replies_above_the_same_words_shuffled():
    from interactive_format.discriminator import load_discriminator

    d = load_discriminator(SHIPPED)
    rng = random.Random(0)
    for context, reply in FIXED:
        words = reply.split()
        rng.shuffle(words)
        human, shuffled = d.score(context, [reply, " ".join(words)])
        assert human > shuffled, (reply, human, shuffled)
    assert 0.0 <= d.meta["lam"] <= 1.0


# --- users' picks as extra training data -------------------------------------------------


def test_the_apps_preference_export_is_training_data_for_d(cfg, tmp_path):
    from interactive_format.dialogue import Candidate, Turn
    from interactive_format.store import Store

    store = Store(tmp_path / "chats.db")
    cid = store.create("alice", "You are a helpful AI assistant.")
    user = store.add_turn("alice", cid, Turn("user", "any plans tonight?"), None)
    reply = Turn("assistant", candidates=[Candidate("As an AI, I have no plans.", -1.0), Candidate("movie night with friends!", -1.2)])
    turn = store.add_turn("alice", cid, reply, user)
    store.pick("alice", turn, 1, "user: any plans tonight?")
    path = tmp_path / "prefs.jsonl"
    path.write_text(store.preferences_jsonl("alice"))

    pairs = T.read_preferences(path)
    assert pairs == [("user: any plans tonight?", "movie night with friends!", "As an AI, I have no plans.")]
    data = T.Data(train=[], val=[], fakes={}, sampling_seconds=0.0, preferences=pairs)
    rows = [(c, r, float(y)) for cs, rs, ys in T.d_batches(cfg, data, 1) for c, r, y in zip(cs, rs, ys)]
    assert sorted(rows) == [(pairs[0][0], pairs[0][2], 0.0), (pairs[0][0], pairs[0][1], 1.0)]


def test_a_malformed_preference_file_names_the_bad_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"context": "c", "chosen": "a", "rejected": "b"}\n\n{"context": "c", "chosen": "a"}\n')
    with pytest.raises(ValueError, match=r"prefs.jsonl:3"):
        T.read_preferences(path)
    path.write_text('{"context": "c", "chosen": 5, "rejected": "b"}\n')
    with pytest.raises(ValueError, match=r"prefs.jsonl:1: .*must be text"):
        T.read_preferences(path)


def test_d_sees_human_words_shuffled_as_a_negative(cfg):
    e = Example("c:1", "c", ("how was your day?",), "pretty good, went to the beach with my friends")
    data = T.Data(train=[e], val=[], fakes={"c:1": []}, sampling_seconds=0.0)
    only_shuffled = dataclasses.replace(cfg, random_negatives=0.0, shuffled_negatives=1.0)
    rows = [(r, float(y)) for _, rs, ys in T.d_batches(only_shuffled, data, 1) for r, y in zip(rs, ys)]
    (shuffled,) = [r for r, y in rows if y == 0.0]
    assert (e.reply, 1.0) in rows and shuffled != e.reply and sorted(shuffled.split()) == sorted(e.reply.split())
