"""The `models` part of the benchmark: whole text turns as users meet them on two or more chat models, side by side.

Each model gets the app's own engine (`engines.build_engine`: default persona, settings and ranking — defects
and D), one per N, each with its own llama.cpp server: llama.cpp keeps the prompts it has seen (its slots and
a RAM prompt cache) and would serve a prompt asked again at another N from its cache (first run: 0.07 s first
tokens), so every timed turn's prompt is new to the server that answers it, as a user's new question is (the
persona is cached, as in the app, by an untimed first turn). Every turn goes through `ChatEngine.respond`,
timed from the call to its end (sampling, ranking) and to the first streamed text. The held-out everyday
prompts below take turns: per prompt every N, per N every model (their order flipped on every other prompt),
all with the prompt's seed, so a drifting load hits every model alike. With `first_start`, also the app's first start per model (`python app.py --llm SPEC` with
an empty cache directory, until its page answers, then again with the cache filled), and each model's
install size on disk: its packages as installed and the joined (or converted) weight file in the cache.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from ..llm.sampling import Sample, SamplingParams

# Everyday questions for the app's default persona, written for this benchmark: disjoint from
# bench/rerank/prompts.json and bench/quality/prompts.json, never used to tune anything.
TURN_PROMPTS = [
    {"id": "zh-1", "lang": "zh", "text": "周末想去公园野餐，要带些什么？"},
    {"id": "en-1", "lang": "en", "text": "What's a kind thing to say to a friend who just lost their job?"},
    {"id": "zh-2", "lang": "zh", "text": "怎么才能把房间收拾得整齐一点？"},
    {"id": "en-2", "lang": "en", "text": "How do I keep my houseplants alive while I'm on vacation?"},
    {"id": "zh-3", "lang": "zh", "text": "我想给朋友送一份毕业礼物，有什么推荐？"},
    {"id": "en-3", "lang": "en", "text": "Can you suggest a fun activity for a kid's birthday party?"},
    {"id": "zh-4", "lang": "zh", "text": "晚上喝咖啡会影响睡眠吗？"},
    {"id": "en-4", "lang": "en", "text": "Is it a bad idea to check my phone right before bed?"},
    {"id": "zh-5", "lang": "zh", "text": "番茄鸡蛋面怎么做才好吃？"},
    {"id": "en-5", "lang": "en", "text": "How do I make a simple tomato pasta sauce?"},
    {"id": "zh-6", "lang": "zh", "text": "背英语单词总是记不住，怎么办？"},
    {"id": "en-6", "lang": "en", "text": "What's a good way to learn new words in a foreign language?"},
]


class SeededGenerator:
    """The engine's generator with the benchmark's seed, noting each turn's first streamed text and its tokens."""

    def __init__(self, inner) -> None:
        self.inner, self.seed = inner, 0
        self.first_at: float | None = None  # perf_counter when the first candidate text arrived
        self.tokens = self.longest = 0  # tokens decoded in the turn: all candidates, the longest one
        self.prompt_tokens = self.cached_tokens = None  # the turn's prompt, and its part served from llama.cpp's cache

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def stream(self, messages: list[dict], params: SamplingParams, stop: threading.Event, **kw) -> Iterator[Sample]:
        """The inner stream with the benchmark's seed (`kw`: the rows the pruning policy ends, as the engine passes)."""
        self.first_at, self.tokens, self.longest = None, 0, 0
        for sample in self.inner.stream(messages, dataclasses.replace(params, seed=self.seed), stop, **kw):
            if self.first_at is None and any(d.text for d in sample.drafts):
                self.first_at = time.perf_counter()
            self.tokens = sum(len(d.token_ids) for d in sample.drafts)
            self.longest = max((len(d.token_ids) for d in sample.drafts), default=0)
            self.prompt_tokens, self.cached_tokens = sample.prompt_tokens, sample.cached_tokens
            yield sample


class OwnChatModel:
    """A ModelCache wrapper that shares every model but the chat model: each engine gets its own llama.cpp server."""

    def __init__(self, models) -> None:
        self.models = models

    def get(self, key, load):
        return load() if key[0] == "llm" else self.models.get(key, load)


