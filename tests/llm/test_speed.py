"""Speed machinery: the benchmark runs end to end, and our generator's fast paths change no output.

Greedy (temperature 0) output of `TransformersGenerator.stream` must equal plain `model.generate`
on the same inputs — for one reply and for N replies (shared prefill copied to N rows, and the
static-cache buckets that pad the batch), on a tiny random Llama and on the embedded SmolLM2.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
import torch

from interactive_format.bench import bench
from interactive_format.bench.archs import ARCHS, byte_tokenizer, random_generator
from interactive_format.llm.generator import SpeedOptions, TransformersGenerator
from interactive_format.llm.sampling import SamplingParams

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant."},
    {"role": "user", "content": "Tell me something about the sea, please."},
]


@pytest.fixture(scope="module")
def tiny():
    return random_generator("tiny", tokenizer=byte_tokenizer())


def plain_greedy(generator: TransformersGenerator, tokens: int) -> list[int]:
    """Plain `generate`, greedy, batch 1, dynamic cache: the reference."""
    ids = generator.prompt_ids(MESSAGES)
    prompt = torch.tensor([ids], device=generator.device)
    with torch.inference_mode():
        out = generator.model.generate(
            input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=tokens,
            pad_token_id=generator.pad_id,
        )  # fmt: skip
    row = out[0, len(ids) :].tolist()
    end = next((i for i, t in enumerate(row) if t in generator.eos_ids), len(row))
    return row[:end]


def greedy(generator: TransformersGenerator, n: int, tokens: int) -> list[list[int]]:
    params = SamplingParams(n=n, temperature=0, max_new_tokens=tokens)
    samples = list(generator.stream(MESSAGES, params, threading.Event()))
    assert samples[-1].done and len(samples[-1].drafts) == n
    return [d.token_ids for d in samples[-1].drafts]


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("static_cache", [False, True])
def test_greedy_output_equals_plain_generate_on_a_tiny_model(tiny, n, static_cache):
    options = SpeedOptions(static_cache=static_cache, max_cache_len=512)
    generator = TransformersGenerator(tiny.model, tiny.tokenizer, options=options)
    reference = plain_greedy(generator, 24)
    assert len(reference) == 24  # random weights never end the turn: the whole length is compared
    assert greedy(generator, n, 24) == [reference] * n
    if static_cache:  # n = 3 ran as a batch of 4 (the next bucket); the padding row was dropped
        assert generator.rows(n) == (1 if n == 1 else 4)


def test_greedy_output_equals_plain_generate_on_smollm2(generator):
    reference = plain_greedy(generator, 20)
    assert reference
    assert greedy(generator, 1, 20) == [reference]
    assert greedy(generator, 4, 20) == [reference] * 4  # the prompt prefilled once, shared by the 4 rows


def test_static_cache_too_short_falls_back_to_a_dynamic_one(tiny):
    generator = TransformersGenerator(
        tiny.model, tiny.tokenizer, options=SpeedOptions(static_cache=True, max_cache_len=8)
    )
    assert greedy(generator, 2, 12) == [plain_greedy(generator, 12)] * 2
    assert generator._static == {}  # the prompt alone is longer than 8 tokens: no static cache was made


def test_warm_up_runs_each_batch_size(tiny, monkeypatch):
    seen = []
    real = tiny.model.generate
    monkeypatch.setattr(tiny.model, "generate", lambda **kw: seen.append(kw["num_return_sequences"]) or real(**kw))
    assert tiny.warm_up((1, 4)) > 0
    assert seen == [1, 4]


def test_random_architectures_have_the_published_shapes():
    from interactive_format.bench.archs import random_model

    model = random_model("qwen2.5-0.5b", 100, device="meta")
    assert 490e6 < sum(p.numel() for p in model.parameters()) < 500e6  # Qwen2.5-0.5B: 494M
    assert model.config.num_key_value_heads == 2 and model.config.vocab_size == ARCHS["qwen2.5-0.5b"]["vocab_size"]
    small = random_model("smollm2-135m", 100, device="meta")
    assert 134e6 < sum(p.numel() for p in small.parameters()) < 136e6


@pytest.mark.slow
def test_bench_runs_end_to_end_on_a_tiny_model(tmp_path, capsys):
    out = bench.main(
        ["llm", "--arch", "tiny", "--random-weights", "--quick", "--device", "cpu", "--out", str(tmp_path / "b.json")]
    )
    result = json.loads(out.read_text())
    llm = result["llm"]
    assert llm["model"] == "random:tiny" and llm["baseline"]["how"].startswith("model.generate")
    for part in ("time_to_first_token", "time_to_first_token_n4", "decode_single_stream"):
        for side in ("ours", "baseline"):
            run = llm[part][side]
            assert 0 < run["first_token_s"] <= run["total_s"] and run["decode_tokens_per_s"] > 0
    assert llm["time_to_first_token"]["prompt_tokens"] == pytest.approx(48, abs=2)
    assert set(llm["candidates"]) == {"1", "2"} and llm["candidates"]["2"]["ours"]["tokens"] == 6  # fixed length
    users = llm["concurrent_users"]
    assert users["users"] == 3 and users["ours"]["aggregate_tokens_per_s"] > 0
    assert users["baseline_sequential"]["per_user_tokens_per_s_min"] > 0
    table = capsys.readouterr().out
    assert "decode tokens/s, 1 stream" in table and str(out) in table


def test_dtype_and_warmup_are_configurable():
    from interactive_format.settings.load import load_config

    config = load_config(environ={"IF_DTYPE": "bfloat16", "IF_WARMUP": "false"})
    assert config.models.dtype == "bfloat16" and config.models.warmup is False
    assert load_config(environ={}).models.dtype == "auto"
    with pytest.raises(ValueError, match="models.dtype"):
        load_config(environ={"IF_DTYPE": "int3"})


def test_bfloat16_generator_matches_plain_generate_in_the_same_dtype(tiny):
    """The opt-in CPU bf16 path: greedy output equals plain generate on the same bf16 weights."""
    model = random_generator("tiny", dtype=torch.bfloat16, tokenizer=tiny.tokenizer).model
    generator = TransformersGenerator(model, tiny.tokenizer)
    assert greedy(generator, 1, 16) == [plain_greedy(generator, 16)]


# --- requests from several users share one generate call --------------------------------------


def _together(generator: TransformersGenerator, jobs: list[tuple[list[dict], SamplingParams, threading.Event]]):
    """Start every job's stream at once (one thread each); the final Sample of each."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(lambda job: list(generator.stream(*job))[-1], jobs))


