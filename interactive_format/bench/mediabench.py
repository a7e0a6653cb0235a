"""The speech, picture and app-turn parts of the benchmark: our Whisper path against plain
`whisper.transcribe`, picture description latency, and text/picture/voice turns through the running app's
`chat` API (gradio_client, loopback)."""

from __future__ import annotations

import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from ..settings.load import load_config
from ..engine.engines import build_engine
from .llmbench import PROMPTS, cpus

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

    from ..store.store import Store
    from ..web.ui import build_demo

    config = load_config()
    start = time.perf_counter()
    engine = build_engine(config)
    load_s = time.perf_counter() - start
    demo = build_demo(engine, Store(":memory:"))  # the chat API keeps nothing anyway
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False)
    results: dict[str, list[float]] = {"text": [], "picture": [], "voice": []}
    first_token: dict[str, list[float]] = {k: [] for k in results}
    after_submit: dict[str, list[float]] = {k: [] for k in results}
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
                out = client.predict(
                    **args, candidates=n, temperature=0.7, max_new_tokens=max_new_tokens, api_name="/chat"
                )
                results[kind].append(time.perf_counter() - t)
                first_token[kind].append(out["meta"]["first_token_ms"] / 1000)
                # what the engine did not time (HTTP, queue, reading the input) happened before its first token
                outside = results[kind][-1] - out["meta"]["ms"] / 1000
                after_submit[kind].append(outside + first_token[kind][-1])
    demo.close()
    return {
        "benchmark": "turn latency through the chat API",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": cpus()},
        "models": {"llm": config.models.llm, "asr": config.models.asr, "captioner": config.models.captioner},
        "candidates": n,
        "max_new_tokens": max_new_tokens,
        "engine_load_s": round(load_s, 2),
        "median_s": {k: round(statistics.median(v), 3) for k, v in results.items()},
        "median_first_token_after_reading_s": {k: round(statistics.median(v), 3) for k, v in first_token.items()},
        "median_first_token_after_submit_s": {k: round(statistics.median(v), 3) for k, v in after_submit.items()},
        "all_s": {k: [round(x, 3) for x in v] for k, v in results.items()},
    }


SPEECH = [  # about 5 s each at espeak-ng speed 140
    "Could you please tell me what the weather will be like tomorrow morning in the city?",
    "I would like to know how far away the moon is from the earth, roughly speaking.",
    "Please suggest a fun activity that my family can do together this weekend.",
]


def spoken_clips(folder: Path, sentences: list[str], speed: int = 140) -> list[Path]:
    """espeak-ng recordings of `sentences` (real synthesized speech, 22 kHz WAV)."""
    clips = []
    for i, sentence in enumerate(sentences):
        clips.append(folder / f"speech{i}.wav")
        cmd = ["espeak-ng", "-s", str(speed), "-w", str(clips[-1]), sentence]
        subprocess.run(cmd, check=True, capture_output=True)
    return clips


def bench_speech(spec: str, cache_dir: Path, device: str, repeats: int) -> dict:
    """Our Transcriber (file to text) against plain `whisper.transcribe` on the same loaded model and audio."""
    from ..media.speech import Transcriber, decode_audio

    transcriber = Transcriber(spec, cache_dir, device)
    model = transcriber.load()
    ours, plain, seconds = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        clips = spoken_clips(Path(tmp), SPEECH)
        transcriber.transcribe(clips[0])  # untimed: first-call setup
        for _ in range(repeats):
            for clip in clips:
                audio = decode_audio(clip, transcriber.limits)
                seconds.append(len(audio) / 16_000)
                ours.append(_timed(transcriber.transcribe, clip))
                with torch.inference_mode():
                    plain.append(_timed(model.transcribe, audio, fp16=device != "cpu", verbose=None))
    audio_s = statistics.median(seconds)
    return {
        "model": spec,
        "clip_seconds_median": round(audio_s, 2),
        "ours": {
            "seconds_median": round(statistics.median(ours), 3),
            "x_real_time": round(audio_s / statistics.median(ours), 1),
        },
        "baseline": {
            "how": "whisper model.transcribe(audio) with its defaults",
            "seconds_median": round(statistics.median(plain), 3),
            "x_real_time": round(audio_s / statistics.median(plain), 1),
        },
        "speedup": round(statistics.median(plain) / statistics.median(ours), 2),
    }


def bench_vision(spec: str, cache_dir: Path, device: str, repeats: int) -> dict:
    """Median time to describe a real photo (decoding the file included)."""
    from PIL import Image
    from skimage import data

    from ..media.vision import Captioner

    captioner = Captioner(spec, cache_dir, device)
    with tempfile.TemporaryDirectory() as tmp:
        picture = Path(tmp) / "coffee.png"
        Image.fromarray(data.coffee()).save(picture)
        captioner.describe(picture)  # untimed: first-call setup
        times = [_timed(captioner.describe, picture) for _ in range(repeats)]
    return {"model": spec, "seconds_median": round(statistics.median(times), 4)}


def _timed(call, *args, **kwargs) -> float:
    """Seconds that `call(*args, **kwargs)` took."""
    started = time.perf_counter()
    call(*args, **kwargs)
    return time.perf_counter() - started
