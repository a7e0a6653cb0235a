"""The generator G on any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, Ollama).

How the app scales past one GPU: the server batches and schedules, we stream its chat
completions. One request asks for `n` choices with `logprobs`, so J (mean token log-prob)
comes from the server's own distribution. A server that ignores `n` (llama.cpp's answers with
one choice) is detected from that first answer: the missing candidates, and every later turn,
get one concurrent request per candidate, each with its own seed. A server that offers no
log-probs gets J from a local scorer when one is configured (teacher forcing, ideally the
same model); otherwise J is unavailable (NaN) and the reranker orders by D alone.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from ..errors import GenerationError, ModelLoadError
from ..models.specs import SERVER_PREFIX
from .sampling import Draft, Sample, SamplingParams

if TYPE_CHECKING:
    from .generator import TransformersGenerator

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}  # worth another try before the first token
LOGPROBS_REFUSED = {400, 422, 500}  # how servers say "no logprobs here" (retried once without)


@dataclass(frozen=True)
class ServerOptions:
    base_url: str  # the API root, e.g. http://127.0.0.1:8000/v1
    model: str = ""  # "model" sent with each request; "" = the first one the server lists
    api_key: str = field(default="", repr=False)  # sent as a Bearer token when set
    timeout_s: float = 60.0  # longest wait for the server's next streamed chunk
    connect_timeout_s: float = 5.0  # longest wait to open a connection
    retries: int = 2  # extra tries for refused connections, 429 and 5xx answers before the first token
    logprobs: bool = True  # ask for per-token log-probs (J); switched off once a server refuses them


@dataclass
class RemoteDraft(Draft):
    """A candidate streamed by a server: token ids are not sent, so J counts reported log-probs."""

    logprob_count: int = 0  # tokens whose log-prob the server reported

    @property
    def mean_logprob(self) -> float:
        """J; NaN when the server sent text without log-probs (J unavailable), -inf for no text."""
        if self.logprob_count:
            return self.logprob_sum / self.logprob_count
        return float("nan") if self.text else float("-inf")

    def add(self, delta: dict) -> None:
        """Apply one streamed choice delta: text, log-probs, finish reason."""
        self.text += (delta.get("delta") or {}).get("content") or ""
        logprobs = token_logprobs(delta.get("logprobs"))
        self.logprob_sum += sum(logprobs)
        self.logprob_count += len(logprobs)
        if delta.get("finish_reason"):
            self.finished = delta["finish_reason"] == "stop"  # "length": cut by max_tokens


def token_logprobs(block: dict | None) -> list[float]:
    """Per-token log-probs from a choice's `logprobs`: chat format ({"content": [...]}) or completion format."""
    if not block:
        return []
    if isinstance(block.get("content"), list):
        values = [item.get("logprob") for item in block["content"]]
    else:
        values = block.get("token_logprobs") or []
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def sse_events(response: httpx.Response) -> Iterator[dict]:
    """The JSON payloads of a `stream: true` answer (server-sent events), up to `[DONE]`."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            return
        event = json.loads(data)
        if "error" in event:  # some servers report failures inside the stream
            raise GenerationError(f"The language model server failed while answering: {_detail(event['error'])}")
        yield event


def _detail(error) -> str:
    """A short, single-line description of a server's error payload."""
    text = error.get("message", error) if isinstance(error, dict) else error
    return " ".join(str(text).split())[:300]


