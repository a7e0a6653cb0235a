"""The generator on the real embedded SmolLM2: one batched call, honest log-probs, stop, errors."""

from __future__ import annotations

import threading

import pytest
import torch

from interactive_format.errors import GenerationError
from interactive_format.llm.sampling import SamplingParams

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant."},
    {"role": "user", "content": "Name a colour."},
]


def run(generator, params, stop=None):
    samples = list(generator.stream(MESSAGES, params, stop or threading.Event()))
    assert samples[-1].done
    return samples


def test_n_candidates_come_from_one_generate_call(generator, monkeypatch):
    calls = []
    real = generator.model.generate
    monkeypatch.setattr(generator.model, "generate", lambda **kw: calls.append(kw) or real(**kw))
    samples = run(generator, SamplingParams(n=4, max_new_tokens=12, seed=3))
    assert len(calls) == 1 and calls[0]["num_return_sequences"] == 4
    drafts = samples[-1].drafts
    assert len(drafts) == 4 and all(d.token_ids for d in drafts)
    assert len(samples) > 3  # streamed step by step, not delivered at the end


def test_mean_logprob_matches_a_teacher_forced_pass(generator):
    drafts = run(generator, SamplingParams(n=2, max_new_tokens=10, seed=5))[-1].drafts
    prompt = generator.prompt_ids(MESSAGES)
    for d in drafts:
        ids = torch.tensor([prompt + d.token_ids])
        with torch.inference_mode():
            logprobs = torch.log_softmax(generator.model(ids).logits[0].float(), -1)
        picked = [logprobs[len(prompt) - 1 + k, t].item() for k, t in enumerate(d.token_ids)]
        assert d.mean_logprob == pytest.approx(sum(picked) / len(picked), abs=1e-3)


def test_same_seed_same_candidates(generator):
    a = run(generator, SamplingParams(n=2, max_new_tokens=8, seed=11))[-1]
    b = run(generator, SamplingParams(n=2, max_new_tokens=8, seed=11))[-1]
    assert [d.text for d in a.drafts] == [d.text for d in b.drafts] and a.seed == b.seed == 11


def test_stop_ends_generation_early(generator):
    stop = threading.Event()
    samples = []
    for sample in generator.stream(MESSAGES, SamplingParams(n=2, max_new_tokens=200, seed=1), stop):
        samples.append(sample)
        if len(samples) == 3:
            stop.set()
    assert samples[-1].done and samples[-1].stopped
    assert max(len(d.token_ids) for d in samples[-1].drafts) < 20


def test_model_error_mid_stream_raises_generation_error(generator, monkeypatch):
    real_forward = generator.model.forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(generator.model, "forward", flaky)
    seen = []
    with pytest.raises(GenerationError, match="failed while answering"):
        for sample in generator.stream(MESSAGES, SamplingParams(n=2, max_new_tokens=20, seed=1), threading.Event()):
            seen.append(sample)
    assert seen  # some tokens streamed before the failure
    monkeypatch.setattr(generator.model, "forward", real_forward)
    assert run(generator, SamplingParams(n=1, max_new_tokens=4, seed=1))[-1].drafts[0].token_ids  # still usable


def test_a_character_cut_in_half_is_not_shown(generator):
    """An emoji is several byte tokens: a reply cut between them (token limit, or still streaming) shows no U+FFFD."""
    from interactive_format.llm.generator import visible_text

    ids = generator.tokenizer.encode("Nice 😄", add_special_tokens=False)
    assert generator.tokenizer.decode(ids[:-1]).endswith("\ufffd")  # the premise: a byte token alone
    assert visible_text(generator.tokenizer, ids[:-1]) == "Nice "
    assert visible_text(generator.tokenizer, ids) == "Nice 😄"
