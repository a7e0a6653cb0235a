"""Text for the voice: the language of a sentence, sentences cut from a streamed reply, and phonemes.

English phonemes come from libespeak-ng (the espeakng-loader package: no system espeak-ng needed), loaded only
in a worker process of its own (espeak_worker.py; GPL-3, never linked into the app), mapped to Kokoro's phoneme
set; Chinese ones from misaki (jieba words, pypinyin, pinyin → IPA).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import re
import selectors
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import InteractiveFormatError, ModelLoadError, missing_package, require

ESPEAK_TIMEOUT_S = 30.0  # per sentence (the worker answers a sentence in milliseconds: bench/espeak.py)
MAX_ENGLISH_CHARS = 20_000  # longer text is refused at once (the Speaker says at most MAX_SPOKEN_CHARS anyway)
MAX_PHONEMES = 400  # per Kokoro call (the model takes 510 tokens; the voice tables have 510 rows)
FIRST_CHUNK_CHARS = 8  # the first piece may end at a comma once this long (a Chinese character counts 2)
# A long English first sentence may also end its first piece before a function word (a phrase boundary), so
# that its audio (synthesised about as fast as it plays) is ready sooner (bench/tts.py: first audio).
FIRST_WORDS = 2  # words before such a cut (the word just before it is not a function word)
FIRST_CUT_LONGER_THAN = 24  # only in a first sentence longer than this (characters): a short one is said whole
# A later piece of a long English sentence ends at a comma or colon once this long (characters), so the voice
# goes on while the sentence is still being written instead of waiting for its end (bench/spoken_turns.py: 31 s
# of silence in six spoken turns became 18 s).
LATER_CLAUSE_CHARS = 40
# Chinese said in whole sentences (no first-clause cut; a sentence of ZH_SHORT characters or fewer is said with
# the next): Kokoro's Mandarin from these voices is heard better in longer pieces (bench/tts.py "+zhwhole").
ZH_WHOLE_SENTENCES = True
ZH_SHORT = 5
_FUNCTION_WORDS = frozenset(
    "the a an to in on at for of with from by into until about and but or so because if when while that".split()
)

HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN = re.compile(f"[{HAN}]")
_LATIN = re.compile(r"[A-Za-z]")
_LETTER_OR_DIGIT = re.compile(r"\w")
# A sentence ends at Chinese end punctuation, or at .!?; followed by a space / the end (not "3.5", "e.g.x"; nor
# "3." at the end of the text so far, which may still be "3.5": `_pending_number`).
_END = re.compile(r"[。！？；…\n]+[”」』）)]*|[.!?;]+[\"'”)\]]*(?=\s|$)")
_CLAUSE = re.compile(r"[，、：,:]+(?=\s|[^\x00-\x7f]|$)")  # likewise not "3," of "3,000"


class SpeakerError(InteractiveFormatError):
    """A sentence could not be synthesised; the message says why (shown as a note, never instead of the reply)."""


# --- text: language and sentences ---------------------------------------------------------


def language_of(text: str) -> str | None:
    """ "zh" when the text has Chinese characters, "en" when it has Latin letters only, None when neither."""
    if _HAN.search(text):
        return "zh"
    if _LATIN.search(text):
        return "en"
    return None


_ABBREVIATION = re.compile(r"(?:\b[A-Za-z]\.)+$|\b(?:Mr|Mrs|Ms|Dr|St|vs|etc|approx|No)\.$")


def _pending_number(text: str, mark: re.Match) -> bool:
    """A dot or comma after a digit at the very end of the streamed text: maybe "3." of "3.5" or "3," of "3,000"."""
    return mark.end() == len(text) and mark.group()[0] in ".," and text[: mark.start()][-1:].isdigit()


def _end_of_sentence(text: str) -> int:
    """The end of the first sentence-ending punctuation that is not an abbreviation's dot (0: none)."""
    for end in _END.finditer(text):
        if _pending_number(text, end):
            return 0
        if not (end.group().startswith(".") and _ABBREVIATION.search(text[: end.start() + 1])):
            return end.end()
    return 0


