"""The benchmark's `models` part: held-out prompts, turns through the app's engine with the bench's seed, the
summary's ratios, install sizes, and the part end to end on two real chat models."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from interactive_format.bench import bench, turnbench
from interactive_format.models.specs import EMBEDDED
from interactive_format.bench.turnbench import TURN_PROMPTS, SeededGenerator, install_size, one_turn, summarize

from ..fakes import FakeGenerator, fake_engine

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_turn_prompts_are_held_out_from_the_other_benches():
    seen = set()
    for path in (BENCH / "rerank" / "prompts.json", BENCH / "quality" / "prompts.json"):
        seen |= {q["text"].strip().lower() for q in json.loads(path.read_text())["prompts"]}
    assert not [q["id"] for q in TURN_PROMPTS if q["text"].strip().lower() in seen]
    assert len({q["id"] for q in TURN_PROMPTS}) == len(TURN_PROMPTS) == 12
    assert sum(q["lang"] == "zh" for q in TURN_PROMPTS) == 6


class SeedRecorder(FakeGenerator):
    def __init__(self) -> None:
        super().__init__()
        self.seeds: list[int | None] = []

    def stream(self, messages, params, stop: threading.Event):
        self.seeds.append(params.seed)
        yield from super().stream(messages, params, stop)


def test_a_turn_goes_through_the_engine_with_the_benchs_seed_and_counts_its_tokens():
    engine = fake_engine()
    inner = SeedRecorder()
    engine.generator = SeededGenerator(inner)
    turn = one_turn(engine, "How are you today?", 3, seed=42)
    assert inner.seeds == [42]
    # FakeGenerator's candidates: "<batch>.<k> re: How are you today?", one token per word
    assert turn["tokens"] == 3 * 6 and turn["longest_tokens"] == 6
    assert engine.generator.first_at is not None and 0 <= turn["first_token_s"] <= turn["turn_s"]
    assert turn["shown"].endswith("re: How are you today?")
    assert engine.generator.count_tokens([{"content": "a b"}]) == 4  # the rest is the wrapped generator's


def test_a_failed_turn_is_not_timed_as_a_reply():
    class Broken(FakeGenerator):
        def stream(self, messages, params, stop):
            raise RuntimeError("model crashed")
            yield

    engine = fake_engine()
    engine.generator = SeededGenerator(Broken())
    with pytest.raises(RuntimeError, match="the turn failed"):
        one_turn(engine, "Hello", 2, seed=1)


def test_the_summary_gives_medians_maxima_and_ratios_side_by_side():
    rows = [  # English turns take a second longer than Chinese ones
        {"model": m, "n": n, "lang": lang, "turn_s": (t + extra) * n, "first_token_s": f, "tokens": 10 * n,
         "longest_tokens": 10}
        for m, t, f in (("embedded:big", 3.0, 0.6), ("embedded:small", 1.0, 0.2))
        for n in (1, 4)
        for lang, extra in (("zh", 0.0), ("en", 1.0))
    ]  # fmt: skip
    out = summarize(rows, ["embedded:big", "embedded:small"], [1, 4])
    big1 = out["stats"]["embedded:big"]["1"]
    assert big1["turn_s_median"] == 3.5 and big1["turn_s_max"] == 4.0 and big1["first_token_s_max"] == 0.6
    assert out["by_language"]["embedded:big"]["1"]["zh"]["turn_s_median"] == 3.0
    assert out["ratios"]["n4_over_n1"]["embedded:small"]["turn_s_median"] == 4.0
    assert out["ratios"]["big_over_small"]["4"]["turn_s_median"] == 2.33  # 14 / 6
    assert out["ratios"]["big_over_small"]["1"]["first_token_s_median"] == 3.0


def test_a_model_can_run_beside_itself_with_another_thread_count(monkeypatch):
    from interactive_format.engine import engines
    from interactive_format.settings.load import load_config

    built = []
    monkeypatch.setattr(engines, "build_engine", lambda config, models: built.append(config.models) or fake_engine())
    turnbench.engines_for(["embedded:qwen2.5-coder-1.5b", "embedded:qwen2.5-coder-1.5b@threads=1"], [1])
    assert [m.llm for m in built] == ["embedded:qwen2.5-coder-1.5b"] * 2
    assert built[0].llm_threads == load_config().models.llm_threads and built[1].llm_threads == 1  # as set / the arm's
    assert turnbench.arm("embedded:qwen2.5-coder-1.5b@threads=1") == ("embedded:qwen2.5-coder-1.5b", 1)
    assert turnbench.arm("embedded:qwen2.5-coder-1.5b") == ("embedded:qwen2.5-coder-1.5b", None)
    assert turnbench.short("embedded:qwen2.5-coder-1.5b@threads=1") == "1.5b-threads1"  # keys and file names


def test_install_size_counts_the_packages_and_the_joined_weights():
    size = install_size("embedded:qwen2.5-coder-0.5b")
    model = EMBEDDED["qwen2.5-coder-0.5b"]
    assert size["packages"] == len(model.packages) == 6
    assert model.size < size["packages_bytes"] < model.size * 1.05  # the parts and a little packaging
    assert size["cache_bytes"] == model.size and size["total_bytes"] == size["packages_bytes"] + model.size


@pytest.mark.slow
def test_the_models_part_runs_end_to_end_on_two_real_chat_models(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(turnbench, "TURN_PROMPTS", [TURN_PROMPTS[0], TURN_PROMPTS[1]])
    out = bench.main(["models", "--models", "embedded:qwen2.5-coder-0.5b,embedded:smollm2-135m", "--ns", "1,2",
                      "--out", str(tmp_path / "m.json")])  # fmt: skip
    models = json.loads(out.read_text())["models"]
    rows = models["rows"]
    assert [(r["prompt"], r["model"][-4:], r["n"]) for r in rows] == [
        ("zh-1", "0.5b", 1),
        ("zh-1", "135m", 1),
        ("zh-1", "0.5b", 2),
        ("zh-1", "135m", 2),
        ("en-1", "135m", 1),
        ("en-1", "0.5b", 1),
        ("en-1", "135m", 2),
        ("en-1", "0.5b", 2),
    ]  # interleaved by prompt, the models' order flipped on every other prompt
    # every prompt is new to the server that answers it: llama.cpp's prompt cache holds the persona (cached by the
    # untimed first turn), never the question (asked again at another N, all but its last token came from the cache)
    for r in rows:
        assert r["cached_prompt_tokens"] > 10 and r["prompt_tokens"] - r["cached_prompt_tokens"] > 5, r
    assert all(r["tokens"] >= r["longest_tokens"] > 0 and 0 < r["first_token_s"] <= r["turn_s"] for r in rows)
    assert {r["seed"] for r in rows if r["prompt"] == "zh-1"} == {100} and {r["seed"] for r in rows} == {100, 101}
    assert models["settings"]["max_new_tokens"] == 128 and "ratios" in models
    assert set(models["install"]) == {"embedded:qwen2.5-coder-0.5b", "embedded:smollm2-135m"}
    assert "0.5b_over_smollm2-135m" in models["ratios"] and "0.5b, N=2" in capsys.readouterr().out


@pytest.mark.slow
def test_the_first_start_is_timed_on_an_empty_cache_until_the_page_answers(tmp_path):
    cache = tmp_path / "small" / "cache"
    cache.mkdir(parents=True)
    seconds = turnbench.app_start("embedded:smollm2-135m", cache)
    assert seconds > 0
    assert any((cache / "interactive_format").iterdir())  # the one-time conversions went to the empty cache
    assert "Running on" in (tmp_path / "small" / "app.log").read_text()  # the app's own log, beside the cache