def _asking(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def test_requests_arriving_together_share_one_generate_call(tiny, monkeypatch):
    questions = ["Hi", "What is the capital of a country far away?", "Tell me a story about a cat, please."]
    solo = [greedy_reply(tiny, q, 12) for q in questions]  # each alone first
    calls = []
    real = tiny.model.generate
    monkeypatch.setattr(tiny.model, "generate", lambda **kw: calls.append(kw["input_ids"].shape) or real(**kw))
    jobs = [(_asking(q), SamplingParams(n=2, temperature=0, max_new_tokens=12), threading.Event()) for q in questions]
    finals = _together(tiny, jobs)
    assert calls == [(6, max(len(tiny.prompt_ids(_asking(q))) for q in questions))]  # 3 users × 2 rows, one call
    for final, reference in zip(finals, solo):  # left padding changes nothing: each got its own greedy reply
        assert final.done and [d.token_ids for d in final.drafts] == [reference, reference]


def greedy_reply(generator: TransformersGenerator, question: str, tokens: int) -> list[int]:
    params = SamplingParams(n=1, temperature=0, max_new_tokens=tokens)
    return list(generator.stream(_asking(question), params, threading.Event()))[-1].drafts[0].token_ids


def test_each_request_in_a_shared_call_keeps_its_own_limit_and_stop(tiny):
    stopped = threading.Event()
    stopped.set()  # this user pressed stop at once
    jobs = [
        (_asking("Short, please."), SamplingParams(n=1, max_new_tokens=3, seed=1), threading.Event()),
        (
            _asking("A longer one."),
            SamplingParams(n=3, temperature=1.2, top_p=0.5, max_new_tokens=20),
            threading.Event(),
        ),
        (_asking("Never mind."), SamplingParams(n=1, max_new_tokens=20), stopped),
    ]
    short, long, gone = _together(tiny, jobs)
    assert [len(d.token_ids) for d in short.drafts] == [3] and not short.stopped
    assert [len(d.token_ids) for d in long.drafts] == [20, 20, 20]
    assert gone.stopped and len(gone.drafts[0].token_ids) <= 1


def test_row_warper_keeps_the_top_p_mass_and_greedy_rows():
    from interactive_format.llm.generator import _RowWarper

    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]]))
    out = _RowWarper(torch.tensor([1.0, 0.0]), torch.tensor([0.7, 1.0]))(None, scores)
    assert torch.isfinite(out[0]).tolist() == [True, True, False, False]  # 0.5 + 0.3 reaches 0.7
    assert torch.isfinite(out[1]).tolist() == [False, False, False, True]  # temperature 0: argmax only


# --- streaming to the browser is coalesced ------------------------------------------------------


class _FastGenerator:
    """Yields a new snapshot every 2 ms for 0.6 s: far more often than a browser should be updated."""

    name = "fast"

    def count_tokens(self, messages: list[dict]) -> int:
        return 10

    def stream(self, messages, params, stop):
        import time

        from interactive_format.llm.sampling import Draft, Sample

        drafts = [Draft() for _ in range(params.n)]
        for step in range(300):
            for d in drafts:
                d.token_ids.append(step)
                d.text = f"word{step}"
            yield Sample([Draft(d.text, list(d.token_ids)) for d in drafts], 1)
            time.sleep(0.002)
        yield Sample(drafts, 1, done=True)


