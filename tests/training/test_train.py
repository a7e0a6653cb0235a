"""Adversarial training and evaluation: the real code on a tiny subset, with a tiny random G.

G here is a 4-layer random Llama that uses SmolLM2's tokenizer and chat template (built by
the `tiny_llm` fixture), so sampling takes milliseconds; D is the shipped kind (an MLP over the real
embedded multilingual-e5-small), or the MiniLM cross-encoder where a test names it.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch

from interactive_format.training import train as T
from interactive_format.training.chitchat import Example, SampleCache, SampledReply, load_conversations, split_ids
from interactive_format.config import ASSETS
from interactive_format.training.evaluate import EvalConfig, distinct, evaluate
from interactive_format.training.judges import SimilarityJudge, best_of, win_rate


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory, cache_dir) -> Path:
    """A random-weight 4-layer Llama with the embedded model's tokenizer and chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from interactive_format.models.hub import llm_path

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
    from interactive_format.training.chitchat import make_examples

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
    d = T.build_discriminator(dataclasses.replace(cfg, encoder="embedded:minilm", freeze_ratio=0.5))
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
    from interactive_format.llm.generator import TransformersGenerator

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
    from interactive_format.ranking.discriminator import load_discriminator

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
    from interactive_format.training.chitchat import SampledReply

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
    assert distinct(["你好你好"], 2) == pytest.approx(2 / 3)  # Chinese: character n-grams (no spaces to split on)


def _bench_file(path: Path, temperature: float, k: int, seed: int) -> str:
    """A bench/rerank candidates file: 2 Chinese and 2 English prompts, k candidates, some of them defective."""
    rng = random.Random(seed)
    zh = ["可以先从番茄炒蛋开始，简单又好吃。", "番茄 番茄 番茄 番茄 番茄 番茄 番茄 番茄", "Start with scrambled eggs.", "先学煮饭和炒青菜"]
    en = ["Try a short walk before bed and keep the room dark.", "sleep sleep sleep sleep sleep sleep sleep sleep",
          "我建议你早点睡觉。", "Keep a regular schedule, and avoid coffee after noon."]  # fmt: skip
    rows = []
    for i, (lang, texts, prompt) in enumerate([("zh", zh, "我想学做饭，先做什么菜？"), ("zh", zh, "周末做什么菜好？"),
                                                ("en", en, "How can I sleep better?"), ("en", en, "Any tips for sleep?")]):
        cands = [{"text": rng.choice(texts), "j": -rng.random(), "finished": True, "tokens": 9} for _ in range(k)]
        rows.append({"id": f"{lang}-{i}", "lang": lang, "system": "default", "text": prompt, "candidates": cands})
    path.write_text(json.dumps({"model": "tiny", "k": k, "temperature": temperature, "rows": rows}, ensure_ascii=False))
    return str(path)


def test_evaluate_ranks_with_the_apps_reranker_and_reports_every_baseline(cfg, run, tmp_path):
    from interactive_format.ranking.ranking import Reranker

    files = (_bench_file(tmp_path / "a.json", 0.7, 5, 1), _bench_file(tmp_path / "b.json", 0.7, 3, 2))
    temps = (_bench_file(tmp_path / "t.json", 0.3, 1, 3),)
    calls = []
    rank = Reranker.rank
    Reranker.rank = lambda self, *a, **k: calls.append(self) or rank(self, *a, **k)  # the app's ranking object
    try:
        report = evaluate(EvalConfig(discriminator=cfg.out_dir / "best", out_dir=cfg.out_dir, report_dir=tmp_path / "rep",
                                     test_contexts=12, ns=(2, 4, 8), rerank_samples=files, temperature_samples=temps,
                                     cache_dir=cfg.cache_dir, device="cpu", progress=False))
    finally:
        Reranker.rank = rank
    assert {(r.lam, r.defects_first, r.discriminator is None) for r in calls} == {
        (report["lam"], True, False), (report["lam"], False, False), (1.0, False, False), (report["lam"], False, True)}
    c = report["chitchat"]
    assert c["contexts"] == 12 and 0 <= c["d"]["auc"] <= 1 and c["latency_ms_per_candidate"] > 0
    shown = report["rerank"]["shown"]
    assert report["rerank"]["ns"] == [2, 4, 8]  # 5 + 3 candidates joined per prompt
    for lang in ("zh", "en"):
        res = shown[lang]
        assert res["prompts"] == 2 and res["best_temperature"] in ("t0.7", "t0.3")
        for name in ("defect_aware", "d_and_j", "d_alone", "j_alone", "length"):
            assert set(res[name]) == {"2", "4", "8"} and all(0 <= v["defect_rate"] <= 1 for v in res[name].values())
        assert res["defect_aware"]["8"]["defect_rate"] <= res["single"]["defect_rate"]
        assert 0 <= res["d_auc_clean_vs_defective"]["auc_built"] <= 1
    assert json.loads((tmp_path / "rep" / "evaluation.json").read_text())["lam"] == report["lam"]
    assert (tmp_path / "rep" / "evaluation.png").read_bytes()[:4] == b"\x89PNG"


def test_the_similarity_judge_is_the_published_encoder_not_d(cfg, run):
    from transformers import AutoModel

    from interactive_format.ranking.discriminator import load_discriminator
    from interactive_format.models.hub import pretrained_source

    judge = SimilarityJudge.from_spec(cfg.judge_encoder)
    d = load_discriminator(cfg.out_dir / "best")
    assert d.encoder_spec != cfg.judge_encoder and not hasattr(judge, "head")
    pristine = AutoModel.from_pretrained(pretrained_source(cfg.judge_encoder, "encoder")).state_dict()
    assert all(torch.equal(v, pristine[k]) for k, v in judge.encoder.state_dict().items())  # published weights
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
    from interactive_format.ranking.discriminator import load_discriminator

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
    from interactive_format.store.store import Store

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


