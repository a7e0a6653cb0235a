"""LlamaCppGenerator: llama.cpp in-process (xllamacpp), the default engine for GGUF chat models on CPU.

One llama.cpp server context decodes up to `slots` sequences together (continuous batching): the N
candidates of a turn are one request with "n": N (the prompt is evaluated once, its cache shared by the
child slots), or, when the consumer may end single candidates (`RowEnds`, pruning.py), N requests of
one candidate (seed, seed + 1, …), so that one can be cancelled while the others go on and decode
faster; each slot keeps its prompt cached (`cache_prompt`), so only what a slot has not seen yet is
evaluated again. The requests of concurrent users join the same decode batches. J comes from the engine's own log-probs of the
sampled tokens (from the raw distribution, before temperature and top-p, as in TransformersGenerator).

xllamacpp also opens llama-server's HTTP listener; it is bound to 127.0.0.1 on a free port and used
only for the model's own chat template and tokenizer (`count_tokens`).
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import GenerationError, ModelLoadError, log_failure
from .sampling import Deadline, Draft, RowEnds, Sample, SamplingParams

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class LlamaCppOptions:
    """How llama.cpp runs the model."""

    # Decode threads (the app passes `device.llm_threads`: one per CPU, pinned, or half the CPUs). Unpinned threads wait for each
    # other spinning while the OS runs another process on one of their cores (docs/performance.md).
    threads: int = 1
    batch_threads: int = 1  # threads for the prompt (prefill)
    # CPUs to pin the threads to, one each (the app passes `device.llm_pinned_cpus`); (): the OS places them.
    cpus: tuple[int, ...] = ()
    slots: int = 16  # sequences decoded together: all users' candidates (a request waits for free slots)
    context: int = 16384  # KV-cache tokens shared by all slots (unified cache)
    verbosity: int = -1  # llama.cpp's own log: -1 errors only
    ignore_eos: bool = False  # the benchmark: every reply runs to its token limit (comparable timings)
    # False (default): a turn's N candidates are one request (the prompt evaluated once, shared by the child slots);
    # an ended candidate decodes on, unseen, and the request is cancelled once every candidate is finished or ended,
    # which is where the time is saved (the early stop). True: one request per candidate, so an ended one stops
    # decoding at once, but every slot evaluates the prompt again. Live on 2 cores, 1.5B, 8 prompts, N = 4 with
    # the pruning policy: one request 14.8 s (2.02x N = 1; 20.5 s without the policy), one request per
    # candidate 21.2 s (2.53x; 19.6 s without), bench/results/prune-cpu2-2026-12-07.json.
    split: bool = False


def start_server(gguf: Path, name: str, options: LlamaCppOptions, port: int = 0, alias: str = ""):
    """An xllamacpp Server (llama-server in this process) for `gguf`, its HTTP listener on 127.0.0.1:`port`
    (0: a free one); ModelLoadError when llama.cpp cannot load the file."""
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(gguf)
    p.cpuparams.n_threads = options.threads
    p.cpuparams_batch.n_threads = options.batch_threads
    if options.cpus:
        for cpu in (p.cpuparams, p.cpuparams_batch):
            cpu.cpumask = [i in options.cpus for i in range(len(cpu.cpumask))]
            cpu.mask_valid = cpu.strict_cpu = True  # thread k on the k-th CPU of the mask
    p.n_parallel = options.slots
    p.kv_unified = True
    p.n_ctx = options.context
    p.hostnames = [LOOPBACK]  # llama-server's HTTP listener: loopback only, never a public address
    p.port = port
    p.verbosity = options.verbosity
    if alias:
        p.model_alias = {alias}
    try:
        return xllamacpp.Server(p)
    except RuntimeError as e:  # unreadable, truncated or unsupported GGUF
        raise ModelLoadError(
            f"Model '{name}': llama.cpp could not load {gguf} ({e}). Pass a complete GGUF file "
            "(an embedded model: reinstall its packages, see the README)."
        ) from e


class LlamaCppGenerator:
    """A GGUF chat model run by llama.cpp in this process; the `Generator` protocol of sampling.py."""

    ends_rows = True  # a candidate can be ended alone (RowEnds)

    def __init__(self, gguf: Path | str, name: str = "model", options: LlamaCppOptions | None = None) -> None:
        self.name, self.options, self.gguf = name, options or LlamaCppOptions(), Path(gguf)
        self.server = start_server(self.gguf, name, self.options)
        self.url = self.server.listening_address.rstrip("/")
        if not self.url.startswith(f"http://{LOOPBACK}:"):
            raise ModelLoadError(f"llama.cpp listens on {self.url}, not on loopback; refusing to serve")

    @classmethod
    def from_spec(cls, spec: str, cache_dir: Path, options: LlamaCppOptions | None = None) -> "LlamaCppGenerator":
        """An embedded model or a local .gguf path (an embedded model in parts is joined once into `cache_dir`)."""
        from ..models.gguf_file import gguf_path

        path = gguf_path(spec, cache_dir)
        if path is None:
            raise ModelLoadError(
                f"Model '{spec}' is not a GGUF file; llama.cpp needs one (or use the transformers backend)."
            )
        return cls(path, name=spec, options=options)

    # --- the model's own template and tokenizer -------------------------------------------------

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def prompt_text(self, messages: list[dict]) -> str:
        """`messages` under the model's chat template, ready for the reply."""
        return self._post("/apply-template", {"messages": messages})["prompt"]

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` as the engine reads a prompt (special tokens parsed, BOS when the model has one)."""
        return self._post("/tokenize", {"content": text, "add_special": True, "parse_special": True})["tokens"]

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return self.tokenize(self.prompt_text(messages))

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.prompt_ids(messages))

    # --- sampling --------------------------------------------------------------------------------

    def request(self, prompt: str | list[int], params: SamplingParams, seed: int, n: int | None = None) -> dict:
        """The completion request for `n` (default `params.n`) candidates of one prompt (text or token ids)."""
        body = dict(
            prompt=prompt, n=params.n if n is None else n, max_tokens=params.max_new_tokens, seed=seed, stream=True,
            logprobs=1,  # the sampled token's log-prob, from the raw distribution
            temperature=max(params.temperature, 0.0), top_p=params.top_p, top_k=0, min_p=0.0,
            repeat_penalty=1.0, cache_prompt=True,
        )  # fmt: skip
        if params.greedy:
            body.update(temperature=0.0, top_p=1.0)
        if self.options.ignore_eos:
            body["ignore_eos"] = True
        return body

    def stream(
        self, messages: list[dict], params: SamplingParams, stop: threading.Event, ends: RowEnds | None = None
    ) -> Iterator[Sample]:
        """Yield snapshots of the N drafts as they grow; the last one has done=True.

        Stop (or a consumer that goes away, or the reply's time limit) ends every candidate at the next token.
        With `ends` (and `options.split`), each candidate is its own request and a row ended there is cancelled
        alone; without `split`, the N stay one request, an ended row is left as it was, and the request is
        cancelled once every row has finished, reached its limit or ended.
        """
        seed = params.seed if params.seed is not None else random.randrange(2**31 - 1)
        prompt, chunks = self.prompt_text(messages), queue.Queue()
        rows, done = RowEnds() if ends is None else ends, threading.Event()
        if ends is None or not self.options.split:  # one request: the prompt evaluated once for all N
            requests = [(0, self.request(prompt, params, seed), lambda: stop.is_set() or done.is_set())]
        else:  # one request per candidate, each cancelled on its own
            requests = [
                (row, self.request(prompt, params, (seed + row) % 2**31, n=1), _either(stop, rows, row))
                for row in range(params.n)
            ]
        for first, body, cancel in requests:
            threading.Thread(target=self._run, args=(body, cancel, chunks, first), name="llama.cpp", daemon=True).start()
        drafts, usage = [Draft() for _ in range(params.n)], {}
        deadline, running, ended = Deadline(params.timeout_s), len(requests), False
        try:
            while running:
                first, chunk = deadline.get(chunks)
                if chunk is None:
                    running -= 1
                elif isinstance(chunk, BaseException):
                    raise generation_error(chunk) from chunk
                else:
                    changed = _apply(chunk, drafts, first, rows)  # an ended row keeps its text as it was
                    usage = chunk.get("usage") or usage  # on a request's last chunks: its prompt's counts
                    if ends is not None and all(_over(k, d, rows, params) for k, d in enumerate(drafts)):
                        done.set()  # one request: the rows still decoding are all ended
                    if changed:
                        yield Sample([_copy(d) for d in drafts], seed)
            ended = True
        finally:
            if not ended:
                stop.set()  # the consumer went away, the reply timed out or a request failed: end them all
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") if usage else None
        yield Sample(drafts, seed, True, stop.is_set(), usage.get("prompt_tokens"), cached)

    def _run(self, body: dict, cancel: Callable[[], bool], chunks: queue.Queue, first: int) -> None:
        """One streamed request (blocks in llama.cpp) for the candidates from row `first` on; every chunk goes to
        `chunks` as (first, chunk), then (first, None)."""

        def on_chunk(chunk: dict) -> bool:  # True: cancel the request
            if "error" in chunk or chunk.get("code") == 500:
                error = chunk.get("error", chunk)
                chunks.put(
                    (first, RuntimeError(str(error.get("message", error) if isinstance(error, dict) else error)))
                )
                return True
            chunks.put((first, chunk))
            return cancel()

        try:
            self.server.handle_completions(body, on_chunk)
        except Exception as e:
            chunks.put((first, e))
        finally:
            chunks.put((first, None))

    def warm_up(self, ns: tuple[int, ...] = (1, 4)) -> None:
        """One short request per batch size, so the first user turn is not the one that pages the weights in."""
        messages = [{"role": "user", "content": "Hello!"}]
        for n in sorted(set(ns)):
            for _ in self.stream(messages, SamplingParams(n=n, max_new_tokens=4, seed=0), threading.Event()):
                pass

    def close(self) -> None:
        """Stop llama.cpp (its threads and listener); the generator is unusable afterwards."""
        server, self.server = getattr(self, "server", None), None
        del server


def _apply(chunk: dict, drafts: list[Draft], first: int = 0, ends: RowEnds | None = None) -> bool:
    """Add one streamed chunk's tokens to its candidates (choice k is row `first` + k; rows in `ends` are left as
    they are); True when a draft changed."""
    changed = False
    for choice in chunk.get("choices", []):
        index = first + choice.get("index", 0)
        if not 0 <= index < len(drafts) or (ends is not None and index in ends):
            continue
        draft = drafts[index]
        for token in (choice.get("logprobs") or {}).get("content") or []:
            draft.token_ids.append(token["id"])
            draft.logprob_sum += token["logprob"]
        draft.text += choice.get("text") or ""
        if choice.get("finish_reason") == "stop":  # end of turn (no stop strings are sent)
            draft.finished = True
        changed = True
    return changed


def _over(row: int, draft: Draft, ends: RowEnds, params: SamplingParams) -> bool:
    """A row that will not grow: finished, ended, or at its token limit."""
    return draft.finished or row in ends or len(draft.token_ids) >= params.max_new_tokens


def _either(stop: threading.Event, ends: RowEnds, row: int) -> Callable[[], bool]:
    """Whether row `row`'s request is to be cancelled: the whole reply stopped, or the row ended."""
    return lambda: stop.is_set() or row in ends


def _copy(d: Draft) -> Draft:
    return Draft(d.text, list(d.token_ids), d.logprob_sum, d.finished)


def generation_error(error: BaseException) -> GenerationError:
    """The user's message for a failure inside llama.cpp (logged with its traceback, no user text)."""
    log_failure(log, "llama.cpp generation failed", error)
    return GenerationError(f"The language model failed while answering ({error.__class__.__name__}). Please try again.")


def main(argv: list[str] | None = None) -> None:
    """python -m interactive_format.llamacpp MODEL --port N: llama-server (OpenAI-compatible API at /v1) on 127.0.0.1,
    as a user would run it; the tests and the benchmark use it as the peer engine."""
    import argparse
    import time

    from ..config import default_cache_dir
    from ..models.gguf_file import gguf_path

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("model", help="an embedded chat spec or a .gguf path")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alias", default="", help="the model name /v1/models lists")
    parser.add_argument("--threads", type=int, default=LlamaCppOptions.threads)
    parser.add_argument("--slots", type=int, default=LlamaCppOptions.slots)
    parser.add_argument("--context", type=int, default=LlamaCppOptions.context)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args(argv)
    options = LlamaCppOptions(threads=args.threads, batch_threads=args.threads, slots=args.slots, context=args.context)
    server = start_server(gguf_path(args.model, args.cache_dir), args.model, options, args.port, args.alias)
    print("listening on", server.listening_address, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