def engines_for(specs: list[str], ns: list[int]) -> tuple[dict, dict[str, float]]:
    """The app's engine per (chat model spec, N), the other models shared, and each spec's load seconds."""
    from ..settings.load import load_config
    from ..engine.engines import ModelCache, build_engine

    config, models = load_config(), OwnChatModel(ModelCache())
    engines, load_s = {}, {}
    for spec in specs:
        for n in ns:
            started = time.perf_counter()
            model, threads = arm(spec)
            models_config = dataclasses.replace(config.models, llm=model)
            if threads is not None:
                models_config = dataclasses.replace(models_config, llm_threads=threads)
            engine = build_engine(dataclasses.replace(config, models=models_config), models)
            load_s.setdefault(spec, round(time.perf_counter() - started, 2))  # the first: D, Whisper... load too
            engine.generator = SeededGenerator(engine.generator)
            engines[spec, n] = engine
    return engines, load_s


def one_turn(engine, text: str, n: int, seed: int) -> dict:
    """One fresh chat's first turn through `ChatEngine.respond` with N candidates, timed."""
    generator = engine.generator
    generator.seed = seed
    conversation = engine.new_conversation()
    settings = dataclasses.replace(engine.default_settings(), num_candidates=n)
    started = time.perf_counter()
    for _ in engine.respond(conversation, text, settings=settings):
        pass
    turn_s = time.perf_counter() - started
    reply = conversation.turns[-1]
    if reply.error:
        raise RuntimeError(f"the turn failed: {reply.error}")
    return {
        "turn_s": round(turn_s, 3),
        "first_token_s": round((generator.first_at or time.perf_counter()) - started, 3),
        "tokens": generator.tokens,
        "longest_tokens": generator.longest,
        "prompt_tokens": generator.prompt_tokens,
        "cached_prompt_tokens": generator.cached_tokens,
        "shown": reply.candidates[reply.chosen].text,
    }


def _stats(turns: list[dict]) -> dict:
    turn, first = [t["turn_s"] for t in turns], [t["first_token_s"] for t in turns]
    return {
        "turns": len(turns),
        "turn_s_median": round(statistics.median(turn), 3),
        "turn_s_max": round(max(turn), 3),
        "first_token_s_median": round(statistics.median(first), 3),
        "first_token_s_max": round(max(first), 3),
        "tokens_per_turn_median": statistics.median(t["tokens"] for t in turns),
        "longest_tokens_median": statistics.median(t["longest_tokens"] for t in turns),
    }


def summarize(rows: list[dict], specs: list[str], ns: list[int]) -> dict:
    """Per model and N: median and max turn and first-token seconds, tokens; the ratios side by side."""
    stats = {s: {str(n): _stats([r for r in rows if r["model"] == s and r["n"] == n]) for n in ns} for s in specs}
    per_lang = {
        s: {str(n): {lang: _stats([r for r in rows if r["model"] == s and r["n"] == n and r["lang"] == lang])
                     for lang in ("zh", "en")} for n in ns}
        for s in specs
    }  # fmt: skip
    top, base, first, last = str(max(ns)), str(min(ns)), specs[0], specs[-1]
    growth = {s: {k: ratio(stats[s][top], stats[s][base], k) for k in ("turn_s_median", "first_token_s_median")}
              for s in specs}  # fmt: skip
    keys = ("turn_s_median", "turn_s_max", "first_token_s_median", "tokens_per_turn_median")
    between = {n: {k: ratio(stats[first][n], stats[last][n], k) for k in keys} for n in stats[first]}
    ratios = {f"n{top}_over_n{base}": growth, f"{short(first)}_over_{short(last)}": between}
    return {"stats": stats, "by_language": per_lang, "ratios": ratios}


def ratio(a: dict, b: dict, key: str) -> float | None:
    """a[key] / b[key], rounded (None where b's is 0)."""
    return round(a[key] / b[key], 2) if b[key] else None


def arm(spec: str) -> tuple[str, int | None]:
    """'embedded:qwen2.5-coder-1.5b@threads=1' -> the model spec and its llama.cpp threads (None: the app's
    default), so one model can run beside itself with another thread count."""
    model, _, threads = spec.partition("@threads=")
    return model, int(threads) if threads else None


def short(spec: str) -> str:
    """'embedded:qwen2.5-coder-1.5b' -> '1.5b', for keys and file names."""
    return spec.removeprefix("embedded:").removeprefix("qwen2.5-coder-").replace("@threads=", "-threads")


