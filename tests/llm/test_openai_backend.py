"""The OpenAI-compatible backend against a REAL server: llama.cpp's llama-server (the one xllamacpp embeds),
serving the embedded SmolLM2 GGUF on loopback.

The server starts once for this module (`python -m interactive_format.llm.llamacpp`, a prebuilt wheel: no source
build). It honours `n` (one request, N choices); the fallback to one request per candidate, for servers
that send one choice, is exercised against it too by telling a generator the server ignores `n`.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from interactive_format.llm.backends import check_server, load_generator
from interactive_format.engine.chat import ChatEngine
from interactive_format.config import ModelsConfig
from interactive_format.errors import GenerationError, ModelLoadError
from interactive_format.models.hub import llm_path
from interactive_format.models.specs import parse_spec
from interactive_format.llm.openai_backend import OpenAICompatibleGenerator, RemoteDraft, ServerOptions
from interactive_format.llm.sampling import SamplingParams

from ..conftest import free_port

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant."},
    {"role": "user", "content": "Name a colour."},
]
ALIAS = "smollm2-135m"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory, cache_dir):
    """llama-server (xllamacpp) on the embedded GGUF, 127.0.0.1; yields its API root (…/v1)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "interactive_format.llm.llamacpp", "embedded:smollm2-135m", "--alias", ALIAS,
        "--port", str(port), "--context", "8192", "--slots", "4", "--threads", "1", "--cache-dir", str(cache_dir),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(url, process, log_path)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_up(url: str, process: subprocess.Popen, log_path, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama.cpp server exited ({process.returncode}): {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"llama.cpp server did not come up in {limit_s} s: {log_path.read_text()[-2000:]}")


@pytest.fixture
def backend(llama_server):
    """A fresh generator: it has yet to learn whether the server honours `n`."""
    generator = OpenAICompatibleGenerator.connect(ServerOptions(llama_server))
    yield generator
    generator.close()


def run(generator, params, stop=None):
    samples = list(generator.stream(MESSAGES, params, stop or threading.Event()))
    assert samples[-1].done and all(not s.done for s in samples[:-1])
    return samples


def test_streams_n_candidates_from_the_real_server(backend):
    assert backend.model == ALIAS  # named by the server's /models
    start = time.perf_counter()
    samples = run(backend, SamplingParams(n=3, max_new_tokens=16, seed=7))
    seconds = time.perf_counter() - start
    drafts = samples[-1].drafts
    assert len(drafts) == 3 and all(d.text.strip() for d in drafts)
    assert len(samples) > 6  # streamed chunk by chunk, not delivered at the end
    assert any(d.text for d in samples[2].drafts) and not all(d.finished for d in samples[2].drafts)
    assert backend.honours_n is True  # llama-server sent the 3 choices of one request
    tokens = sum(d.logprob_count for d in drafts)
    print(f"\nllama.cpp server: 3 candidates, {tokens} tokens in {seconds:.2f} s ({tokens / seconds:.1f} tokens/s)")
    again = run(backend, SamplingParams(n=3, max_new_tokens=16, seed=7))[-1].drafts
    assert [d.text for d in again] == [d.text for d in drafts]  # the seed reproduces the candidates
    assert len({d.text for d in drafts}) > 1  # candidates differ


def test_a_server_that_ignores_n_gets_one_request_per_candidate(llama_server):
    generator = OpenAICompatibleGenerator.connect(ServerOptions(llama_server))
    generator.honours_n = False  # as learnt from a server that sends one choice for n > 1
    drafts = run(generator, SamplingParams(n=3, max_new_tokens=16, seed=7))[-1].drafts  # 3 requests at once
    assert len(drafts) == 3 and all(d.text.strip() for d in drafts)
    # (seed k for candidate k does not reproduce them here: llama-server batches the 3 requests with whatever else
    # runs, and batched decoding rounds differently; the same single request does, see the test above)
    assert len({d.text for d in drafts}) > 1  # candidates differ (their seeds do)
    generator.close()


def test_logprobs_give_a_finite_j(backend):
    drafts = run(backend, SamplingParams(n=2, max_new_tokens=12, seed=3))[-1].drafts
    for d in drafts:
        assert d.logprob_count >= 1 and math.isfinite(d.mean_logprob) and d.mean_logprob < 0


def test_without_logprobs_j_is_unavailable(llama_server):
    generator = OpenAICompatibleGenerator.connect(ServerOptions(llama_server, logprobs=False))
    drafts = run(generator, SamplingParams(n=2, max_new_tokens=8, seed=3))[-1].drafts
    assert all(d.text and math.isnan(d.mean_logprob) for d in drafts)


def test_without_logprobs_a_local_scorer_gives_j(llama_server, backend, generator):
    served = run(backend, SamplingParams(n=3, max_new_tokens=12, seed=5))[-1].drafts  # J from the server
    rescored = [RemoteDraft(d.text) for d in served]
    OpenAICompatibleGenerator(ServerOptions(llama_server, ALIAS), scorer=generator).score_locally(MESSAGES, rescored)
    print(
        "\nJ server vs local scorer:",
        [(round(a.mean_logprob, 3), round(b.mean_logprob, 3)) for a, b in zip(served, rescored)],
    )
    # J is comparable where both are means over the same tokens: llama-server reports one log-prob for a
    # character split over byte tokens (an emoji, a rare CJK character), so a reply with one has fewer entries.
    same = [(a, b) for a, b in zip(served, rescored) if a.logprob_count == b.logprob_count]
    assert same, [(a.text, a.logprob_count, b.logprob_count) for a, b in zip(served, rescored)]
    for a, b in same:  # the local copy of the same model agrees with the server's log-probs
        assert b.mean_logprob == pytest.approx(a.mean_logprob, abs=0.1)

    scored = OpenAICompatibleGenerator.connect(ServerOptions(llama_server, logprobs=False), scorer=generator)
    drafts = run(scored, SamplingParams(n=2, max_new_tokens=8, seed=3))[-1].drafts
    assert all(d.text and math.isfinite(d.mean_logprob) and d.mean_logprob < 0 for d in drafts)


def test_stop_closes_the_stream_early(backend):
    stop = threading.Event()
    samples = []
    start = time.perf_counter()
    for sample in backend.stream(MESSAGES, SamplingParams(n=2, max_new_tokens=300, seed=1), stop):
        samples.append(sample)
        if len(samples) == 3:
            stop.set()
    assert samples[-1].done and samples[-1].stopped
    assert sum(d.logprob_count for d in samples[-1].drafts) < 20
    assert time.perf_counter() - start < 10
    assert run(backend, SamplingParams(n=1, max_new_tokens=4, seed=1))[-1].drafts[0].text  # the server still serves


def test_unreachable_server_is_a_clear_error():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelLoadError, match="Could not reach the OpenAI-compatible model server"):
        load_generator(ModelsConfig(llm=f"openai:{dead}"), "cpu")
    generator = OpenAICompatibleGenerator(ServerOptions(dead, model="m", retries=1))
    with pytest.raises(GenerationError, match=f"Could not reach the language model server at {dead}"):
        run(generator, SamplingParams(n=2, max_new_tokens=4))


