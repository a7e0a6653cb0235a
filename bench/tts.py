"""Spoken replies, measured: round trip through our own Whisper, real-time factor, first-audio latency.

    flock -x /tmp/cpu.lock python3 bench/tts.py                                # the default engine
    flock -x /tmp/cpu.lock python3 bench/tts.py --engine embedded:kokoro-82m@1/1 --engine embedded:kokoro-82m@1/2 \
        --engine espeak-ng       # side by side (@threads/threads for a reply's first piece; default @1/2)
    python3 bench/tts.py --only zh --forced 5 --engine embedded:kokoro-82m@1/2+zh=jf_alpha+speed=0.9+whole
        # variants: +zh=/+en= a voice, +speed=S, +zhpace=P (Chinese at P × S; default speaker.KOKORO_PACE),
        # +whole (each reply one piece), +zhwhole=off (Chinese cut at its
        # first comma and at every sentence, as before), +firstcut=off (no English first-piece word cut),
        # +ipa=program (English IPA from the espeak-ng program, one run per piece, not the worker);
        # --forced BEAM: also Whisper with the language forced and beam search (columns *_forced)

24 fixed assistant / smart-home replies (12 English, 12 Chinese; and 8 fresh Chinese ones, "zh-fresh") are cut into pieces the way a streamed reply
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
# Fresh Chinese replies, written after the voice / speed / decoding choices were tuned on the 12 above and
# never used to tune anything: their CER is reported apart ("zh-fresh"), the honest figure for a choice.
FRESH = (
    ("zh-fresh", "厨房的灯已经关掉了。"),
    ("zh-fresh", "外面现在十五度，有点凉，建议多穿一件外套。"),
    ("zh-fresh", "扫地机器人已经开始打扫客厅了。"),
    ("zh-fresh", "你的快递今天下午会送到。"),
    ("zh-fresh", "热水器已经烧好了，现在可以洗澡。"),
    ("zh-fresh", "我找不到卧室的音箱，请检查它是否连上了网络。"),
    ("zh-fresh", "好的，十分钟后提醒你关火。"),
    ("zh-fresh", "晚安！我已经把所有的灯都关了。"),
)

# Held out for the speed choice of 2026-12-02 (written after every choice above; never used to tune): read only with
# --held-out, as "zh-held". More varied than the home commands: weather, shopping, travel, small talk.
HELD = tuple(
    ("zh-held", t)
    for t in (
        "空调已经调到二十六度了。",
        "明天北京多云，最高气温二十二度。",
        "您的订单已经发货，预计三天内送达。",
        "抱歉，这个问题我还不太清楚，可以换个说法吗？",
        "去上海可以坐高铁，大约四个半小时。",
        "客厅的窗帘已经拉上了。",
        "今晚八点有一场足球比赛，要我提醒你吗？",
        "我已经把音量调小了一些。",
        "退货需要在七天内申请，请保留好发票。",
        "西湖边的断桥和雷峰塔都很值得一去。",
        "冰箱里的牛奶快过期了，记得早点喝掉。",
        "好的，已经为你设好了二十分钟的计时器。",
        "你可以先休息一下，喝杯热茶放松心情。",
        "书房的台灯已经打开，亮度调到了一半。",
        "今天的空气质量良好，适合出去散步。",
        "这家餐厅周一不营业，建议换个时间。",
        "洗碗机还要十五分钟才能洗完。",
        "很高兴认识你！有什么我可以帮忙的吗？",
        "门铃响了，门口是一位快递员。",
        "我已经帮你把明天的会议改到下午三点。",
    )
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
    if lang.startswith("zh"):
        import cn2an
        import zhconv

        text = cn2an.transform(zhconv.convert(text, "zh-cn"), "an2cn")  # "7点" and "七点" are the same
        return [c for c in text if re.match(r"\w", c)]
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text).split()


from interactive_format.media.phonemes import FIRST_CUT_LONGER_THAN, ZH_WHOLE_SENTENCES  # noqa: E402
from interactive_format.media.phonemes import espeak_ipa as ESPEAK_IPA  # noqa: E402


def variant(name: str) -> tuple[str, dict]:
    """ "spec@threads/first-threads+zh=VOICE+en=VOICE+speed=S+whole" -> (spec, Speaker keyword arguments and
    "whole": each reply said as one piece, not cut as a stream is)."""
    head, *options = name.split("+")
    spec, _, threads = head.partition("@")
    threads, _, first = threads.partition("/")
    kw: dict = {
        "threads": int(threads or 1),
        "first_threads": int(first or 2),
        "voices": {},
        "whole": False,
        "firstcut": True,
        "zhwhole": None,
        "ipa": "worker",
    }
    for option in options:
        key, _, value = option.partition("=")
        if key in ("zh", "en"):
            kw["voices"][key] = value
        elif key == "speed":
            kw["speed"] = float(value)
        elif key == "zhpace":  # Chinese's pace (speaker.KOKORO_PACE), times the speed
            kw["zhpace"] = float(value)
        elif key == "whole":
            kw["whole"] = True
        elif key == "zhwhole":  # Chinese in whole sentences (phonemes.ZH_WHOLE_SENTENCES)
            kw["zhwhole"] = value != "off"
        elif key == "ipa" and value in ("worker", "program"):  # where English IPA comes from (phonemes.py)
            kw["ipa"] = value
        elif option == "firstcut=off":  # the first piece cut at a clause only, as before the word cut
            kw["firstcut"] = False
        else:
            raise SystemExit(f"unknown variant option {option!r} in {name!r}")
    return spec, kw


def decode_forced(transcriber, path: Path, language: str, beam: int) -> str:
    """The app's Whisper on the file with the language forced and beam search (the `--forced` columns)."""
    import torch
    import whisper

    from interactive_format.media.speech import decode_audio

    model = transcriber.load()
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(decode_audio(path, transcriber.limits)), model.dims.n_mels)
    options = whisper.DecodingOptions(language=language, beam_size=beam, without_timestamps=True, fp16=False)
    with torch.inference_mode():
        return whisper.decode(model, model.encoder(mel[None]), options)[0].text