def bench_models(specs: list[str], ns: list[int], first_start: bool = False, seed: int = 100) -> dict:
    """The `models` part: every prompt × N × model through the app's engine, interleaved; see the module doc."""
    result: dict = {"benchmark": "whole text turns through ChatEngine.respond, models side by side"}
    result |= {"models": specs, "ns": ns, "prompts": TURN_PROMPTS, "load_average_start": os.getloadavg()}
    engines, result["engine_load_s"] = engines_for(specs, ns)
    first = next(iter(engines.values()))
    result["settings"] = dataclasses.asdict(first.default_settings()) | {
        "top_p": first.config.generation.top_p, "system_prompt": first.config.generation.system_prompt,
        "ranking": first.ranking_note,
    }  # fmt: skip
    for engine in engines.values():  # untimed: each server's first turn (the persona's prefill cached after it)
        one_turn(engine, "Hi", 1, seed)
    rows = []
    for i, prompt in enumerate(TURN_PROMPTS):
        for n in ns:
            for spec in specs if i % 2 == 0 else specs[::-1]:
                row = {"prompt": prompt["id"], "lang": prompt["lang"], "model": spec, "n": n, "seed": seed + i}
                rows.append(row | one_turn(engines[spec, n], prompt["text"], n, seed + i))
                print(f"[{prompt['id']}] {short(spec)} N={n}: {rows[-1]['turn_s']:.1f} s, "
                      f"first {rows[-1]['first_token_s']:.2f} s, {rows[-1]['tokens']} tokens", flush=True)  # fmt: skip
    result["load_average_end"] = os.getloadavg()
    for engine in engines.values():
        if hasattr(engine.generator.inner, "close"):
            engine.generator.inner.close()
    result.update(summarize(rows, specs, ns), rows=rows)
    models = list(dict.fromkeys(arm(s)[0] for s in specs))  # each model once, whatever its arms' threads
    result["install"] = {spec: install_size(spec) for spec in models}
    if first_start:
        result["first_start"] = first_starts(models)
    return result


def install_size(spec: str) -> dict:
    """Bytes on disk of an embedded model: its packages as installed, and the joined weight file in the cache."""
    from ..models.specs import EMBEDDED

    model = EMBEDDED[spec.removeprefix("embedded:")]
    owners = importlib.metadata.packages_distributions()
    dists = {d for package in model.packages for d in owners.get(package, [])}
    packages = sum(_dist_bytes(d) for d in dists)
    joined = model.quant_size or model.size  # the cache's copy (0: the package's file is used in place)
    return {"packages": len(dists), "packages_bytes": packages, "cache_bytes": joined, "total_bytes": packages + joined,
            "joined_file_bytes": model.size}  # fmt: skip


def _dist_bytes(name: str) -> int:
    """The installed size of one distribution (the files its RECORD lists)."""
    files = importlib.metadata.distribution(name).files or []
    return sum(p.stat().st_size for f in files if (p := Path(f.locate())).is_file())


def first_starts(specs: list[str]) -> dict:
    """Seconds until `python app.py --llm SPEC` serves its page: with an empty cache directory, then filled."""
    out: dict = {"load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            cache = Path(tmp) / short(spec) / "cache"  # empty; the app's database and log go beside it
            cache.mkdir(parents=True)
            out[spec] = {"empty_cache_s": app_start(spec, cache), "filled_cache_s": app_start(spec, cache)}
    return out | {"load_average_end": os.getloadavg()}


def app_start(spec: str, cache: Path, limit_s: float = 900) -> float:
    """Seconds from launching the app (its defaults but the model; XDG_CACHE_HOME = `cache`) to its page
    answering (HTTP 200); the app is stopped afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IF_")}
    env |= {"XDG_CACHE_HOME": str(cache), "IF_DB": str(cache.parent / "chats.db")}  # IF_CACHE_DIR: cache/...
    log_path = cache.parent / "app.log"
    started = time.perf_counter()
    with log_path.open("a") as log:  # a file, not a pipe: the start's log lines must never block the app
        app = subprocess.Popen([sys.executable, "app.py", "--llm", spec, "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        while time.perf_counter() - started < limit_s:
            if app.poll() is not None:
                raise RuntimeError(f"the app exited ({app.returncode}): {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    if page.status == 200:
                        return round(time.perf_counter() - started, 2)
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"the app did not answer within {limit_s:g} s")
    finally:
        os.killpg(app.pid, signal.SIGTERM)  # its own session: the app and anything it started
        try:
            app.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
            app.wait()