def _weight(text: str) -> int:
    """Roughly how long text takes to say, in Latin characters (a Chinese character is a syllable)."""
    return len(text) + len(_HAN.findall(text))


def _word_cut(text: str, cut: int) -> int:
    """Where an English first piece may end before a function word: FIRST_WORDS words before it, two complete
    words after it, in a first clause or sentence (ending at `cut`, or still streaming: 0) longer than
    FIRST_CUT_LONGER_THAN (0: nowhere)."""
    sentence = text[:cut] if cut else text
    if _HAN.search(sentence) or len(sentence.strip()) <= FIRST_CUT_LONGER_THAN:
        return 0
    words = list(re.finditer(r"\S+", sentence))
    for k in range(FIRST_WORDS, len(words) - 2):
        complete = cut or words[k + 2].end() < len(sentence)  # a word still streaming may grow
        if not complete:
            return 0
        before = words[k - 1].group()
        if words[k].group().lower() in _FUNCTION_WORDS and before.isalpha() and before.lower() not in _FUNCTION_WORDS:
            return words[k].start()
    return 0


def _cut(text: str, first: bool, clauses: bool = True) -> int:
    """Where the first complete sentence of `text` ends (0: none yet); with `clauses`, the first piece may end at
    a clause, or (English) before a function word inside that clause, and a later one at a long clause."""
    cut = _end_of_sentence(text)
    if ZH_WHOLE_SENTENCES and cut and 0 < len(_HAN.findall(text[:cut])) <= ZH_SHORT:
        after = _end_of_sentence(text[cut:])  # a short Chinese sentence is said with the next one
        cut = cut + after if after else 0
    if not clauses:
        return cut
    if not first:
        return _later_clause(text, cut) or cut
    for clause in _CLAUSE.finditer(text):
        if cut and clause.end() >= cut or ZH_WHOLE_SENTENCES and _HAN.search(text[: clause.start()]):
            break
        if _pending_number(text, clause):
            return 0
        if _weight(text[: clause.start()]) >= FIRST_CHUNK_CHARS:
            cut = clause.end()
            break
    # The word cut looks only inside the clause or sentence found (or, while none is, at complete words), so
    # the first piece is the same whatever the stream adds (follow() re-cuts the growing text at every look).
    return _word_cut(text, cut) or cut


def _later_clause(text: str, cut: int) -> int:
    """Where a later English piece may end at a clause (0: nowhere): the first comma or colon inside the sentence
    (ending at `cut`, or still streaming: 0) after LATER_CLAUSE_CHARS."""
    for clause in _CLAUSE.finditer(text):
        if cut and clause.end() >= cut or _HAN.search(text[: clause.start()]) or _pending_number(text, clause):
            return 0
        if _weight(text[: clause.start()]) >= LATER_CLAUSE_CHARS:
            return clause.end()
    return 0


def split_sentences(text: str) -> list[str]:
    """The text's sentences (Chinese and English punctuation), stripped, empty ones dropped."""
    splitter = SentenceSplitter(clauses=False)
    return splitter.feed(text) + splitter.flush()


class SentenceSplitter:
    """Cuts a streamed reply into sentences as soon as each is complete (with `clauses`, the pieces a voice says
    while the reply streams: a first piece may stop at a comma, so the first audio comes sooner, and a long
    English sentence goes on at its commas)."""

    def __init__(self, clauses: bool = True) -> None:
        self._buffer = ""
        self._first, self._clauses = True, clauses

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; returns the sentences it completed."""
        self._buffer += delta
        out = []
        while cut := _cut(self._buffer, self._first, self._clauses):
            piece, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if piece:
                out.append(piece)
                self._first = False
        return out

    def flush(self) -> list[str]:
        """The rest, once the reply is complete."""
        piece, self._buffer = self._buffer.strip(), ""
        return [piece] if piece else []


# --- phonemes -----------------------------------------------------------------------------

# espeak-ng IPA → Kokoro's phoneme set (after misaki's EspeakFallback, Apache-2.0, hexgrad).
_E2M = sorted(
    {"ʔˌn\u0329": "ʔn", "ʔn\u0329": "ʔn", "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A", "e": "A", "t^ʃ": "ʧ",
     "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo", "ʲə": "jə", "ʲ": "", "ɚ": "əɹ", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə",
     "ɬ": "l", "\u0303": "", "o^ʊ": "O", "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ɪə": "iə"}.items(),
    key=lambda kv: -len(kv[0]),
)  # fmt: skip
_PUNCT = re.compile(r"([,.!?;:—…\"“”()]+)")
_ZH_PUNCT = str.maketrans({"，": ",", "、": ",", "。": ".", "！": "!", "？": "?", "：": ":", "；": ";"})


def espeak_program() -> str:
    """The espeak-ng executable (the "espeak-ng" voice); ModelLoadError (one line, with the fix) when it is not
    installed."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise ModelLoadError(
            "The espeak-ng voice needs the espeak-ng program, which is not installed. "
            "Run: apt-get install espeak-ng (on a Space: list espeak-ng in packages.txt), or use the default voice."
        )
    return found


