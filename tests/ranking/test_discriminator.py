"""The discriminator's real loading code on the embedded MiniLM encoder."""

from __future__ import annotations

import pytest
import torch

from interactive_format.ranking.discriminator import WEIGHTS, Discriminator, load_discriminator
from interactive_format.errors import ModelLoadError


@pytest.fixture(scope="module")
def fresh_d():
    torch.manual_seed(0)
    return Discriminator.from_encoder("embedded:minilm").eval()


def test_scores_are_probabilities_in_one_batch(fresh_d):
    scores = fresh_d.score("user: hi, how are you?", ["fine thanks, you?", "the the the", ""])
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert fresh_d.score("ctx", []) == []


def test_a_reply_longer_than_the_window_is_scored_not_refused(fresh_d):
    long_reply = "word " * (3 * fresh_d.max_length)  # e.g. a 1,000-token reply from the settings panel
    scores = fresh_d.score("user: tell me a long story", [long_reply, "ok"])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)


def test_save_and_load_round_trip_only_trained_parts(fresh_d, tmp_path):
    for p in fresh_d.encoder.parameters():
        p.requires_grad = False
    for p in fresh_d.encoder.encoder.layer[-1].parameters():  # the one unfrozen layer
        p.requires_grad = True
    fresh_d.save(tmp_path, lam=0.5)
    saved = (tmp_path / WEIGHTS).stat().st_size
    assert saved < 0.2 * sum(p.numel() * 4 for p in fresh_d.encoder.parameters())  # not the whole encoder
    loaded = load_discriminator(tmp_path)
    assert loaded.meta["lam"] == 0.5
    loaded.save(tmp_path / "again", lam=0.5)  # a loaded D re-saves only what was trained, not the encoder
    assert (tmp_path / "again" / WEIGHTS).stat().st_size == saved
    pair = ("user: what's your favourite food?", ["pizza, definitely", "I am a language model."])
    assert loaded.score(*pair) == pytest.approx(fresh_d.score(*pair), abs=1e-5)


def test_discriminator_off_means_likelihood_only():
    assert load_discriminator("off") is None
    assert load_discriminator(None) is None


def test_missing_discriminator_is_a_clear_error_not_a_silent_switch_off(tmp_path):
    with pytest.raises(ModelLoadError, match="--discriminator off"):
        load_discriminator(tmp_path / "nothing-here")


def test_corrupt_discriminator_is_a_clear_error(tmp_path):
    (tmp_path / WEIGHTS).write_bytes(b"not safetensors")
    (tmp_path / "discriminator.json").write_text('{"encoder": "embedded:minilm"}')
    with pytest.raises(ModelLoadError, match="discriminator"):
        load_discriminator(tmp_path)


# --- the shipped kind: an MLP over the frozen multilingual-e5-small embeddings -----------------


@pytest.fixture(scope="module")
def e5_d():
    from interactive_format.ranking.discriminator import new_discriminator

    torch.manual_seed(0)
    return new_discriminator("embedded:e5-small").eval()


def test_the_bilingual_d_scores_chinese_and_english_in_one_batch(e5_d):
    scores = e5_d.score("user: 最近总是失眠，怎么办？", ["睡前少看手机。", "Try to sleep earlier.", ""])
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    c = e5_d.encoder.embed(["我喜欢猫", "I like cats", "股票市场今天下跌"], query=False)
    assert c[0] @ c[1] > c[0] @ c[2]  # the encoder reads both languages: a translation is nearer than another topic


def test_the_bilingual_d_saves_only_its_head(e5_d, tmp_path):
    e5_d.save(tmp_path, lam=0.3)
    assert (tmp_path / WEIGHTS).stat().st_size < 3_000_000  # the MLP, not the 71 MB encoder
    loaded = load_discriminator(tmp_path)
    assert type(loaded).__name__ == "EmbeddingDiscriminator" and loaded.meta["lam"] == 0.3
    pair = ("user: 你最喜欢吃什么？", ["火锅！", "I am a language model."])
    assert loaded.score(*pair) == pytest.approx(e5_d.score(*pair), abs=1e-5)


def test_a_d_saved_for_another_encoder_is_a_clear_error(fresh_d, tmp_path):
    fresh_d.save(tmp_path)
    with pytest.raises(ModelLoadError, match="does not match its encoder"):
        load_discriminator(tmp_path, encoder="embedded:e5-small")  # MiniLM's head on e5's features


def test_a_sentence_encoder_file_that_is_not_the_pinned_one_is_refused(monkeypatch):
    import dataclasses

    from interactive_format.models import specs
    from interactive_format.ranking.encoder import SentenceEncoder

    wrong = dataclasses.replace(specs.EMBEDDED["e5-small"], sha256="0" * 64)
    monkeypatch.setitem(specs.EMBEDDED, "e5-small", wrong)
    with pytest.raises(ModelLoadError, match="not the pinned file; reinstall"):
        SentenceEncoder("embedded:e5-small")
    with pytest.raises(ModelLoadError, match="not a sentence encoder"):
        SentenceEncoder("embedded:minilm")


def test_the_context_and_replies_are_embedded_in_two_parts_on_two_threads_with_the_same_scores(e5_d, monkeypatch):
    import threading

    encoder = e5_d.encoder
    context, replies = "user: 周末去哪里玩好？", ["去爬山吧。", "Go to the museum.", "在家看电影也不错。", "A picnic!"]
    encoder.cache.clear()
    encoder.workers = 1
    alone = e5_d.score(context, replies)
    calls: list[tuple[int, int]] = []
    encode = encoder._encode

    def recorded(texts, query):
        calls.append((threading.get_ident(), len(texts)))
        return encode(texts, query)

    monkeypatch.setattr(encoder, "_encode", recorded)
    encoder.cache.clear()
    encoder.workers = 2  # the default
    split = e5_d.score(context, replies)
    assert split == pytest.approx(alone, abs=1e-6)
    assert len({thread for thread, _ in calls}) == 2 and sum(n for _, n in calls) == 5  # 1 context + 4 replies
    q, p = encoder.embed_both([], replies[:1])
    assert q.shape == (0, 384) and p.shape == (1, 384)
