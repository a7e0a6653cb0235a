"""Mandarin voice turns, measured: the app's Transcriber on Chinese and English speech, before and after a change.

    flock -x /tmp/cpu.lock python3 bench/asr_zh.py --variant before=/tmp/base --variant after=.@zh,en
    flock -x /tmp/cpu.lock python3 bench/asr_zh.py --variant after=. --variant after-zh=.@zh --sources kokoro-zh

A variant is NAME=CODE[@LANGUAGES]: the `interactive_format` package under CODE (e.g. an export of main for
"before") transcribing every clip, with `Transcriber.transcribe(path, languages)` when @LANGUAGES is given
(comma-separated, e.g. @zh,en: what a flow passes, see flows.SPEECH_LANGUAGES) and `transcribe(path)` otherwise. Each variant runs in its own process, one after the other, on the same clips.

The clips are made once per run: 24 Chinese requests (assistant, smart home, weather, travel; short and long)
said by the app's own voice (Kokoro, `speaker.Speaker`, as a spoken reply is) and by espeak-ng's two Mandarin
voices (`cmn`: espeak-ng 1.51 reads the characters' pinyin with English letter sounds and tone digits, see its
`-x` output; `cmn-latn-pinyin`: Mandarin phonemes and tones); 6 English requests by espeak-ng and Kokoro; the
LibriVox clips of pocketsphinx-testdata when installed; and 4 clips with no speech (noise, hum), which should be
refused. Chinese is scored by character error rate after Traditional → Simplified conversion (bench/tts.py's
`tokens`: zhconv, numerals as Chinese), so the script alone is no error; how many transcripts came back in
Traditional characters (the text changes under OpenCC's t2s) or in another language (the transcript's language
is not zh, or it holds no Chinese character) is counted apart. English is scored by word error rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

# Written before anything was measured; never changed after.
SENTENCES_ZH = (
    "今天天气怎么样？",
    "打开客厅的灯。",
    "现在几点了？",
    "关掉卧室的电视。",
    "把空调调到二十六度。",
    "明天上海会下雨吗？",
    "帮我设一个十分钟的计时器。",
    "机场大巴多久一班？",
    "把音乐的声音调小一点。",
    "提醒我下午三点给妈妈打电话。",
    "附近有没有好吃的火锅店？",
    "扫地机器人开始打扫客厅。",
    "今晚的空气质量怎么样？",
    "帮我查一下明天的日程安排。",
    "给我讲一个简短的笑话吧。",
    "从这里到火车站怎么走？",
    "外面冷不冷，我需要穿外套吗？",
    "请把厨房的灯关掉，再把热水器打开。",
    "周末北京的天气适合去爬山吗？",
    "你好，先帮我打开客厅的灯，然后把窗帘拉上。",
    "帮我订一张明天早上去杭州的高铁票。",
    "我在酒店，想叫一辆出租车去博物馆。",
    "我下个月想去成都旅游，有什么推荐的景点吗？",
    "晚上十一点以后把所有的灯都关掉，门也锁好。",
)
SENTENCES_EN = (
    "What is the weather like in London tomorrow?",
    "Turn off the lights in the bedroom.",
    "Please set a timer for ten minutes.",
    "How do I get to the train station from here?",
    "Remind me to call my mother at three this afternoon.",
    "Book a table for two at an Italian restaurant tonight.",
)
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SOURCES = ("kokoro-zh", "espeak-cmn", "espeak-cmn-latn-pinyin", "espeak-en", "kokoro-en", "librivox", "no-speech")


# --- clips ---------------------------------------------------------------------------------------


def _espeak(voice: str, text: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


def _kokoro(speaker, text: str, path: Path) -> Path:
    from interactive_format.media.speaker import write_wav

    reply = speaker.speak(text)
    return write_wav(reply.audio, reply.rate, path)


def _no_speech(directory: Path) -> list[dict]:
    """Clips a microphone may send with nobody speaking: refused, ideally fast."""
    import numpy as np
    import soundfile as sf

    rng, rate = np.random.default_rng(1), 16_000
    t = np.arange(5 * rate) / rate
    clips = {
        "white-noise-3s": 0.05 * rng.standard_normal(3 * rate),
        "brown-noise-5s": np.cumsum(rng.standard_normal(5 * rate)) / 4000,
        "mains-hum-4s": 0.1 * np.sin(2 * np.pi * 50 * t[: 4 * rate]) + 0.05 * np.sin(2 * np.pi * 150 * t[: 4 * rate]),
        "room-hiss-5s": 0.003 * rng.standard_normal(5 * rate),
    }
    rows = []
    for name, audio in clips.items():
        path = directory / f"{name}.wav"
        sf.write(path, (audio - audio.mean()).astype("float32"), rate)
        rows.append({"source": "no-speech", "lang": "none", "text": "", "path": str(path), "name": name})
    return rows


def make_clips(directory: Path, sources: tuple[str, ...]) -> list[dict]:
    """Every clip of the chosen sources, written under `directory`."""
    from interactive_format.config import default_cache_dir
    from interactive_format.media.speaker import Speaker

    speaker = Speaker("embedded:kokoro-82m", default_cache_dir()) if {"kokoro-zh", "kokoro-en"} & set(sources) else None
    rows = []
    plan = {
        "kokoro-zh": ("zh", SENTENCES_ZH, lambda t, p: _kokoro(speaker, t, p)),
        "espeak-cmn": ("zh", SENTENCES_ZH, lambda t, p: _espeak("cmn", t, p)),
        "espeak-cmn-latn-pinyin": ("zh", SENTENCES_ZH, lambda t, p: _espeak("cmn-latn-pinyin", t, p)),
        "espeak-en": ("en", SENTENCES_EN, lambda t, p: _espeak("en-us", t, p)),
        "kokoro-en": ("en", SENTENCES_EN, lambda t, p: _kokoro(speaker, t, p)),
    }
    for source, (lang, texts, say) in plan.items():
        if source in sources:
            for k, text in enumerate(texts):
                path = say(text, directory / f"{source}-{k:02d}.wav")
                rows.append({"source": source, "lang": lang, "text": text, "path": str(path), "name": f"{k:02d}"})
    if "librivox" in sources and LIBRIVOX.is_dir():
        for line in (LIBRIVOX / "transcription").read_text().splitlines():
            text, _, file_id = line.rpartition("(")
            text = text.replace("<s>", "").replace("</s>", "").strip()
            path = LIBRIVOX / f"{file_id.strip(') ')}.wav"
            rows.append({"source": "librivox", "lang": "en", "text": text, "path": str(path), "name": path.stem})
    if "no-speech" in sources:
        rows += _no_speech(directory)
    return rows


# --- variants, each in its own process, taking turns clip by clip ------------------------------------


class _Counts:
    """Whisper's decoding passes and decoder steps (one per token), counted whatever code drives them: the work a
    clip took, which a busy machine does not change."""

    def __init__(self) -> None:
        import whisper.decoding as wd

        self.passes = self.steps = 0
        logits, run = wd.PyTorchInference.logits, wd.DecodingTask.run

        def step(inference, tokens, audio_features):
            self.steps += 1
            return logits(inference, tokens, audio_features)

        def one_pass(task, mel):
            self.passes += 1
            return run(task, mel)

        wd.PyTorchInference.logits, wd.DecodingTask.run = step, one_pass


def worker(code: str, languages: str | None) -> None:
    """Serve the Transcriber of the package under `code`: a clip (JSON) per line in, a row (JSON) per line out."""
    sys.path.insert(0, str(Path(code).resolve()))
    from interactive_format.config import default_cache_dir
    from interactive_format.errors import InteractiveFormatError
    from interactive_format.media.speech import Transcriber

    notes: list[str] = []  # the transcriber's debug lines (language odds, each decoding pass), where it logs them
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: notes.append(record.getMessage())
    speech_log = logging.getLogger("interactive_format.media.speech")
    speech_log.setLevel(logging.DEBUG)
    speech_log.addHandler(handler)
    transcriber = Transcriber("embedded:whisper-base", default_cache_dir())
    transcriber.warm_up()
    counts = _Counts()
    kwargs = {} if languages is None else {"languages": tuple(languages.split(","))}
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        clip = json.loads(line)
        notes.clear()
        counts.passes = counts.steps = 0
        started = time.perf_counter()
        try:
            t = transcriber.transcribe(clip["path"], **kwargs)
            row = {"heard": t.text, "language": t.language, "refused": None}
        except InteractiveFormatError as e:
            row = {"heard": "", "language": None, "refused": str(e)}
        row.update(s=round(time.perf_counter() - started, 3), passes=counts.passes, steps=counts.steps)
        print(json.dumps({**clip, **row, "notes": list(notes)}, ensure_ascii=False), flush=True)


class Variant:
    """NAME=CODE[@LANGUAGES]: a worker process (see `worker`)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.name, _, rest = spec.partition("=")
        code, at, languages = rest.partition("@")
        cmd = [sys.executable, __file__, "--worker", code] + (["--languages", languages] if at else [])
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.rows: list[dict] = []

    def answer(self) -> object:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"variant {self.spec} stopped (exit code {self.process.wait()})")
        return json.loads(line)

    def transcribe(self, clip: dict) -> dict:
        self.process.stdin.write(json.dumps(clip, ensure_ascii=False) + "\n")
        self.process.stdin.flush()
        row = self.answer()
        self.rows.append(row)
        print(f"  {self.name} {clip['source']} {clip['name']} {row['s']:.2f}s {row['steps']} steps "
              f"{row['language']} | {row['heard'] or row['refused']}", flush=True)  # fmt: skip
        return row

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def run_variants(specs: list[str], clips: list[dict]) -> dict[str, Variant]:
    """Every clip through every variant, the variants taking turns (in rotating order) so that a change in the
    machine's load hits them alike."""
    variants = [Variant(spec) for spec in specs]
    for v in variants:
        assert v.answer() == "ready", v.spec
    for k, clip in enumerate(clips):
        for v in variants[k % len(variants) :] + variants[: k % len(variants)]:
            v.transcribe(clip)
    for v in variants:
        v.close()
    return {v.name: v for v in variants}