def _espeak(args: list[str], text: str) -> subprocess.CompletedProcess:
    """Run espeak-ng on `text` (given on stdin, so nothing in it is read as an option)."""
    try:
        proc = subprocess.run(
            [espeak_program(), *args], input=text.encode(), capture_output=True, timeout=ESPEAK_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise SpeakerError("espeak-ng took too long on this sentence.") from None
    if proc.returncode != 0:
        raise SpeakerError(f"espeak-ng failed ({proc.stderr.decode(errors='replace').strip()[:200]}).")
    return proc


def program_ipa(texts: list[str], voice: str = "en-us") -> list[str]:
    """IPA from the espeak-ng program, one run per text: what the worker's answers are checked against (tests,
    bench/espeak.py)."""
    return [_espeak(["-q", "--ipa", "--tie=^", "-v", voice], t).stdout.decode(errors="replace") for t in texts]


def english_ready() -> None:
    """MissingPackageError (one line, with the fix) when English phonemes cannot be made (no espeakng-loader)."""
    if importlib.util.find_spec("espeakng_loader") is None:
        raise missing_package(ModuleNotFoundError(name="espeakng_loader"), "English speech")


WORKER_COMMAND = (sys.executable, "-m", "interactive_format.media.espeak_worker")


class EspeakWorker:
    """The espeak_worker process: started on first use, started again if it died, a time limit per request."""

    def __init__(self, timeout_s: float = ESPEAK_TIMEOUT_S, command: tuple[str, ...] = WORKER_COMMAND) -> None:
        self.timeout_s, self.command = timeout_s, command
        self.version = ""  # libespeak-ng's, once started
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def ipa(self, texts: list[str], voice: str = "en-us") -> list[str]:
        """The program's `-q --ipa --tie=^ -v voice` output for each text (a worker that died is replaced once)."""
        request = json.dumps({"voice": voice, "texts": texts}) + "\n"
        with self._lock:
            try:
                answer = self._ask(request)
            except _WorkerDied:
                try:
                    answer = self._ask(request)  # a fresh worker; if this one dies too, the sentence is skipped
                except _WorkerDied:
                    raise SpeakerError("English phonemes failed: the espeak-ng worker stopped twice.") from None
        if "error" in answer:
            raise SpeakerError(f"English phonemes failed ({answer['error']}).")
        return answer["ipa"]

    def _ask(self, request: str) -> dict:
        proc = self._process()
        try:
            proc.stdin.write(request.encode())
            proc.stdin.flush()
        except OSError:
            self.close()
            raise _WorkerDied from None
        return self._answer(proc)

    def _answer(self, proc: subprocess.Popen) -> dict:
        """The worker's next line, parsed; the worker is ended when it is late, gone or garbled."""
        try:
            return json.loads(_read_line(proc.stdout.fileno(), self.timeout_s))
        except TimeoutError:
            self.close()
            raise SpeakerError("English phonemes took too long on this sentence.") from None
        except (EOFError, ValueError):
            self.close()
            raise _WorkerDied from None

    def _process(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is not None:
            self.close()  # it died: its pipes are closed too
        if self._proc is None:
            english_ready()
            self._proc = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2]
            )  # cwd: where `-m interactive_format…` is found, however the app was started
            try:
                hello = self._answer(self._proc)
            except _WorkerDied:
                raise SpeakerError("English phonemes failed: the espeak-ng worker did not start.") from None
            if "error" in hello:
                self.close()
                raise SpeakerError(f"English phonemes failed: the espeak-ng worker did not start ({hello['error']}).")
            self.version = hello["ready"]
        return self._proc

    def close(self) -> None:
        """End the worker (the next request starts another)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            proc.stdin.close()
            proc.stdout.close()


class _WorkerDied(Exception):
    """The worker's pipe closed or it answered nonsense (it is started again)."""


