"""Speech to text: decode an uploaded recording and transcribe it with openai-whisper.

Speech models are resolved from a spec: an embedded CTranslate2 Whisper model (converted once
into the cache), a local `.pt` checkpoint or CTranslate2 directory, or a Whisper model name
such as "small" (downloaded by openai-whisper, so it needs network access the first time).

The spoken language is chosen among the languages a chat serves (a flow's `speech_languages`),
not among the ~100 Whisper knows: Whisper base hears short or synthetic Mandarin as Thai or
Japanese. Chinese transcripts are written in Simplified characters (OpenCC's t2s).
"""

from __future__ import annotations

import functools
import logging
import math
import pickle
import shutil
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import ct2whisper
from ..config import Limits
from ..errors import InputError, ModelLoadError
from ..models.specs import EMBEDDED, embedded_files, of_role, parse_spec, role_error
from ..models.cache import cached, source_key
from ..models.device import resolve_device
from ..uploads import checked_size, display_name

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # what Whisper expects
SILENCE_RMS = 10 ** (-70 / 20)  # below -70 dBFS a recording is treated as silent
FFMPEG_TIMEOUT_S = 60.0
SINC_ZEROS = 16  # resampling filter half-width, in zero crossings of the low-pass sinc
SINC_ROLLOFF = 0.945  # low-pass cutoff as a fraction of the lower Nyquist frequency
RESAMPLE_CHUNK = 16_384  # output samples per step when resampling an awkward ratio
MAX_POLYPHASE_TAPS = 2_000_000  # filter bank size up to which one strided convolution is used
TEMPERATURES = (0.0, 0.2, 0.4)  # greedy first, short fallback on repetitive/unsure output
TOKENS_PER_SECOND = 16  # generous speech token rate (dense scripts included) to cap decoding
COMPRESSION_RATIO_LIMIT = 2.4  # whisper's own threshold: above it a segment is a repetition loop
LOGPROB_LIMIT = -1.0  # whisper's own: a mean token log-prob below it asks for the next temperature
NO_SPEECH_LIMIT = 0.6  # whisper's own: P(no speech) above it (with a low log-prob) means silence
# Above this P(no speech) means silence however sure the text: a 50 Hz hum (0.94) was heard as "you"; speech in
# bench/asr_zh.py: at most 0.14 (Kokoro, LibriVox, espeak-ng English), 0.66 (espeak-ng's robotic Mandarin).
NO_SPEECH_SURE = 0.9
WINDOW_SECONDS = 30.0  # Whisper's input window; clips up to this long take the one-pass path
# A decoded tail of LOOP_TOKENS tokens repeating one block of at most LOOP_PERIOD tokens is a loop: decoding stops
# there instead of running to the token cap (three loops to the cap took 23-45 s to refuse a 4-s clip).
LOOP_TOKENS = 24
LOOP_PERIOD = 8  # 3 repetitions within LOOP_TOKENS at least
# What torch.load / whisper.load_model raise for a missing download or an unreadable file.
LOAD_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, EOFError, pickle.UnpicklingError,
               zipfile.BadZipFile)  # fmt: skip
ASR_EMBEDDED = tuple(of_role("asr"))


# --- model resolution ------------------------------------------------------------------------


def _model_bin_parts(directory: Path) -> list[Path]:
    """A directory's model.bin, or its model.bin.partN pieces in order (empty if neither)."""
    if (directory / "model.bin").is_file():
        return [directory / "model.bin"]
    pieces = [p for p in directory.glob("model.bin.part*") if p.name.removeprefix("model.bin.part").isdigit()]
    return sorted(pieces, key=lambda p: int(p.name.removeprefix("model.bin.part")))


def _ct2_parts(dirs: list[Path]) -> tuple[list[Path], Path | None]:
    """model.bin pieces (in directory order) and the first config.json across the directories."""
    parts = [p for d in dirs for p in _model_bin_parts(d)]
    configs = [d / "config.json" for d in dirs if (d / "config.json").is_file()]
    return parts, (configs[0] if configs else None)


def _convert_ct2(spec_text: str, name: str, dirs: list[Path], cache_dir: Path) -> str:
    """Convert a CTranslate2 Whisper model once into the cache; return the .pt path."""
    parts, config = _ct2_parts(dirs)
    if not parts:
        raise ModelLoadError(f"Speech model '{spec_text}': no model.bin found in {', '.join(map(str, dirs))}.")
    key_files = parts + ([config] if config else [])
    target = cache_dir / f"{name}-{source_key(key_files)}.pt"
    try:
        return str(cached(target, lambda out: ct2whisper.convert(parts, config, out)))
    except ct2whisper.CT2FormatError as e:
        raise ModelLoadError(f"Speech model '{spec_text}' could not be converted: {e}.") from e