# --- scoring -----------------------------------------------------------------------------------------


def is_traditional(text: str) -> bool:
    """Whether OpenCC's Traditional → Simplified conversion changes the text."""
    import opencc

    return opencc.OpenCC("t2s").convert(text) != text


def has_hanzi(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def score(rows: list[dict]) -> dict:
    """Per source: error rate, refusals, wrong script / language, seconds per clip."""
    from tts import edit_distance, tokens

    out = {}
    for source in dict.fromkeys(r["source"] for r in rows):
        part = [r for r in rows if r["source"] == source]
        times = sorted(r["s"] for r in part)
        summary = {"clips": len(part), "refused": sum(bool(r["refused"]) for r in part),
                   "s_median": round(statistics.median(times), 2), "s_max": round(times[-1], 2),
                   "s_total": round(sum(times), 1), "steps_total": sum(r["steps"] for r in part),
                   "steps_max": max(r["steps"] for r in part), "passes": sum(r["passes"] for r in part)}  # fmt: skip
        lang = part[0]["lang"]
        if lang != "none":
            errors = sum(edit_distance(tokens(r["text"], lang), tokens(r["heard"], lang)) for r in part)
            length = sum(len(tokens(r["text"], lang)) for r in part)
            summary["cer" if lang == "zh" else "wer"] = round(errors / length, 4)
        if lang == "zh":
            summary["traditional"] = sum(is_traditional(r["heard"]) for r in part)
            summary["not_chinese"] = sum(
                not r["refused"] and (r["language"] != "zh" or not has_hanzi(r["heard"])) for r in part
            )
            summary["languages"] = {k: sum(r["language"] == k for r in part) for k in {r["language"] for r in part}}
        out[source] = summary
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", help="NAME=CODE[@LANGUAGES] (repeatable)")
    ap.add_argument("--sources", default=",".join(SOURCES), help=f"comma-separated, of {', '.join(SOURCES)}")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "asr-zh.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--languages", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.languages)
    sys.path.insert(0, str(ROOT))
    sources = tuple(s for s in args.sources.split(",") if s)
    result = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "load_before": os.getloadavg(),
              "asr": "embedded:whisper-base", "variants": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = make_clips(tmp, sources)
        for name, v in run_variants(args.variant or ["current=."], clips).items():
            result["variants"][name] = {"spec": v.spec, "summary": score(v.rows), "clips": v.rows}
    result["load_after"] = os.getloadavg()
    result["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    for name, variant in result["variants"].items():
        for source, summary in variant["summary"].items():
            print(name, source, json.dumps(summary, ensure_ascii=False))
    print("load", result["load_before"], "->", result["load_after"])


if __name__ == "__main__":
    main()