def _read_line(fd: int, timeout_s: float) -> bytes:
    """One line from a pipe, within `timeout_s` (TimeoutError), EOFError when it closed first."""
    chunks: list[bytes] = []
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not chunks or not chunks[-1].endswith(b"\n"):
            if not selector.select(timeout_s):
                raise TimeoutError
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
    return b"".join(chunks)


_WORKER = EspeakWorker()
atexit.register(_WORKER.close)  # a worker is never left behind (it would also end when its stdin closes)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # not said; a NUL would end the text early in C


def espeak_ipa(texts: list[str], voice: str = "en-us") -> list[str]:
    """IPA for each text, as `espeak-ng -q --ipa --tie=^ -v voice` writes it, from the worker."""
    return _WORKER.ipa(texts, voice)


def kokoro_from_ipa(ipa: str) -> str:
    """espeak-ng IPA (with "^" ties) → Kokoro's phoneme set."""
    ps = " ".join(ipa.split())
    for old, new in _E2M:
        ps = ps.replace(old, new)
    ps = re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace("\u0329", "")
    return ps.replace("ː", "").replace("o", "ɔ").replace("ɾ", "T").replace("ʔ", "t").replace("^", "")


def english_phonemes(text: str, voice: str = "en-us") -> str:
    """Kokoro phonemes of English text, through libespeak-ng in the worker; punctuation kept (pauses)."""
    if len(text) > MAX_ENGLISH_CHARS:
        raise SpeakerError(f"This text is too long to speak at once (over {MAX_ENGLISH_CHARS:,} characters).")
    pieces = _PUNCT.split(_CONTROL.sub(" ", text))
    said = [p for p in pieces if not _PUNCT.fullmatch(p) and _LETTER_OR_DIGIT.search(p)]
    ipa = iter(espeak_ipa(said, voice) if said else [])
    out = []
    for piece in pieces:
        if _PUNCT.fullmatch(piece):
            out.append(piece)
        elif _LETTER_OR_DIGIT.search(piece):
            out.append(" " + kokoro_from_ipa(next(ipa)))
    return "".join(out).strip()


_ZH_G2P: Any = None
_ZH_LOCK = threading.Lock()


def chinese_phonemes(text: str) -> str:
    """Kokoro phonemes of Chinese text (misaki: jieba words, pypinyin, pinyin → IPA); Latin runs as English."""
    global _ZH_G2P
    with _ZH_LOCK:
        if _ZH_G2P is None:
            logging.getLogger("jieba").setLevel(logging.WARNING)
            _ZH_G2P = require("misaki.zh", "Chinese spoken replies").ZHG2P()
        g2p = _ZH_G2P
    out = []
    for han, other in re.findall(f"([{HAN}][{HAN}，、。！？：；\\d\\s]*)|([^{HAN}]+)", text):
        if han:
            with _ZH_LOCK:  # jieba's first call builds its dictionary; one at a time
                out.append(g2p(han)[0])
        elif _LATIN.search(other):
            out.append(english_phonemes(other))
        else:
            out.append(other.translate(_ZH_PUNCT).strip())
    return " ".join(p for p in out if p)


def _phoneme_chunks(phonemes: str, limit: int = MAX_PHONEMES) -> list[str]:
    """Pieces of at most `limit` phonemes, cut after punctuation or at spaces where possible."""
    chunks, rest = [], phonemes.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind(p) for p in ",.!?;:") + 1 or window.rfind(" ") + 1 or limit
        chunks.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return [c for c in [*chunks, rest] if c]