class _Refused(Exception):
    """The server answered a request with an HTTP error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body


class _Turn:
    """The HTTP requests of one turn: each streamed by a worker thread into one queue; closed on stop."""

    def __init__(self, generator: OpenAICompatibleGenerator, stop: threading.Event) -> None:
        self.generator, self.stop = generator, stop
        self.events: queue.Queue = queue.Queue()
        self.responses: list[httpx.Response] = []
        self.running = 0
        self.lock = threading.Lock()

    def start(self, payload: dict, offset: int) -> None:
        """Stream `payload` in a thread; its choice k becomes candidate offset + k."""
        self.running += 1
        threading.Thread(target=self._work, args=(payload, offset), name="openai-stream", daemon=True).start()

    def _work(self, payload: dict, offset: int) -> None:
        try:
            for event in self.generator.chunks(payload, self.stop, self._opened):
                self.events.put(("chunk", offset, event))
        except Exception as e:  # reported to the consumer, which knows whether stop caused it
            self.events.put(("error", offset, e))
        finally:
            self.events.put(("end", offset, None))

    def _opened(self, response: httpx.Response) -> None:
        with self.lock:
            self.responses.append(response)
        if self.stop.is_set():
            response.close()

    def next(self) -> tuple[str, int, object] | None:
        """The next event; None while waiting (after closing the streams when stop is set)."""
        try:
            return self.events.get(timeout=0.1)
        except queue.Empty:
            if self.stop.is_set():
                self.close()
            return None

    def close(self) -> None:
        """Close every open stream: the server sees the client go away and stops generating."""
        with self.lock:
            for response in self.responses:
                response.close()


class OpenAICompatibleGenerator:
    """N streamed candidates from an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, options: ServerOptions, scorer: TransformersGenerator | None = None) -> None:
        self.options, self.scorer = options, scorer  # scorer: J for replies sent without log-probs
        self.base_url = options.base_url.rstrip("/")
        self.model = options.model
        self.name = f"{SERVER_PREFIX}{self.base_url}" + (f" ({self.model})" if self.model else "")
        self.honours_n: bool | None = None  # learnt from the first answer
        self.logprobs = options.logprobs
        headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        timeout = httpx.Timeout(options.timeout_s, connect=options.connect_timeout_s)
        self.client = httpx.Client(headers=headers, timeout=timeout, limits=httpx.Limits(max_connections=64))

    @classmethod
    def connect(cls, options: ServerOptions, scorer: TransformersGenerator | None = None) -> OpenAICompatibleGenerator:
        """A generator whose server answered `GET /models` (which also names the model when none is set)."""
        generator = cls(options, scorer)
        models = generator.list_models()
        if not options.model:
            if not models:
                raise ModelLoadError(f"The server at {generator.base_url} lists no models; set IF_LLM_MODEL.")
            generator.model = models[0]
            generator.name = f"{SERVER_PREFIX}{generator.base_url} ({generator.model})"
        return generator

    def list_models(self) -> list[str]:
        """Model ids the server serves; ModelLoadError when it cannot be reached or is not OpenAI-compatible."""
        url = f"{self.base_url}/models"
        try:
            response = self.client.get(url, timeout=self.options.connect_timeout_s)
            response.raise_for_status()
            return [m["id"] for m in response.json().get("data", [])]
        except httpx.HTTPStatusError as e:
            hint = " Check IF_LLM_API_KEY." if e.response.status_code in (401, 403) else ""
            raise ModelLoadError(f"The model server at {url} answered HTTP {e.response.status_code}.{hint}") from e
        except httpx.HTTPError as e:
            raise ModelLoadError(
                f"Could not reach the OpenAI-compatible model server at {self.base_url} ({e.__class__.__name__}). "
                "Start it first (e.g. `vllm serve MODEL --port 8000`) or fix the URL in IF_LLM / --llm."
            ) from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # not JSON, or not the OpenAI shape
            raise ModelLoadError(f"{url} did not answer like an OpenAI-compatible server ({e}).") from e

    def count_tokens(self, messages: list[dict]) -> int:
        """A conservative estimate (the standard API has no tokenizer): one token per 3 UTF-8 bytes, plus 4 per message.

        English averages about 4 bytes a token and Chinese 3, so long histories are trimmed a little early, never late.
        """
        return sum(len(m["content"].encode()) // 3 + 4 for m in messages) + 2

    def payload(self, messages: list[dict], params: SamplingParams, n: int, seed: int) -> dict:
        """The JSON body of one streamed chat-completions request."""
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": seed,
        }
        # top_logprobs 1: the sampled token's log-prob (some servers send none without the field, and llama-server
        # sends none with 0); the one alternative that comes with it is ignored
        if self.logprobs:
            body.update(logprobs=True, top_logprobs=1)
        return body

    def chunks(self, payload: dict, stop: threading.Event, opened) -> Iterator[dict]:
        """Stream one request's events; retries connection failures, 429 and 5xx until the first event."""
        for attempt in range(self.options.retries + 1):
            streamed = False
            try:
                with self.client.stream("POST", f"{self.base_url}/chat/completions", json=payload) as response:
                    opened(response)
                    if response.status_code >= 400:
                        raise _Refused(response.status_code, response.read().decode(errors="replace"))
                    for event in sse_events(response):
                        streamed = True
                        yield event
                        if stop.is_set():
                            return
                return
            except _Refused as e:
                if payload.get("logprobs") and e.status in LOGPROBS_REFUSED:
                    log.warning("%s refused logprobs (HTTP %s); J will be unavailable", self.base_url, e.status)
                    self.logprobs = False
                    payload = {k: v for k, v in payload.items() if k not in ("logprobs", "top_logprobs")}
                    continue
                if e.status not in RETRY_STATUS or attempt == self.options.retries:
                    raise
            except httpx.TransportError:  # refused connection, timeout, dropped stream
                if streamed or stop.is_set() or attempt == self.options.retries:
                    raise
            time.sleep(0.5 * 2**attempt)

    def stream(self, messages: list[dict], params: SamplingParams, stop: threading.Event) -> Iterator[Sample]:
        """Yield snapshots of the N drafts as the server streams them; the last one has done=True."""
        seed = params.seed if params.seed is not None else random.randrange(2**31 - 1)
        drafts = [RemoteDraft() for _ in range(params.n)]
        turn = _Turn(self, stop)
        if self.honours_n is False:  # one request per candidate, each with its own seed
            for k in range(params.n):
                turn.start(self.payload(messages, params, 1, seed + k), k)
        else:
            turn.start(self.payload(messages, params, params.n, seed), 0)
        choices: set[int] = set()
        try:
            while turn.running:
                item = turn.next()
                if item is None:
                    continue
                kind, offset, value = item
                if kind == "chunk":
                    for choice in value.get("choices") or []:
                        index = offset + int(choice.get("index", 0))
                        if index < params.n:
                            choices.add(index)
                            drafts[index].add(choice)
                    yield Sample([copy.copy(d) for d in drafts], seed)
                elif kind == "error":
                    if not stop.is_set():
                        raise self._error(value) from value
                else:
                    turn.running -= 1
                    if self.honours_n is None and not stop.is_set():
                        self._learn_n(turn, choices, messages, params, seed)
        finally:
            if turn.running:
                stop.set()  # the consumer went away (or a request failed): end the other requests
                turn.close()
        self.score_locally(messages, drafts)
        yield Sample(drafts, seed, done=True, stopped=stop.is_set())

    def score_locally(self, messages: list[dict], drafts: list[RemoteDraft]) -> None:
        """J for the replies that came without log-probs: the local scorer's mean token log-prob (teacher forcing)."""
        if self.scorer is None:
            return
        tokenizer = self.scorer.tokenizer
        todo = [(d, tokenizer(d.text, add_special_tokens=False)["input_ids"]) for d in drafts if not d.logprob_count]
        todo = [(d, ids) for d, ids in todo if ids]
        if not todo:
            return
        prompt = self.scorer.prompt_ids(messages)
        import torch  # only with a local scorer: the HTTP path needs no torch

        from .offline import sequence_logprobs

        with torch.inference_mode():
            j = sequence_logprobs(self.scorer, [prompt] * len(todo), [ids for _, ids in todo], with_end=False)
        for (draft, ids), value in zip(todo, j.tolist()):
            draft.logprob_sum, draft.logprob_count = value * len(ids), len(ids)

    def _learn_n(self, turn: _Turn, choices: set[int], messages: list[dict], params: SamplingParams, seed: int) -> None:
        """After the first answer: a server that sent one choice for n > 1 gets the rest as separate requests."""
        if params.n == 1:
            return
        self.honours_n = len(choices) > 1
        if not self.honours_n:
            log.info("%s ignores n: sending one request per candidate", self.base_url)
            for k in range(1, params.n):
                turn.start(self.payload(messages, params, 1, seed + k), k)

    def _error(self, error: BaseException) -> GenerationError:
        """The user's message for a failed request."""
        where = f"the language model server at {self.base_url}"
        if isinstance(error, GenerationError):
            return error
        if isinstance(error, _Refused):
            hint = " (check IF_LLM_API_KEY)" if error.status in (401, 403) else ""
            return GenerationError(
                f"{where.capitalize()} refused the request: HTTP {error.status}{hint}: "
                f"{_detail(_json_or_text(error.body))}"
            )
        if isinstance(error, httpx.ConnectError):
            return GenerationError(f"Could not reach {where}: is it running?")
        if isinstance(error, httpx.TimeoutException):
            return GenerationError(f"No answer from {where} within {self.options.timeout_s:g} s.")
        if isinstance(error, httpx.TransportError):
            return GenerationError(f"The connection to {where} broke off while answering ({error.__class__.__name__}).")
        if isinstance(error, (ValueError, KeyError, TypeError, AttributeError)):
            return GenerationError(f"{where.capitalize()} sent an answer that is not OpenAI-compatible streaming.")
        return GenerationError(f"The request to {where} failed ({error.__class__.__name__}).")

    def close(self) -> None:
        self.client.close()


def _json_or_text(body: str):
    """A server's error body: its `error` object when it is JSON, else the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    return data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
