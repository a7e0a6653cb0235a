"""python -m interactive_format.bench — timings measured in one run, written as JSON.

`turns`: median latency of text, picture and voice turns through the running app's `chat`
API (gradio_client, loopback), N candidates each, on the configured (default: embedded) models.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from .chat import ChatEngine
from .config import load_config

PROMPTS = [
    "Hello! Can you recommend a good book?",
    "What should I cook for dinner tonight?",
    "Tell me a fun fact about space.",
    "How do I stay focused while studying?",
    "What is a good name for a goldfish?",
]
SPOKEN = [
    "What is the weather like today?",
    "Can you tell me a joke?",
    "How far away is the moon?",
    "What time should I go to bed?",
    "Please suggest a weekend activity.",
]


def _media(folder: Path) -> tuple[Path, list[Path]]:
    from PIL import Image
    from skimage import data

    picture = folder / "coffee.png"
    Image.fromarray(data.coffee()).save(picture)
    clips = []
    for i, sentence in enumerate(SPOKEN):
        clips.append(folder / f"voice{i}.wav")
        subprocess.run(["espeak-ng", "-w", str(clips[-1]), sentence], check=True, capture_output=True)
    return picture, clips


def bench_turns(n: int, max_new_tokens: int, repeats: int) -> dict:
    from gradio_client import Client, handle_file

    from .store import Store
    from .ui import build_demo

    config = load_config()
    start = time.perf_counter()
    engine = ChatEngine.build(config)
    load_s = time.perf_counter() - start
    demo = build_demo(engine, Store(":memory:"))  # the chat API keeps nothing anyway
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False)
    results: dict[str, list[float]] = {"text": [], "picture": [], "voice": []}
    first_token: dict[str, list[float]] = {k: [] for k in results}
    with tempfile.TemporaryDirectory() as tmp:
        picture, clips = _media(Path(tmp))
        for i in range(repeats):
            cases = {
                "text": dict(message=PROMPTS[i % 5], image=None, audio=None),
                "picture": dict(message="What is in this picture?", image=handle_file(str(picture)), audio=None),
                "voice": dict(message="", image=None, audio=handle_file(str(clips[i % 5]))),
            }
            for kind, args in cases.items():
                t = time.perf_counter()
                out = client.predict(**args, candidates=n, temperature=0.7, max_new_tokens=max_new_tokens, api_name="/chat")
                results[kind].append(time.perf_counter() - t)
                first_token[kind].append(out["meta"]["first_token_ms"] / 1000)
    demo.close()
    return {
        "benchmark": "turn latency through the chat API",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": _cpus()},
        "models": {"llm": config.models.llm, "asr": config.models.asr, "captioner": config.models.captioner},
        "candidates": n,
        "max_new_tokens": max_new_tokens,
        "engine_load_s": round(load_s, 2),
        "median_s": {k: round(statistics.median(v), 3) for k, v in results.items()},
        "median_first_token_after_reading_s": {k: round(statistics.median(v), 3) for k, v in first_token.items()},
        "all_s": {k: [round(x, 3) for x in v] for k, v in results.items()},
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    turns = sub.add_parser("turns", help="text/picture/voice turn latency through the app")
    turns.add_argument("--candidates", type=int, default=4)
    turns.add_argument("--max-new-tokens", type=int, default=128)
    turns.add_argument("--repeats", type=int, default=5)
    turns.add_argument("--out", default="bench/results/turns-cpu.json")
    args = p.parse_args(argv)
    result = bench_turns(args.candidates, args.max_new_tokens, args.repeats)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_s"]), json.dumps(result["median_first_token_after_reading_s"]), "->", args.out)


if __name__ == "__main__":
    main()