def whisper_checkpoint(spec_text: str, cache_dir: Path) -> str:
    """A checkpoint path (or Whisper model name) that `whisper.load_model` accepts."""
    spec = parse_spec(spec_text)
    if spec.kind == "embedded":
        if EMBEDDED[spec.name].role != "asr":
            raise role_error(spec, "asr")
        return _convert_ct2(spec.text, spec.name, embedded_files(spec), cache_dir)
    if spec.kind == "path":
        path = Path(spec.name)
        if path.is_file() and path.name.startswith("model.bin"):
            path = path.parent  # a CTranslate2 model.bin named directly
        elif path.is_file():
            return str(path)
        if path.is_dir() and _model_bin_parts(path):
            return _convert_ct2(spec.text, f"ct2-{path.name}", [path], cache_dir)
        raise ModelLoadError(
            f"Speech model '{spec.text}' is neither a Whisper .pt checkpoint nor a CTranslate2 Whisper "
            f"directory (model.bin + config.json). Use {' or '.join(ASR_EMBEDDED)} instead."
        )
    import whisper

    if spec.name not in whisper.available_models():
        raise ModelLoadError(
            f"Unknown speech model '{spec.text}'. Use {' or '.join(ASR_EMBEDDED)}, a path to a Whisper .pt "
            f"checkpoint or CTranslate2 directory, or a Whisper model name ({', '.join(whisper.available_models())})."
        )
    return spec.name


def _download_error(spec_text: str, error: Exception) -> ModelLoadError:
    """The message for a Whisper model name that could not be fetched or read."""
    first_line = str(error).splitlines()[0] if str(error) else ""
    return ModelLoadError(
        f"Could not load speech model '{spec_text}': {error.__class__.__name__}: {first_line}. "
        "Whisper model names are downloaded from OpenAI on first use, which needs network access "
        f"(or copy {spec_text}.pt into ~/.cache/whisper); offline, use {' or '.join(ASR_EMBEDDED)}."
    )


def _alignment_heads(checkpoint: str) -> str | None:
    """Alignment heads stored by our converter in a local checkpoint, if any (cheap: mmap)."""
    import torch

    if not Path(checkpoint).is_file():
        return None
    try:
        data = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)
    except LOAD_ERRORS:
        return None  # e.g. a legacy (non-zip) checkpoint; whisper.load_model already read it
    heads = data.get("alignment_heads") if isinstance(data, dict) else None
    return heads if isinstance(heads, str) else None


def load_whisper(spec_text: str, cache_dir: Path, device: str = "cpu") -> Any:
    """Resolve and load a Whisper model onto `device`, in eval mode."""
    import whisper

    checkpoint = whisper_checkpoint(spec_text, cache_dir)
    try:
        model = whisper.load_model(checkpoint, device=device)
    except LOAD_ERRORS as e:
        if Path(checkpoint).is_file():
            raise ModelLoadError(
                f"Speech model '{spec_text}': {checkpoint} is not a loadable Whisper checkpoint "
                f"({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''})."
            ) from e
        raise _download_error(spec_text, e) from e
    heads = _alignment_heads(checkpoint)
    if heads:
        model.set_alignment_heads(heads.encode("ascii"))
        model.to(device)
    return model.eval()


# --- audio decoding --------------------------------------------------------------------------


def _too_long(seconds: float | None, limits: Limits) -> InputError:
    """The message for a recording over the length limit."""
    length = f"{seconds:.0f} seconds long" if seconds is not None else "too long"
    return InputError(
        f"The recording is {length}; the limit is {limits.max_audio_seconds:g} seconds. Please send a shorter clip."
    )


def _not_audio(name: str) -> InputError:
    """The message for a file nothing could decode."""
    return InputError(f"'{name}' could not be read as audio. Please send a WAV, FLAC, OGG, MP3, WebM or M4A recording.")


