"""English phonemes from the espeak-ng worker (libespeak-ng from espeakng-loader) against the espeak-ng program.

    flock -x /tmp/cpu.lock python3 bench/espeak.py [--repeat 3] [--no-words] [--out bench/results/espeak.json]
    python3 bench/espeak.py --repeat 0      # the comparison alone (no timing: needs no lock)

Every line of bench/espeak_corpus.txt (English sentences, and Chinese ones with Latin runs) is turned into
Kokoro phonemes the way the Speaker does (english_phonemes / chinese_phonemes), once with the program as the IPA
source and once with the worker. Reported: how many texts sent to espeak come back with different IPA (and
which), how many sentences end with different Kokoro phonemes, and the time per sentence of each source
(english_phonemes of the English sentences, the worker already started; median and 90th percentile).
Then the same for single words: every plain word of misaki's US lexicon (us_gold.json, ~87k words; misaki[zh]
ships it), one word a line in one request each way (--no-words skips it).
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interactive_format.media import phonemes  # noqa: E402

CORPUS = ROOT / "bench" / "espeak_corpus.txt"


def corpus() -> list[tuple[str, str]]:
    """(language, text) lines of the corpus file."""
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t", 1)) for line in lines if line and not line.startswith("#")]


def through(source, language: str, text: str) -> tuple[str, list[tuple[str, str]]]:
    """Kokoro phonemes of the text with `source` as the IPA source, and each (text sent, IPA) on the way."""
    asked: list[tuple[str, str]] = []

    def recorded(texts: list[str], voice: str = "en-us") -> list[str]:
        ipa = source(texts, voice)
        asked.extend(zip(texts, ipa))
        return ipa

    real, phonemes.espeak_ipa = phonemes.espeak_ipa, recorded
    try:
        said = phonemes.chinese_phonemes(text) if language == "zh" else phonemes.english_phonemes(text)
    finally:
        phonemes.espeak_ipa = real
    return said, asked


def timings(source, texts: list[str], repeat: int) -> list[float]:
    """Seconds per english_phonemes call with `source`, the best of `repeat` runs of each text."""
    out: list[float] = []
    if not repeat:
        return out
    real, phonemes.espeak_ipa = phonemes.espeak_ipa, source
    try:
        for text in texts:
            runs = []
            for _ in range(repeat):
                started = time.perf_counter()
                phonemes.english_phonemes(text)
                runs.append(time.perf_counter() - started)
            out.append(min(runs))
    finally:
        phonemes.espeak_ipa = real
    return out


def words_check() -> dict:
    """Raw IPA and Kokoro phonemes of every plain word in misaki's US lexicon, program against worker."""
    import misaki

    lexicon = json.loads((Path(misaki.__file__).parent / "data" / "us_gold.json").read_text(encoding="utf-8"))
    words = sorted(w for w in lexicon if re.fullmatch(r"[A-Za-z][A-Za-z']*", w))
    text = "".join(w + "\n" for w in words)  # one line each: one espeak_Synth each, in both
    args = [phonemes.espeak_program(), "-q", "--ipa", "--tie=^", "-v", "en-us"]  # ~1 min: past _espeak's limit
    program = subprocess.run(args, input=text.encode(), capture_output=True, check=True).stdout.decode().split("\n")
    worker = phonemes.EspeakWorker(timeout_s=1800).ipa([text])[0].split("\n")
    assert len(program) == len(worker) == len(words) + 1, (len(program), len(worker))
    raw = [(w, a, b) for w, a, b in zip(words, program, worker) if a != b]
    kokoro = [(w, phonemes.kokoro_from_ipa(a), phonemes.kokoro_from_ipa(b)) for w, a, b in raw]
    kokoro = [{"word": w, "program": a, "worker": b} for w, a, b in kokoro if a != b]
    return {"words": len(words), "ipa_differing": len(raw), "kokoro_differing": len(kokoro), "kokoro": kokoro}


def summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "median_ms": round(1000 * statistics.median(ordered), 2),
        "p90_ms": round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 2),
        "max_ms": round(1000 * ordered[-1], 2),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each sentence timed, the best kept (0: no timing)")
    ap.add_argument("--no-words", action="store_true", help="skip the lexicon's single words")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "espeak.json"))
    args = ap.parse_args(argv)
    lines = corpus()
    worker = phonemes._WORKER
    started = time.perf_counter()
    worker.ipa(["Ready."])
    start_s = time.perf_counter() - started
    program = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()

    ipa_pieces, ipa_differ, kokoro_differ = 0, [], []
    for language, text in lines:
        by_program, asked_program = through(phonemes.program_ipa, language, text)
        by_worker, asked_worker = through(worker.ipa, language, text)
        ipa_pieces += len(asked_program)
        ipa_differ += [
            {"text": t, "program": a.strip(), "worker": b.strip()}
            for (t, a), (_, b) in zip(asked_program, asked_worker)
            if a != b
        ]
        if by_program != by_worker:
            kokoro_differ.append({"lang": language, "text": text, "program": by_program, "worker": by_worker})

    english = [text for language, text in lines if language == "en"]
    load_before = os.getloadavg()
    program_s = timings(phonemes.program_ipa, english, args.repeat)
    worker_s = timings(worker.ipa, english, args.repeat)
    timed = {"program": summary(program_s), "worker": summary(worker_s)} if args.repeat else None
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "program": program,
        "worker_libespeak_ng": worker.version,
        "sentences": {"en": len(english), "zh": len(lines) - len(english)},
        "ipa_texts_compared": ipa_pieces,
        "ipa_texts_differing": len(ipa_differ),
        "kokoro_sentences_differing": len(kokoro_differ),
        "worker_start_s": round(start_s, 3),
        "per_sentence": timed,
        "median_ratio_program_over_worker": timed and round(statistics.median(program_s) / statistics.median(worker_s), 1),
        "load_before": load_before,
        "lexicon_words": None if args.no_words else words_check(),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "ipa_differences": ipa_differ,
        "kokoro_differences": kokoro_differ,
    }
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("differences")}, ensure_ascii=False))
    for d in ipa_differ:
        print(f"{d['text']!r}\n  program {d['program']}\n  worker  {d['worker']}")


if __name__ == "__main__":
    main()