def test_wrong_path_and_bad_specs_are_clear_errors(llama_server):
    with pytest.raises(ModelLoadError, match="answered HTTP 404"):
        OpenAICompatibleGenerator.connect(ServerOptions(llama_server.removesuffix("/v1") + "/nope"))
    with pytest.raises(ModelLoadError, match="needs a server URL"):
        parse_spec("openai:localhost:8000")
    with pytest.raises(ModelLoadError, match="is a model server"):
        llm_path(f"openai:{llama_server}", None)  # training needs local weights


def test_model_spec_selects_the_backend(llama_server):
    models = ModelsConfig(llm=f"openai:{llama_server}/", llm_model=ALIAS, llm_timeout=30, llm_logprobs=False)
    generator = load_generator(models, "cpu")
    assert isinstance(generator, OpenAICompatibleGenerator)
    assert generator.base_url == llama_server and generator.options.timeout_s == 30 and not generator.logprobs
    assert generator.name == f"openai:{llama_server} ({ALIAS})"
    check_server(models)  # the start's probe passes a server that answers, and any other spec without asking
    check_server(ModelsConfig(llm="embedded:smollm2-135m"))


@pytest.fixture(scope="module")
def served(engine, llama_server, serve):
    """The app on the server backend (the session engine's speech, picture and D models); yields (engine, URL)."""
    from interactive_format.store.store import Store
    from interactive_format.web.ui import build_demo

    remote = ChatEngine(
        engine.config,
        load_generator(ModelsConfig(llm=f"openai:{llama_server}"), "cpu"),
        engine.transcriber,
        engine.captioner,
        engine.reranker,
    )
    store = Store(":memory:")
    with serve(build_demo(remote, store)) as url:
        yield remote, url
    store.close()


def chat(client, message, n=3):
    return client.predict(message, None, None, n, 0.7, 16, api_name="/chat")


def test_whole_turn_through_the_app(served, llama_server):
    remote, url = served
    client = Client(url, verbose=False)
    result = chat(client, "Hello! Can you recommend a good book?")
    assert result["reply"].strip() and len(result["candidates"]) == 3
    assert result["meta"]["model"] == f"openai:{llama_server} ({ALIAS})"
    for c in filter(lambda c: c["text"].strip(), result["candidates"]):
        assert c["j"] < 0 and 0 < c["d"] < 1  # J from the server's log-probs, D from the shipped discriminator
    best = min(result["candidates"], key=lambda c: c["rank"])
    assert best["text"] == result["reply"]

    working = remote.generator  # the server goes away: a clear message, and the app keeps serving
    remote.generator = OpenAICompatibleGenerator(ServerOptions(f"http://127.0.0.1:{free_port()}/v1", "m", retries=0))
    try:
        with pytest.raises(AppError, match="Could not reach the language model server"):
            chat(client, "Are you there?")
    finally:
        remote.generator = working
    assert chat(client, "Are you back?", n=2)["reply"].strip()