def _read_soundfile(path: Path, limits: Limits) -> tuple[np.ndarray, int] | None:
    """(frames × channels float32, sample rate) via soundfile, or None if it cannot read the file."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, TypeError, ValueError):  # LibsndfileError subclasses RuntimeError
        return None
    if info.samplerate <= 0 or info.channels <= 0:
        return None
    if info.frames > 0 and info.duration > limits.max_audio_seconds:
        raise _too_long(info.duration, limits)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"The audio file '{display_name(path)}' is damaged and could not be decoded.") from None
    return data, rate


def _ffmpeg_decode(path: Path, limits: Limits) -> np.ndarray:
    """Decode any container ffmpeg reads to 16 kHz mono float32 (capped just past the limit)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise InputError(
            f"'{display_name(path)}' could not be read as WAV, FLAC, OGG or MP3 audio; other formats "
            "(such as WebM or M4A) need ffmpeg, which is not installed on the server."
        )
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", f"file:{path.resolve()}",
           "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE),
           "-t", f"{limits.max_audio_seconds + 1:.3f}", "-f", "f32le", "pipe:1"]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(
            f"Decoding '{display_name(path)}' took too long; please send a shorter or simpler recording."
        ) from None
    if proc.returncode != 0:
        log.debug("ffmpeg could not decode %s: %s", path, proc.stderr.decode(errors="replace").strip()[:300])
        raise _not_audio(display_name(path))
    audio = np.frombuffer(proc.stdout[: len(proc.stdout) // 4 * 4], dtype="<f4").astype(np.float32)
    if len(audio) > limits.max_audio_seconds * SAMPLE_RATE:
        raise _too_long(None, limits)
    return audio


def _sinc_weight(dist: Any, cutoff: float, half: int) -> Any:
    """Hann-windowed low-pass sinc at `dist` input samples from the output time (|dist| <= half)."""
    import torch

    dist = dist.clamp(-half, half)
    return cutoff * torch.sinc(cutoff * dist) * torch.cos(dist * (math.pi / (2 * half))) ** 2


def _polyphase(audio: np.ndarray, orig: int, new: int, cutoff: float, half: int) -> np.ndarray:
    """Resample by a reduced ratio new/orig with one strided convolution (a filter per output phase)."""
    import torch
    import torch.nn.functional as F

    phase_times = torch.arange(new, dtype=torch.float64)[:, None] * orig / new
    dist = phase_times + half - torch.arange(2 * half + orig, dtype=torch.float64)
    kernels = _sinc_weight(dist, cutoff, half).float()[:, None, :]  # (new, 1, taps)
    padded = torch.from_numpy(np.pad(audio, (half, half + orig)))[None, None]
    with torch.inference_mode():
        blocks = F.conv1d(padded, kernels, stride=orig)  # (1, new, n_blocks)
    return blocks[0].T.reshape(-1).numpy()


def _gathered(audio: np.ndarray, orig: int, new: int, cutoff: float, half: int) -> np.ndarray:
    """Resample any ratio by evaluating the filter at each output time (chunked; slower)."""
    import torch

    padded = torch.from_numpy(np.pad(audio, (half, half + 1)))
    taps = torch.arange(-half + 1, half + 1, dtype=torch.int64)
    n_out = math.ceil(len(audio) * new / orig)
    out = np.empty(n_out, dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n_out, RESAMPLE_CHUNK):
            times = torch.arange(start, min(start + RESAMPLE_CHUNK, n_out), dtype=torch.float64) * orig / new
            idx = times.floor().to(torch.int64)[:, None] + taps
            weight = _sinc_weight(times[:, None] - idx, cutoff, half).float()
            out[start : start + len(times)] = (padded[idx + half] * weight).sum(1).numpy()
    return out


def resample(audio: np.ndarray, orig_rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited (Hann-windowed sinc) resampling of a mono signal to float32."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if orig_rate == new_rate or len(audio) == 0:
        return audio
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    cutoff = min(1.0, new / orig) * SINC_ROLLOFF  # relative to the input Nyquist frequency
    half = math.ceil(SINC_ZEROS / cutoff)  # filter half-width in input samples
    n_out = math.ceil(len(audio) * new / orig)
    if new * (2 * half + orig) <= MAX_POLYPHASE_TAPS:
        return _polyphase(audio, orig, new, cutoff, half)[:n_out]
    return _gathered(audio, orig, new, cutoff, half)


def decode_audio(path: str | Path, limits: Limits) -> np.ndarray:
    """A recording as float32 mono 16 kHz samples; InputError (user-facing) for anything unusable."""
    path = Path(path)
    checked_size(path, limits, "audio file")
    read = _read_soundfile(path, limits)
    if read is None:
        audio = _ffmpeg_decode(path, limits)
    else:
        data, rate = read
        audio = resample(data.mean(axis=1), rate) if len(data) else np.zeros(0, np.float32)
    audio = np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0).astype(np.float32, copy=False)
    if len(audio) > limits.max_audio_seconds * SAMPLE_RATE + SAMPLE_RATE // 100:
        raise _too_long(len(audio) / SAMPLE_RATE, limits)
    if len(audio) == 0 or float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < SILENCE_RMS:
        raise InputError(
            "No speech was heard in the recording: it is empty or silent. Please check the microphone and try again."
        )
    return audio


# --- transcription ---------------------------------------------------------------------------


def _sample_len(seconds: float, n_text_ctx: int) -> int:
    """Tokens to decode per 30-s window: enough for fast speech, so noise loops stop early."""
    return min(n_text_ctx // 2, 32 + math.ceil(TOKENS_PER_SECOND * min(seconds, 30.0)))


def _speech_text(result: dict[str, Any]) -> str:
    """The transcript without segments that failed every temperature (repetitive noise hallucinations)."""
    segments = result.get("segments")
    if segments is None:
        return " ".join(str(result.get("text", "")).split())
    kept = [s["text"] for s in segments if s.get("compression_ratio", 0.0) <= COMPRESSION_RATIO_LIMIT]
    return " ".join(" ".join(kept).split())


@functools.cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def simplified(text: str) -> str:
    """Chinese text in Simplified characters (Whisper often writes Traditional); only the script changes, not the
    words: OpenCC's t2s, not tw2sp, which would also swap Taiwanese words for mainland ones the user did not say."""
    return _t2s().convert(text)


def restricted(probs: dict[str, float], languages: Sequence[str]) -> dict[str, float]:
    """Whisper's language probabilities over `languages` only, renormalised to sum to 1."""
    unknown = [lang for lang in languages if lang not in probs]
    if unknown:
        raise ValueError(f"Whisper does not know the language code(s) {', '.join(map(repr, unknown))}.")
    total = sum(probs[lang] for lang in languages)
    if total <= 0:
        return {lang: 1 / len(languages) for lang in languages}
    return {lang: probs[lang] / total for lang in languages}


def looping(tokens: Sequence[int], span: int = LOOP_TOKENS, max_period: int = LOOP_PERIOD) -> bool:
    """Whether the last `span` tokens repeat one block of at most `max_period` tokens all along."""
    if len(tokens) < span:
        return False
    tail = list(tokens[-span:])
    return any(tail[p:] == tail[:-p] for p in range(1, max_period + 1))


class _LoopStop:
    """A whisper logit filter that ends decoding (forces end-of-text) once the text is looping, and says so."""

    def __init__(self, sample_begin: int, eot: int) -> None:
        self.sample_begin, self.eot, self.looped = sample_begin, eot, False

    def apply(self, logits: Any, tokens: Any) -> None:
        for row in range(tokens.shape[0]):
            if looping(tokens[row, self.sample_begin :].tolist()):
                self.looped = True
                logits[row] = -math.inf
                logits[row, self.eot] = 0.0


def _decode(model: Any, features: Any, options: Any) -> tuple[Any, bool]:
    """whisper.decode of encoded audio, stopped early in a loop; (its result, whether it looped)."""
    from whisper.decoding import DecodingTask

    task = DecodingTask(model, options)
    stop = _LoopStop(task.sample_begin, task.tokenizer.eot)
    task.logit_filters.append(stop)
    return task.run(features)[0], stop.looped


def _silent(result: Any) -> bool:
    """A window with no speech: whisper's rule (likely no speech, and what was decoded is unsure), or almost surely
    no speech (whisper's "you" / "Thank you." on a hum)."""
    unsure = result.avg_logprob < LOGPROB_LIMIT
    return result.no_speech_prob > NO_SPEECH_SURE or (result.no_speech_prob > NO_SPEECH_LIMIT and unsure)


def _detect(model: Any, encoded: Callable[[], Any], languages: Sequence[str] | None) -> str:
    """The spoken language: the likeliest of `languages` (one: that one, undetected; None: of all Whisper knows),
    from the audio `encoded()` gives (only called when there is something to detect)."""
    if not model.is_multilingual:
        return "en"
    if languages and len(languages) == 1:
        return languages[0]
    _, probs = model.detect_language(encoded())
    odds = restricted(probs[0], languages) if languages else probs[0]
    language = max(odds, key=odds.get)
    log.debug("spoken language %s (%.2f among %s)", language, odds[language], ", ".join(languages or ["all"]))
    return language


@dataclass(frozen=True)
class Transcript:
    """What was said, in which language, by which model, and how long it took."""

    text: str
    language: str
    model: str  # the spec that produced it
    ms: float  # transcription time (decoding the file included)
    seconds: float  # audio duration


class Transcriber:
    """A Whisper model resolved from a spec; loaded on first use, one transcription at a time."""

    def __init__(self, spec: str, cache_dir: Path, device: str = "cpu", limits: Limits | None = None) -> None:
        parse_spec(spec)  # fail fast on an unknown embedded name
        self.spec = spec
        self.cache_dir = Path(cache_dir)
        self.device = resolve_device(device)
        self.limits = limits or Limits()
        self._model: Any = None
        self._lock = threading.RLock()  # whisper's kv-cache hooks are not safe to share across threads

    def load(self) -> Any:
        """Load the model now (it is otherwise loaded by the first transcription)."""
        with self._lock:
            if self._model is None:
                started = time.perf_counter()
                self._model = load_whisper(self.spec, self.cache_dir, self.device)
                log.info("speech model %s ready in %.1f s", self.spec, time.perf_counter() - started)
            return self._model

    def warm_up(self) -> None:
        """Transcribe one second of quiet noise once, so that the first voice turn does not pay for setup."""
        noise = np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE).astype(np.float32)
        with self._lock:
            self._run(self.load(), noise, None)

    def transcribe(self, path: str | Path, languages: Sequence[str] | None = None) -> Transcript:
        """Transcribe a recording spoken in one of `languages` (Whisper codes; one: forced; None: any Whisper
        knows); InputError if it is unusable or no speech is recognised. An English-only model hears English."""
        started = time.perf_counter()
        audio = decode_audio(path, self.limits)
        with self._lock:
            result = self._run(self.load(), audio, languages)
        text, language = _speech_text(result), str(result.get("language") or "en")
        if not any(ch.isalnum() for ch in text):  # nothing, or only "..." / music symbols
            raise InputError("No speech was recognised in the recording. Please speak clearly and try again.")
        if language == "zh":
            text = simplified(text)
        ms = (time.perf_counter() - started) * 1000
        return Transcript(text, language, self.spec, ms, len(audio) / SAMPLE_RATE)

    def _run(self, model: Any, audio: np.ndarray, languages: Sequence[str] | None) -> dict[str, Any]:
        """Transcribe: clips that fit one window in one pass, longer ones with whisper's `transcribe` (the
        language detected on their first window)."""
        import torch

        window = int(WINDOW_SECONDS * SAMPLE_RATE)
        with torch.inference_mode():
            if len(audio) <= window:
                features = self._encoded(model, audio)
                language = _detect(model, lambda: features, languages)
                return self._one_window(model, features, language, len(audio) / SAMPLE_RATE)
            return model.transcribe(
                audio,
                language=_detect(model, lambda: self._encoded(model, audio[:window]), languages),
                fp16=self.device != "cpu",
                temperature=TEMPERATURES,
                condition_on_previous_text=False,
                compression_ratio_threshold=COMPRESSION_RATIO_LIMIT,
                sample_len=_sample_len(len(audio) / SAMPLE_RATE, model.dims.n_text_ctx),
                verbose=None,
            )

    def _encoded(self, model: Any, audio: np.ndarray) -> Any:
        """Whisper's encoder output for one window of audio (padded to 30 s)."""
        import whisper

        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio), model.dims.n_mels).to(model.device)
        return model.encoder(mel[None].half() if self.device != "cpu" else mel[None])

    def _one_window(self, model: Any, features: Any, language: str, seconds: float) -> dict[str, Any]:
        """A clip of at most 30 s: the encoder ran once, for both language detection and decoding
        (`transcribe` runs it twice), and no timestamp tokens are decoded. Whisper's fallback rules: the next
        temperature on a repetition loop or a low log-prob, none on silence; a loop is stopped where it starts.
        When every temperature is unsure, the likeliest pass that is not a loop is kept (whisper keeps the last)."""
        import whisper

        sample_len = _sample_len(seconds, model.dims.n_text_ctx)
        passes = []
        for temperature in TEMPERATURES:
            options = whisper.DecodingOptions(
                language=language,
                temperature=temperature,
                sample_len=sample_len,
                without_timestamps=True,
                fp16=self.device != "cpu",
            )
            result, looped = _decode(model, features, options)
            loop = looped or result.compression_ratio > COMPRESSION_RATIO_LIMIT
            passes.append((loop, result))
            log.debug("T=%.1f: %d tokens, loop %s, log-prob %.2f, no speech %.2f: %r", temperature,
                      len(result.tokens), loop, result.avg_logprob, result.no_speech_prob, result.text[:80])  # fmt: skip
            if _silent(result) or (not loop and result.avg_logprob >= LOGPROB_LIMIT):
                break
        loop, result = max(passes, key=lambda p: (not p[0], p[1].avg_logprob))
        speech = not loop and not _silent(result)
        return {"text": result.text, "language": language, "segments": [{"text": result.text}] if speech else []}