def test_preference_pairs_from_the_store_change_d_when_the_retrain_command_runs(cfg, run, tmp_path):
    import shutil

    from interactive_format.dialogue import Candidate, Turn
    from interactive_format.ranking.discriminator import load_discriminator
    from interactive_format.store.store import Store

    store = Store(tmp_path / "chats.db")
    picks = [("any plans tonight?", "movie night with friends!", "As an AI, I have no plans."),
             ("what's for dinner?", "tacos, always tacos", "As an AI, I do not eat."),
             ("did you watch the game?", "yes!! that last goal", "As an AI, I cannot watch games.")]  # fmt: skip
    cid = store.create("alice", "You are a helpful AI assistant.")
    for prompt, chosen, rejected in picks:
        user = store.add_turn("alice", cid, Turn("user", prompt), None)
        turn = store.add_turn("alice", cid, Turn("assistant", candidates=[Candidate(rejected, -1.0), Candidate(chosen, -1.2)]), user)
        store.pick("alice", turn, 1, f"user: {prompt}")
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(store.preferences_jsonl("alice"))

    def margin(directory: Path) -> float:  # D(chosen) − D(rejected), summed over the users' picks
        d = load_discriminator(directory)
        return sum(a - b for p, c, r in picks for a, b in [d.score(f"user: {p}", [c, r])])

    args = ["--llm", cfg.llm, "--llm-dtype", "float32", "--cache-dir", str(cfg.cache_dir), "--device", "cpu",
            "--train-contexts", "32", "--val-contexts", "10", "--val-candidates", "3", "--max-new-tokens", "8",
            "--epochs", "2", "--batch-size", "16", "--no-progress"]  # fmt: skip
    for name, extra in (("base", []), ("picks", ["--preferences", str(prefs)])):
        shutil.copytree(cfg.out_dir / "samples", tmp_path / name / "samples")  # G's cached replies: no sampling
        T.main(args + ["--out-dir", str(tmp_path / name)] + extra)
    assert margin(tmp_path / "picks" / "best") > margin(tmp_path / "base" / "best") + 0.1


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


def test_defect_negatives_are_made_from_gs_own_replies(tmp_path):
    from interactive_format.ranking import defects
    from interactive_format.training.chitchat import SampledReply

    a = Example("a:1", "a", ("hi there", "any plans for the weekend?"), "hiking with my sister, you?")
    b = Example("b:1", "b", ("hello", "what do you do for work?"), "i teach math at a high school")
    g = {"a:1": [SampledReply("I am going to visit my parents and cook dinner for them.", -1.0, True)],
         "b:1": [SampledReply("I work as a nurse in a small town hospital.", -1.0, True)]}  # fmt: skip
    data = T.Data(train=[a, b], val=[], fakes=g, sampling_seconds=0.0)
    off = T.TrainConfig(out_dir=tmp_path, random_negatives=0.0, shuffled_negatives=0.0, defect_negatives=0.0)
    assert len([y for _, _, ys in T.d_batches(off, data, 1) for y in ys]) == 4  # human + G's reply, per context
    on = dataclasses.replace(off, defect_negatives=1.0)
    made: dict[str, set[str]] = {"a:1": set(), "b:1": set()}
    for epoch in range(12):
        for cs, rs, ys in T.d_batches(on, data, epoch):
            for c, r, y in zip(cs, rs, ys):
                if y == 0.0 and r not in (g["a:1"][0].text, g["b:1"][0].text):
                    made["a:1" if c == a.context_text else "b:1"].add(r)
    bad = made["a:1"]
    assert "any plans for the weekend?" in bad  # the echo of the turn it answers
    assert "I am going to visit my" in bad  # cut off: the first half of G's 12 words, mid-sentence
    assert " ".join(["I am going to visit my"] * 4) in bad  # a loop
    assert any(defects.loop(r) for r in bad) and any(defects.echo(r, "user: any plans for the weekend?") for r in bad)
    assert T.defect_negative(a, data, "other_context", random.Random(0)) in (None, g["b:1"][0].text)
    others = {T.defect_negative(a, data, "other_context", random.Random(s)) for s in range(20)}
    assert others == {None, g["b:1"][0].text}  # b's reply, or nothing when it drew a itself
    with pytest.raises(ValueError, match="defect_negatives"):
        T.TrainConfig(out_dir=tmp_path, defect_negatives=1.5)


def test_choosing_lambda_ranks_as_the_app_does_defects_first():
    """Training's best-of-N is the app's Reranker: a looping reply loses though it has the best D and J."""
    context = "Hi there, how are you today?"
    replies = [
        SampledReply("hello hello hello hello hello hello hello hello hello hello", -0.1, True),
        SampledReply("I'm well, thanks! How about you?", -1.0, True),
        SampledReply("I am fine and", -0.2, False),  # cut off at the token limit
    ]
    assert best_of(context, replies, [0.95, 0.20, 0.90], 0.5, 3) == 1
    assert best_of(context, replies, [0.95, 0.20, 0.90], 0.5, 1) == 0  # only the first is allowed
    clean = [SampledReply("Good, thanks.", -2.0, True), SampledReply("Very well, thank you!", -0.5, True)]
    assert best_of(context, clean, [0.3, 0.9], 1.0, 2) == 1  # no defects: by λ·D + (1−λ)·J