def test_streaming_to_the_browser_is_at_most_25_updates_per_second(tmp_path):
    import time

    from interactive_format.web.callbacks import UPDATE_INTERVAL_S, View, chat_ui
    from interactive_format.store.store import Store

    from ..fakes import fake_engine

    engine = fake_engine()
    engine.generator = _FastGenerator()
    store = Store(tmp_path / "chats.db")
    ui = chat_ui(engine, store)
    user = uuid.uuid4().hex
    chat = View(*ui.load(user)[1:]).chat
    times = []
    for view in ui.respond({"text": "Hello", "files": []}, chat, 2, 0.7, 16, 0.5, user):
        if str(view.status).startswith("Sampling"):
            times.append(time.monotonic())
    store.close()
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert UPDATE_INTERVAL_S >= 0.04
    assert len(times) >= 8  # the reply still streams (0.6 s of tokens)
    assert min(gaps) >= UPDATE_INTERVAL_S - 0.002  # never more than ~25 updates a second
    assert (len(times) - 1) / (times[-1] - times[0]) <= 25.5  # updates per second, over the stream


# --- the GPU path (skipped without CUDA) ---------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@cuda
def test_gpu_path_compiles_at_warm_up_and_not_during_a_turn(tiny):
    """Static cache + compiled decode on CUDA: warm-up compiles every bucket; a turn then recompiles nothing
    and its greedy output equals plain eager generate on the same weights."""
    model = random_generator("tiny", device="cuda", tokenizer=tiny.tokenizer).model
    generator = TransformersGenerator(model, tiny.tokenizer, options=SpeedOptions.for_device("cuda"))
    assert generator.options.static_cache and generator.options.compile
    generator.warm_up()
    reference = plain_greedy(generator, 24)
    with torch._dynamo.config.patch(error_on_recompile=True):
        assert greedy(generator, 3, 24) == [reference] * 3  # batch bucket 4, prefill shared
        assert greedy(generator, 1, 24) == [reference]


@pytest.mark.gpu
@cuda
def test_bench_runs_on_the_gpu(tmp_path):
    out = bench.main(
        ["llm", "--arch", "tiny", "--random-weights", "--quick", "--device", "cuda", "--out", str(tmp_path / "g.json")]
    )
    llm = json.loads(out.read_text())["llm"]
    assert llm["device"] == "cuda" and llm["ours"]["options"]["compile"] is True
    assert llm["ours"]["dtype"] == "torch.bfloat16"
    assert llm["decode_single_stream"]["ours"]["decode_tokens_per_s"] > 0


def test_bench_times_a_turn_on_each_model_named_in_turn_llm(monkeypatch, tmp_path, capsys):
    """--turn-llm A,B: one timed text turn per spec, the first as `turn`, the others in `turn_compare`, all printed."""
    timed = []

    def fake_turn(spec, cache_dir, threads):  # the real one needs minutes of a chat model per spec
        timed.append(spec)
        return {"model": spec, "turn_s": float(len(timed))}

    monkeypatch.setattr(bench, "bench_turn", fake_turn)
    out = tmp_path / "llm.json"
    bench.main(["llm", "--quick", "--random-weights", "--arch", "tiny", "--device", "cpu",
                "--turn-llm", "embedded:a, embedded:b", "--out", str(out)])  # fmt: skip
    llm = json.loads(out.read_text())["llm"]
    assert timed == ["embedded:a", "embedded:b"]
    assert llm["turn"]["model"] == "embedded:a" and [t["model"] for t in llm["turn_compare"]] == ["embedded:b"]
    printed = capsys.readouterr().out
    assert '"model": "embedded:a"' in printed and '"model": "embedded:b"' in printed


def test_the_turn_bench_also_times_the_turn_as_a_user_meets_it(monkeypatch):
    """bench_turn's "app" part: the app's default persona and token limit, end of turn honoured (no ignore_eos)."""
    from dataclasses import dataclass

    from interactive_format.bench import enginebench
    from interactive_format.config import GenerationConfig
    from interactive_format.bench.llmbench import LLMBench, Run

    @dataclass(frozen=True)
    class Options:
        ignore_eos: bool = True

    class Generator:
        options = Options()

    seen = []

    def fake_run(generator, messages, n, tokens, bench, seed=None):
        seen.append((messages[0]["content"], tokens, generator.options.ignore_eos, n))
        return Run(0.2, 3.0 + len(seen), 40 + len(seen))

    monkeypatch.setattr(enginebench, "stream_run", fake_run)
    app = enginebench.app_turns(Generator(), 4, LLMBench(), repeats=3)
    config = GenerationConfig()
    assert seen == [(config.system_prompt, config.max_new_tokens, False, 4)] * 3
    assert app == {"max_new_tokens": config.max_new_tokens, "first_token_s": 0.2, "longest_reply_tokens": 42,
                   "turn_s": 5.0}  # fmt: skip
