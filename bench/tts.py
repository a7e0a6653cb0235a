"""Spoken replies, measured: round trip through our own Whisper, real-time factor, first-audio latency.

    flock /tmp/bench.lock python3 bench/tts.py                                  # the default engine
    flock /tmp/bench.lock python3 bench/tts.py --engine embedded:kokoro-82m@1/1 --engine embedded:kokoro-82m@1/2 \
        --engine espeak-ng       # side by side (@threads/threads for a reply's first piece; default @1/2)

24 fixed assistant / smart-home replies (12 English, 12 Chinese) are cut into pieces the way a streamed reply
is (speaker.SentenceSplitter: the first piece may end at a comma), each piece is synthesised, and the joined
audio is transcribed by the app's Transcriber on embedded:whisper-base. Word error rate (English: Whisper's
EnglishTextNormalizer) and character error rate (Chinese: simplified characters via zhconv, digits as Chinese
numerals via cn2an, punctuation and spaces dropped) are Levenshtein distances over the reference's length, summed over the set.
First audio = the synthesis time of the reply's first piece, i.e. how long after that piece is complete in
the stream its audio is ready. Real-time factor = synthesis time / audio duration. Stall = the time a
listener would wait between pieces if the whole text were there at once (synthesis one piece at a time,
playing while the next is made).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPLIES = (
    ("en", "Sure, I turned on the living room light."),
    ("en", "The kitchen is a little cold right now. I set the heating to twenty degrees."),
    ("en", "Done! The front door is locked and the porch light will stay on until midnight."),
    ("en", "Good morning. It looks sunny today, so you will not need an umbrella."),
    ("en", "I could not find a device called garden lamp. Would you like me to list your lights?"),
    ("en", "Your alarm is set for seven in the morning. Sleep well!"),
    ("en", "The washing machine has finished. Remember to hang the clothes before dinner."),
    ("en", "I have added milk, eggs and bread to your shopping list."),
    ("en", "Playing some quiet music in the bedroom. Tell me if it is too loud."),
    ("en", "The battery of the smoke detector is low. Please replace it this week."),
    ("en", "Hello! I can switch lights, check the weather and set timers for you."),
    ("en", "All the windows are closed, and the air conditioner is now in sleep mode."),
    ("zh", "好的，客厅的灯已经打开了。"),
    ("zh", "现在卧室有点冷，我把暖气调高了一点。"),
    ("zh", "前门已经锁好了，门口的灯会一直亮到半夜。"),
    ("zh", "早上好！今天天气晴朗，出门不用带伞。"),
    ("zh", "我没有找到叫花园灯的设备。要我列出所有的灯吗？"),
    ("zh", "闹钟已经设好了，明天早上七点叫你起床。"),
    ("zh", "洗衣机已经洗完了，记得晚饭前把衣服晾起来。"),
    ("zh", "我已经把牛奶、鸡蛋和面包加到购物清单里了。"),
    ("zh", "正在卧室播放轻音乐。如果声音太大，请告诉我。"),
    ("zh", "烟雾报警器的电池电量低，请这周更换。"),
    ("zh", "你好！我可以帮你开关灯、查天气，还可以设定计时器。"),
    ("zh", "所有的窗户都关好了，空调现在是睡眠模式。"),
)


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two token lists."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def tokens(text: str, lang: str) -> list[str]:
    """Words (English) or characters (Chinese, simplified) to compare, punctuation dropped."""
    if lang == "zh":
        import cn2an
        import zhconv

        text = cn2an.transform(zhconv.convert(text, "zh-cn"), "an2cn")  # "7点" and "七点" are the same
        return [c for c in text if re.match(r"\w", c)]
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text).split()


def run_engine(name: str, transcriber, cache_dir: Path, only: str | None = None) -> dict:
    """Every reply (of language `only`, if given) through one engine ("spec@threads/first-piece threads"):
    pieces, timings, transcript, errors."""
    from interactive_format.errors import InteractiveFormatError
    from interactive_format.speaker import SentenceSplitter, Speaker, join, write_wav

    spec, _, threads = name.partition("@")
    threads, _, first = threads.partition("/")
    speaker = Speaker(spec, cache_dir, threads=int(threads or 1), first_threads=int(first or 2))
    started = time.perf_counter()
    speaker.load()
    load_s = time.perf_counter() - started
    speaker.warm_up()
    rows = []
    for lang, text in REPLIES:
        if only and lang != only:
            continue
        splitter = SentenceSplitter()
        pieces = splitter.feed(text) + splitter.flush()
        utterances = [speaker.say(p, first=not k) for k, p in enumerate(pieces)]
        spoken = join(utterances)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                heard = transcriber.transcribe(write_wav(spoken.audio, spoken.rate, Path(tmp) / "reply.wav")).text
            except InteractiveFormatError:  # nothing recognisable was heard: every word is an error
                heard = ""
        ref, hyp = tokens(text, lang), tokens(heard, lang)
        ready, playing_until, stall = 0.0, 0.0, 0.0
        for u in utterances:
            ready += u.ms / 1000
            stall += max(0.0, ready - playing_until) if playing_until else 0.0
            playing_until = max(playing_until, ready) + u.seconds
        rows.append({
            "lang": lang, "text": text, "heard": heard, "pieces": pieces,
            "errors": edit_distance(ref, hyp), "ref_len": len(ref),
            "first_audio_s": round(utterances[0].ms / 1000, 3),
            "first_piece_audio_s": round(utterances[0].seconds, 3),
            "synth_s": round(sum(u.ms for u in utterances) / 1000, 3),
            "audio_s": round(spoken.seconds, 3), "stall_s": round(stall, 3),
        })  # fmt: skip
        print(f"{name} {lang} err {rows[-1]['errors']}/{len(ref)} first {rows[-1]['first_audio_s']:.2f}s "
              f"rtf {rows[-1]['synth_s'] / max(spoken.seconds, 1e-9):.2f} | {heard}", flush=True)  # fmt: skip
    return {"engine": name, "load_s": round(load_s, 2), "summary": summarise(rows), "replies": rows}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for lang, metric in (("en", "wer"), ("zh", "cer")):
        part = [r for r in rows if r["lang"] == lang]
        if not part:
            continue
        firsts = sorted(r["first_audio_s"] for r in part)
        out[lang] = {
            metric: round(sum(r["errors"] for r in part) / sum(r["ref_len"] for r in part), 4),
            "replies": len(part),
            "first_audio_median_s": round(statistics.median(firsts), 3),
            "first_audio_max_s": round(firsts[-1], 3),
            "rtf": round(sum(r["synth_s"] for r in part) / sum(r["audio_s"] for r in part), 3),
            "stall_total_s": round(sum(r["stall_s"] for r in part), 2),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    from interactive_format.config import default_cache_dir
    from interactive_format.speech import Transcriber

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", action="append", help="speaker spec, optionally @threads (repeatable)")
    ap.add_argument("--only", choices=["en", "zh"], help="only the replies in this language")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tts.json"))
    args = ap.parse_args(argv)
    cache_dir = default_cache_dir()
    transcriber = Transcriber("embedded:whisper-base", cache_dir)
    transcriber.warm_up()
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "load_before": os.getloadavg(),
        "asr": "embedded:whisper-base",
        "engines": [
            run_engine(name, transcriber, cache_dir, args.only) for name in args.engine or ["embedded:kokoro-82m@1/2"]
        ],
    }
    result["load_after"] = os.getloadavg()
    result["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    for engine in result["engines"]:
        print(engine["engine"], json.dumps(engine["summary"]))
    print("load", result["load_before"], "->", result["load_after"])


if __name__ == "__main__":
    main()