def run_engine(
    name: str, transcriber, cache_dir: Path, only: str | None = None, forced: int = 0, held_out: bool = False
) -> dict:
    """Every reply (of language `only`, if given) through one engine variant (see `variant`): pieces, timings,
    transcript, errors (`forced`: also transcribed with the language forced and beam `forced`)."""
    from interactive_format.media import phonemes
    from interactive_format.errors import InteractiveFormatError
    from interactive_format.media.speaker import SentenceSplitter, Speaker, join, write_wav

    spec, kw = variant(name)
    whole = kw.pop("whole")
    phonemes.FIRST_CUT_LONGER_THAN = FIRST_CUT_LONGER_THAN if kw.pop("firstcut") else 10**9
    zhwhole = kw.pop("zhwhole")
    phonemes.ZH_WHOLE_SENTENCES = ZH_WHOLE_SENTENCES if zhwhole is None else zhwhole
    zhpace = kw.pop("zhpace", None)
    phonemes.espeak_ipa = phonemes.program_ipa if kw.pop("ipa") == "program" else ESPEAK_IPA
    speaker = Speaker(spec, cache_dir, **kw)
    if zhpace is not None:
        speaker.pace["zh"] = zhpace
    started = time.perf_counter()
    speaker.load()
    load_s = time.perf_counter() - started
    speaker.warm_up()
    rows = []
    for lang, text in REPLIES + FRESH + (HELD if held_out else ()):
        if only and lang.partition("-")[0] != only:
            continue
        splitter = SentenceSplitter()
        pieces = [text] if whole else splitter.feed(text) + splitter.flush()
        utterances = [speaker.say(p, first=not k) for k, p in enumerate(pieces)]
        spoken = join(utterances)
        with tempfile.TemporaryDirectory() as tmp:
            wav = write_wav(spoken.audio, spoken.rate, Path(tmp) / "reply.wav")
            try:
                heard = transcriber.transcribe(wav).text
            except InteractiveFormatError:  # nothing recognisable was heard: every word is an error
                heard = ""
            heard_forced = decode_forced(transcriber, wav, lang[:2], forced) if forced else None
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
        if forced:
            rows[-1].update(heard_forced=heard_forced, errors_forced=edit_distance(ref, tokens(heard_forced, lang)))
        print(f"{name} {lang} err {rows[-1]['errors']}/{len(ref)} first {rows[-1]['first_audio_s']:.2f}s "
              f"rtf {rows[-1]['synth_s'] / max(spoken.seconds, 1e-9):.2f} | {heard}", flush=True)  # fmt: skip
    return {"engine": name, "load_s": round(load_s, 2), "summary": summarise(rows), "replies": rows}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for lang, metric in (("en", "wer"), ("zh", "cer"), ("zh-fresh", "cer"), ("zh-held", "cer")):
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
        if "errors_forced" in part[0]:  # the same audio, Whisper told the language, beam search
            forced = sum(r["errors_forced"] for r in part) / sum(r["ref_len"] for r in part)
            out[lang][metric + "_forced"] = round(forced, 4)
    return out


def main(argv: list[str] | None = None) -> None:
    from interactive_format.config import default_cache_dir
    from interactive_format.media.speech import Transcriber

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", action="append", help="speaker spec, optionally @threads (repeatable)")
    ap.add_argument("--only", choices=["en", "zh"], help="only the replies in this language")
    ap.add_argument(
        "--forced",
        type=int,
        default=0,
        metavar="BEAM",
        help="also transcribe with the language forced and this beam size (a measurement check)",
    )
    ap.add_argument("--held-out", action="store_true", help="also the 20 held-out Chinese replies (zh-held)")
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
            run_engine(name, transcriber, cache_dir, args.only, args.forced, args.held_out)
            for name in args.engine or ["embedded:kokoro-82m@1/2"]
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
