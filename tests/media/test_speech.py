"""Speech to text: CTranslate2 → whisper conversion, audio decoding, and real transcriptions."""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import whisper
from whisper.model import ModelDimensions, Whisper
from whisper.normalizers import EnglishTextNormalizer

from interactive_format.media import ct2whisper, speech
from interactive_format.config import Limits
from interactive_format.errors import InputError, ModelLoadError
from interactive_format.flows import SPEECH_LANGUAGES
from interactive_format.settings.flow_file import load_flow
from interactive_format.media.speech import SAMPLE_RATE, Transcriber, decode_audio, simplified, whisper_checkpoint
from interactive_format.inputs.voicereader import VoiceReader
from interactive_format.web.i18n import localize

from ..conftest import LIBRIVOX, speak
from ..fakes import fake_engine

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
needs_librivox = pytest.mark.skipif(not LIBRIVOX.is_dir(), reason="pocketsphinx-testdata is not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
normalize = EnglishTextNormalizer()


# --- helpers ---------------------------------------------------------------------------------


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Aggregate word error rate: word-level edit distance over all references / their length."""
    errors = words = 0
    for ref_text, hyp_text in zip(references, hypotheses, strict=True):
        ref, hyp = normalize(ref_text).split(), normalize(hyp_text).split()
        row = list(range(len(hyp) + 1))
        for i, r in enumerate(ref, 1):
            prev, row[0] = row[0], i
            for j, h in enumerate(hyp, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
        errors += row[-1]
        words += len(ref)
    return errors / max(words, 1)


def librivox_clips() -> list[tuple[Path, str]]:
    """(wav, reference text) for the five LibriVox clips."""
    clips = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, file_id = line.rpartition("(")
        text = text.replace("<s>", "").replace("</s>", "").strip()
        clips.append((LIBRIVOX / f"{file_id.strip(') ')}.wav", text))
    return clips


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly, failing the test on error."""
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args], check=True, timeout=60)


def tone(freq: float, seconds: float, rate: int, amp: float = 0.4) -> np.ndarray:
    """A sine wave."""
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def best_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> float:
    """Highest correlation coefficient of `a` and `b` over shifts of up to ±max_lag samples."""
    n = min(len(a), len(b)) - max_lag
    scores = []
    for lag in range(-max_lag, max_lag + 1, 4):
        x, y = a[max(lag, 0) :][:n], b[max(-lag, 0) :][:n]
        scores.append(np.corrcoef(x, y)[0, 1])
    return float(max(scores))


def amplitude_at(audio: np.ndarray, freq: float, rate: int = SAMPLE_RATE) -> float:
    """Amplitude of the `freq` component (Hann-windowed FFT peak near it)."""
    window = np.hanning(len(audio))
    spectrum = np.abs(np.fft.rfft(audio * window)) * 2 / window.sum()
    bin_ = int(round(freq * len(audio) / rate))
    return float(spectrum[max(bin_ - 3, 0) : bin_ + 4].max())


# --- a CTranslate2 writer (the inverse of ct2whisper), used to build test models ----------------

CT2_TYPE_IDS = {np.dtype(name): i for i, name in enumerate(("float32", "int8", "int16", "int32", "float16"))}


def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_model_bin(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str], version: int = 6) -> None:
    """Write variables in CTranslate2's model.bin layout (as ctranslate2's model_spec does)."""
    out = [struct.pack("<I", version), _ct2_string("WhisperSpec"), struct.pack("<II", 3, len(variables))]
    for name, value in sorted(variables.items()):
        value = np.asarray(value)
        out += [_ct2_string(name), struct.pack("<B", value.ndim), *(struct.pack("<I", d) for d in value.shape)]
        out += [struct.pack("<B", CT2_TYPE_IDS[value.dtype]), struct.pack("<I", value.nbytes), value.tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out += [_ct2_string(alias), _ct2_string(target)]
    path.write_bytes(b"".join(out))


def ct2_variables(state: dict[str, torch.Tensor], dims: ModelDimensions) -> dict[str, np.ndarray]:
    """A whisper state dict laid out the way CTranslate2's Whisper converter stores it."""
    s = {k: v.numpy() for k, v in state.items()}
    v: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str) -> None:
        v[f"{dst}/weight"], v[f"{dst}/bias"] = s[f"{src}.weight"], s[f"{src}.bias"]

    def norm(dst: str, src: str) -> None:
        v[f"{dst}/gamma"], v[f"{dst}/beta"] = s[f"{src}.weight"], s[f"{src}.bias"]

    def fused(dst: str, src: str, names: tuple[str, ...]) -> None:
        v[f"{dst}/weight"] = np.concatenate([s[f"{src}.{n}.weight"] for n in names])
        zeros = np.zeros_like(s[f"{src}.value.bias"])
        v[f"{dst}/bias"] = np.concatenate([s.get(f"{src}.{n}.bias", zeros) for n in names])

    def block(dst: str, src: str, cross: bool) -> None:
        norm(f"{dst}/self_attention/layer_norm", f"{src}.attn_ln")
        fused(f"{dst}/self_attention/linear_0", f"{src}.attn", ("query", "key", "value"))
        linear(f"{dst}/self_attention/linear_1", f"{src}.attn.out")
        if cross:
            norm(f"{dst}/attention/layer_norm", f"{src}.cross_attn_ln")
            linear(f"{dst}/attention/linear_0", f"{src}.cross_attn.query")
            fused(f"{dst}/attention/linear_1", f"{src}.cross_attn", ("key", "value"))
            linear(f"{dst}/attention/linear_2", f"{src}.cross_attn.out")
        norm(f"{dst}/ffn/layer_norm", f"{src}.mlp_ln")
        linear(f"{dst}/ffn/linear_0", f"{src}.mlp.0")
        linear(f"{dst}/ffn/linear_1", f"{src}.mlp.2")

    linear("encoder/conv1", "encoder.conv1")
    linear("encoder/conv2", "encoder.conv2")
    v["encoder/position_encodings/encodings"] = s["encoder.positional_embedding"]
    for i in range(dims.n_audio_layer):
        block(f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    norm("encoder/layer_norm", "encoder.ln_post")
    v["decoder/embeddings/weight"] = s["decoder.token_embedding.weight"]
    v["decoder/position_encodings/encodings"] = s["decoder.positional_embedding"]
    for i in range(dims.n_text_layer):
        block(f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    norm("decoder/layer_norm", "decoder.ln")
    v["encoder/num_heads"] = np.int16(dims.n_audio_head)
    v["decoder/num_heads"] = np.int16(dims.n_text_head)
    for flag, value in {"pre_norm": 1, "scale_embeddings": 0, "alibi": 0, "activation": 3}.items():
        v[f"decoder/{flag}"] = np.int8(value)
    return v


TINY = ModelDimensions(
    n_mels=80, n_audio_ctx=20, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
    n_vocab=51865, n_text_ctx=24, n_text_state=64, n_text_head=2, n_text_layer=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random-weight float16 Whisper written as a CTranslate2 directory; returns (dir, state)."""
    torch.manual_seed(0)
    model = Whisper(TINY)
    state = {k: torch.randn_like(t).half() for k, t in model.state_dict().items()}
    directory = tmp_path_factory.mktemp("ct2-tiny")
    variables = ct2_variables(state, TINY)
    write_model_bin(directory / "model.bin", variables, {"decoder/projection/weight": "decoder/embeddings/weight"})
    (directory / "config.json").write_text(json.dumps({"alignment_heads": [[1, 0], [1, 1]], "lang_ids": []}))
    return directory, state


# --- conversion --------------------------------------------------------------------------------


def test_tiny_ct2_model_round_trips_exactly(tiny_model):
    directory, state = tiny_model
    config = json.loads((directory / "config.json").read_text())
    checkpoint = ct2whisper.checkpoint_from_ct2([directory / "model.bin"], config)
    assert checkpoint["dims"] == TINY.__dict__
    converted = checkpoint["model_state_dict"]
    assert converted.keys() == state.keys()
    for name, tensor in state.items():
        assert converted[name].dtype == torch.float16, name
        assert torch.equal(converted[name], tensor), name


def test_tiny_ct2_directory_loads_in_whisper_with_same_outputs(tiny_model, tmp_path):
    directory, state = tiny_model
    cache_dir = tmp_path  # a model of this test's own: converted into a cache of its own, not the shared one
    checkpoint = whisper_checkpoint(str(directory), cache_dir)
    assert Path(checkpoint).parent == cache_dir and checkpoint.endswith(".pt")
    loaded = speech.load_whisper(str(directory), cache_dir)
    reference = Whisper(TINY)
    reference.load_state_dict(state)
    mel, tokens = torch.randn(1, TINY.n_mels, 2 * TINY.n_audio_ctx), torch.tensor([[50258, 50259, 50359, 440]])
    with torch.inference_mode():
        assert torch.allclose(loaded(mel, tokens), reference.eval()(mel, tokens), atol=1e-5)
    heads = loaded.alignment_heads.to_dense()
    assert heads[1].all() and not heads[0].any()
    assert loaded.is_multilingual  # n_vocab 51865


def test_model_bin_parser_handles_aliases_bfloat16_int8_and_truncation(tmp_path):
    bf16 = np.array([1.5, -2.25], dtype=np.float32).view(np.uint32) >> 16
    scale = np.array([127.0, 63.5], dtype=np.float32)
    weight = np.array([[127, -127], [127, 0]], dtype=np.int8)
    variables = {"a/weight": weight, "a/weight_scale": scale}
    path = tmp_path / "model.bin"
    write_model_bin(path, variables, {"b/weight": "a/weight"})
    raw = bytearray(path.read_bytes())
    model = ct2whisper.parse_model_bin(raw)
    assert model.spec == "WhisperSpec" and model.version == 6
    assert model.variables["b/weight"] is model.variables["a/weight"]
    deq = ct2whisper._dequantized(model.variables)
    assert np.allclose(deq["a/weight"], [[1, -1], [2, 0]]) and "a/weight_scale" not in deq
    # bfloat16 (type id 5) widens to the exact float32 values
    blob = _ct2_string("x") + struct.pack("<BI", 1, 2) + struct.pack("<BI", 5, 4) + bf16.astype("<u2").tobytes()
    header = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, 1)
    parsed = ct2whisper.parse_model_bin(header + blob + struct.pack("<I", 0))
    assert parsed.variables["x"].tolist() == [1.5, -2.25]
    with pytest.raises(ct2whisper.CT2FormatError, match="truncated"):
        ct2whisper.parse_model_bin(raw[:-10])
    with pytest.raises(ct2whisper.CT2FormatError, match="version"):
        ct2whisper.parse_model_bin(struct.pack("<I", 99) + raw[4:])


@pytest.mark.parametrize(("name", "multilingual"), [("whisper-base", True), ("whisper-tiny.en", False)])
def test_embedded_models_convert_once_and_load(name, multilingual, cache_dir, monkeypatch):
    checkpoint = Path(whisper_checkpoint(f"embedded:{name}", cache_dir))
    assert checkpoint.parent == cache_dir and checkpoint.name.startswith(name)
    mtime = checkpoint.stat().st_mtime_ns

    def no_rebuild(*_args):
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setattr(ct2whisper, "convert", no_rebuild)
    assert Path(whisper_checkpoint(f"embedded:{name}", cache_dir)) == checkpoint
    assert checkpoint.stat().st_mtime_ns == mtime
    data = torch.load(checkpoint, mmap=True, weights_only=True)
    assert data["dims"]["n_mels"] == 80 and (data["dims"]["n_vocab"] >= 51865) == multilingual
    assert data["model_state_dict"]["decoder.token_embedding.weight"].dtype == torch.float16
    assert "alignment_heads" in data
    model = speech.load_whisper(f"embedded:{name}", cache_dir)
    assert model.is_multilingual == multilingual
    assert model.dims.n_text_layer == (6 if multilingual else 4)


def test_bad_model_specs_name_the_spec_and_the_fix(cache_dir, tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="not a speech model"):
        whisper_checkpoint("embedded:minilm", cache_dir)
    with pytest.raises(ModelLoadError, match="Unknown speech model 'no-such-whisper'.*embedded:whisper-base"):
        whisper_checkpoint("no-such-whisper", cache_dir)
    with pytest.raises(ModelLoadError, match="neither a Whisper .pt checkpoint nor a CTranslate2"):
        whisper_checkpoint(str(tmp_path), cache_dir)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="not a loadable Whisper checkpoint"):
        speech.load_whisper(str(junk), cache_dir)

    def offline(*_args, **_kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(whisper, "load_model", offline)
    with pytest.raises(ModelLoadError, match="'small'.*network access.*embedded:whisper-base"):
        Transcriber("small", cache_dir).load()


def test_a_voice_turn_on_a_damaged_speech_model_is_refused_in_the_pages_language(cache_dir, tmp_path, media):
    """A host's broken Whisper file is the log's business; the user is told what to do, in Chinese on a Chinese
    page, and the chat goes on (the start no longer stops on it: the warm-up behind the page only logs it)."""
    junk = tmp_path / "whisper.pt"
    junk.write_bytes(b"not a checkpoint")
    engine = fake_engine()
    engine.transcriber = Transcriber(str(junk), cache_dir)
    conversation = engine.new_conversation()
    list(engine.respond(conversation, "Hello"))
    list(engine.respond(conversation, "", [str(media["question"])]))
    refused = conversation.turns[-1]
    assert refused.error == (
        "This server cannot read voice messages right now (its model failed to load); please type your message."
    )
    assert localize(refused.error, "zh") == "服务器现在无法读取语音消息（它的模型没能加载），请输入文字。"
    list(engine.respond(conversation, "Are you there?"))
    assert [t.role for t in conversation.turns] == ["user", "assistant", "user", "user", "assistant"]
    assert conversation.turns[1].reply and conversation.turns[-1].reply.endswith("re: Are you there?")


# --- real transcriptions -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(cache_dir) -> Transcriber:
    """The default speech model, loaded once for this module."""
    transcriber = Transcriber("embedded:whisper-base", cache_dir)
    transcriber.load()
    return transcriber


@pytest.mark.slow
@needs_librivox
def test_librivox_word_error_rate_on_default_model(base):
    refs, hyps = [], []
    for wav, reference in librivox_clips():
        started = time.perf_counter()
        result = base.transcribe(wav)
        print(f"{wav.name}: {time.perf_counter() - started:.2f} s for {result.seconds:.2f} s audio: {result.text}")
        assert result.language == "en" and result.model == "embedded:whisper-base"
        refs.append(reference)
        hyps.append(result.text)
    score = wer(refs, hyps)
    print(f"LibriVox WER (embedded:whisper-base, 5 clips): {score:.1%}")
    assert len(refs) == 5
    assert score <= 0.15


@needs_librivox
def test_english_only_model_transcribes(cache_dir):
    wav, reference = librivox_clips()[0]
    result = Transcriber("embedded:whisper-tiny.en", cache_dir).transcribe(wav)
    assert result.language == "en"
    assert wer([reference], [result.text]) <= 0.25


@needs_espeak
def test_synthesised_sentence_is_mostly_right(base, tmp_path):
    sentence = "Please book a table for four people at seven o'clock tomorrow evening."
    wav = tmp_path / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), sentence], check=True, timeout=30)
    result = base.transcribe(wav)
    assert wer([sentence], [result.text]) <= 0.34, result.text
    assert 2 < result.seconds < 10


MANDARIN = "你好，请帮我打开客厅的灯，谢谢。"  # "Hello, please turn on the living-room light, thanks."


@needs_espeak
def test_mandarin_voice_is_transcribed_in_chinese_characters(base, tmp_path):
    """Whisper detects Mandarin by itself. The voice is espeak-ng's Mandarin (cmn) reading pinyin: its plain
    `cmn` voice (1.51) speaks the tone digits of its own pinyin as English numbers ("da three")."""
    result = base.transcribe(speak(MANDARIN, tmp_path / "mandarin.wav", voice="cmn-latn-pinyin"))
    hanzi = [c for c in result.text if "\u4e00" <= c <= "\u9fff"]
    print(f"Mandarin clip -> {result.text!r} ({result.language}, {result.ms:.0f} ms)")
    assert result.language == "zh", result
    assert len(hanzi) >= 8 and "你好" in result.text, result.text


def hanzi(text: str) -> list[str]:
    return [c for c in text if "\u4e00" <= c <= "\u9fff"]


def other_scripts(text: str) -> list[str]:
    """Thai, Japanese kana, Korean or Cyrillic letters: what a Chinese transcript must not hold."""
    return re.findall(r"[\u0e00-\u0e7f\u3040-\u30ff\uac00-\ud7af\u0400-\u04ff]", text)


class DecoderSteps:
    """Counts Whisper's decoding passes (their temperatures) and decoder steps (one per token), however the
    transcriber decodes."""

    def __init__(self, monkeypatch) -> None:
        self.steps, self.passes = 0, []
        logits, run = whisper.decoding.PyTorchInference.logits, whisper.decoding.DecodingTask.run

        def counted_step(inference, tokens, audio_features):
            self.steps += 1
            return logits(inference, tokens, audio_features)

        def counted_pass(task, mel):
            self.passes.append(task.options.temperature)
            return run(task, mel)

        monkeypatch.setattr(whisper.decoding.PyTorchInference, "logits", counted_step)
        monkeypatch.setattr(whisper.decoding.DecodingTask, "run", counted_pass)


@needs_espeak
@pytest.mark.parametrize("sentence", ["今天天气怎么样？", "打开客厅的灯。", "你好，先帮我打开客厅的灯，然后把窗帘拉上。"])  # fmt: skip
def test_mandarin_is_heard_as_chinese_in_simplified_characters(sentence, base, tmp_path):
    """Among all of Whisper's languages these Mandarin clips were heard as Thai ("กินเยนเยนเชียขนมอีก" for the
    first); a flow serves Chinese and English, so the likelier of the two is taken, and Whisper's Traditional
    characters are written in Simplified ones."""
    clip = speak(sentence, tmp_path / "mandarin.wav", voice="cmn-latn-pinyin")
    result = base.transcribe(clip, SPEECH_LANGUAGES)
    print(f"{sentence} -> {result.text!r} ({result.language}, {result.ms:.0f} ms)")
    assert result.language == "zh", result
    assert len(hanzi(result.text)) >= len(hanzi(sentence)) // 2 and not other_scripts(result.text), result.text
    assert simplified(result.text) == result.text, result.text


@needs_espeak
def test_a_flow_with_one_speech_language_forces_it(base, tmp_path):
    """espeak-ng's plain `cmn` voice reads the characters' pinyin with English letter sounds (its `-x` trace
    switches to (en)), so among Chinese and English Whisper hears English; a Chinese-only flow is heard in Chinese."""
    path = tmp_path / "kiosk.toml"
    path.write_text('title = "Kiosk"\nlanguage = "zh"\nspeech_languages = ["zh"]\n')
    flow = load_flow(path)
    assert flow.speech_languages == ("zh",)
    clip = speak("今天天气怎么样", tmp_path / "cmn.wav", voice="cmn")
    engine = SimpleNamespace(transcriber=base, config=SimpleNamespace(flow=flow))
    reading = VoiceReader().read(clip, engine)
    print(f"forced zh -> {reading.text!r}")
    assert reading.meta.language == "zh" and hanzi(reading.text) and simplified(reading.text) == reading.text
    assert base.transcribe(clip, SPEECH_LANGUAGES).language == "en"  # what the default, two-language flow hears


def test_traditional_characters_become_simplified_and_nothing_else_changes():
    assert simplified("你好,先幫我打開客廳的燈,謝謝") == "你好,先帮我打开客厅的灯,谢谢"  # Whisper's words for MANDARIN
    assert simplified("今天天氣怎麼樣？頭髮乾了沒有") == "今天天气怎么样？头发干了没有"
    assert simplified("叫一輛計程車") == "叫一辆计程车"  # the script only: not swapped for the mainland 出租车
    for text in ("把空调调到二十六度。", "Turn off the lights, please.", "3.5 km", ""):
        assert simplified(text) == text


def test_language_odds_are_renormalised_over_the_served_languages():
    probs = {"th": 0.55, "en": 0.335, "zh": 0.03, "vi": 0.021, "ja": 0.064}  # an espeak-ng `cmn` clip's
    odds = speech.restricted(probs, ("zh", "en"))
    assert odds.keys() == {"zh", "en"} and sum(odds.values()) == pytest.approx(1.0)
    assert odds["en"] == pytest.approx(0.335 / 0.365)
    assert speech.restricted({"zh": 0.0, "en": 0.0, "th": 1.0}, ("zh", "en")) == {"zh": 0.5, "en": 0.5}
    with pytest.raises(ValueError, match="'klingon'"):
        speech.restricted(probs, ("zh", "klingon"))


def test_a_repeating_tail_is_a_loop_and_varied_text_is_not():
    span = speech.LOOP_TOKENS
    assert speech.looping([7] * span) and speech.looping([1, 2, 3] + [10, 11, 12] * 8)
    assert speech.looping([5, 6, 7, 8, 9, 10, 11, 12] * 3)  # the longest block, three times
    assert not speech.looping([7] * (span - 1))  # too short to tell
    assert not speech.looping(list(range(span + 10)))
    assert not speech.looping([1, 2, 3, 4, 5, 6, 7, 8, 9] * 3)  # a block longer than LOOP_PERIOD


@needs_espeak
def test_a_clip_whisper_loops_on_is_refused_fast(base, tmp_path, monkeypatch):
    """espeak-ng `cmn` reading "把空调调到二十六度" made whisper loop ("3.1.4.4.4.4…") at every temperature, each pass
    to the token cap: 3 × 91 decoder steps, 23-45 s before "No speech was recognised". A loop now stops where it
    starts."""
    clip = speak("把空调调到二十六度", tmp_path / "cmn.wav", voice="cmn")
    steps = DecoderSteps(monkeypatch)
    torch.manual_seed(0)
    try:
        result = base.transcribe(clip, SPEECH_LANGUAGES)
        print(f"heard {result.text!r} ({result.language})")
        assert not re.search(r"(.{1,8}?)\1{3}", result.text), result.text  # whatever is kept is not a loop
    except InputError as e:
        assert "No speech was recognised" in str(e)
    cap = speech._sample_len(sf.info(str(clip)).duration, base.load().dims.n_text_ctx)
    print(f"{steps.steps} decoder steps in {len(steps.passes)} passes (cap {cap} per pass)")
    assert steps.steps <= len(steps.passes) * (speech.LOOP_TOKENS + 12) < len(steps.passes) * cap


def test_noise_that_whisper_calls_silence_is_refused_after_one_pass(base, tmp_path, monkeypatch):
    """Whisper's own rule: likely no speech and an unsure decode is silence, and silence needs no fallback to
    higher temperatures (the one-pass path used to run all three before refusing)."""
    hiss = tmp_path / "hiss.wav"
    sf.write(hiss, 0.003 * np.random.default_rng(1).standard_normal(SAMPLE_RATE * 5), SAMPLE_RATE)
    steps = DecoderSteps(monkeypatch)
    with pytest.raises(InputError, match="No speech was recognised"):
        base.transcribe(hiss, SPEECH_LANGUAGES)
    assert steps.passes == [0.0]


def test_a_hum_is_refused_not_heard_as_you(base, tmp_path, monkeypatch):
    """Whisper is sure of "you" on a mains hum (log-prob -0.72) while almost sure there is no speech (0.94)."""
    hum = tmp_path / "hum.wav"
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    sf.write(hum, 0.1 * np.sin(2 * np.pi * 50 * t) + 0.05 * np.sin(2 * np.pi * 150 * t), SAMPLE_RATE)
    steps = DecoderSteps(monkeypatch)
    with pytest.raises(InputError, match="No speech was recognised"):
        base.transcribe(hum, SPEECH_LANGUAGES)
    assert steps.passes == [0.0]


def test_noise_without_speech_is_reported_not_hallucinated(base, tmp_path):
    noise = tmp_path / "noise.wav"
    sf.write(noise, 0.05 * np.random.default_rng(1).standard_normal(SAMPLE_RATE * 3), SAMPLE_RATE)
    torch.manual_seed(8)  # a draw where the sampled fallback ends in a "1.0.2.3.3.3…" loop
    with pytest.raises(InputError, match="No speech was recognised"):
        base.transcribe(noise)


# --- decoding ---------------------------------------------------------------------------------


@needs_ffmpeg
@needs_librivox
@pytest.mark.parametrize("suffix", [".webm", ".mp3", ".m4a"])
def test_compressed_formats_decode(suffix, tmp_path, limits, monkeypatch):
    wav, _ = librivox_clips()[1]
    encoded = tmp_path / f"clip{suffix}"
    codec = {".webm": "libopus", ".mp3": "libmp3lame", ".m4a": "aac"}[suffix]
    ffmpeg("-i", str(wav), "-c:a", codec, "-b:a", "64k", str(encoded))
    calls = []
    real = speech._ffmpeg_decode
    monkeypatch.setattr(speech, "_ffmpeg_decode", lambda *a: calls.append(a) or real(*a))
    audio = decode_audio(encoded, limits)
    original = sf.read(wav, dtype="float32")[0]
    if suffix != ".mp3":  # libsndfile reads mp3 itself; browser webm and m4a need ffmpeg
        assert len(calls) == 1
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - len(original)) < 0.06 * SAMPLE_RATE
    assert best_correlation(audio, original, max_lag=1600) > 0.9


@needs_ffmpeg
def test_without_ffmpeg_a_webm_asks_for_it(tmp_path, limits, monkeypatch):
    clip = tmp_path / "voice.webm"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=1", "-c:a", "libopus", str(clip))
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(InputError, match="need ffmpeg, which is not installed"):
        decode_audio(clip, limits)


@pytest.mark.parametrize(
    ("rate", "channels", "subtype"),
    [(44100, 2, "PCM_24"), (8000, 1, "PCM_16"), (48000, 1, "FLOAT"), (22050, 2, "PCM_U8")],
)
def test_any_rate_and_channel_count_becomes_16k_mono(rate, channels, subtype, tmp_path, limits):
    seconds = 1.5
    speech_band = tone(440, seconds, rate)
    columns = [speech_band] * channels
    if rate > 2 * 12000:  # a tone above 8 kHz must be filtered out, not folded down to 4 kHz
        columns[-1] = speech_band + tone(12000, seconds, rate, amp=0.2 * channels)
    path = tmp_path / "tone.wav"
    sf.write(path, np.stack(columns, axis=1), rate, subtype=subtype)
    audio = decode_audio(path, limits)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - seconds * SAMPLE_RATE) <= 1
    assert amplitude_at(audio, 440) == pytest.approx(0.4, rel=0.03)
    assert amplitude_at(audio, 4000) < 1e-3


@pytest.mark.parametrize(("orig", "new"), [(44100, 16000), (8000, 16000), (22050, 16000), (16000, 44100)])
def test_polyphase_and_direct_resampling_agree(orig, new):
    audio = np.random.default_rng(0).standard_normal(orig // 2).astype(np.float32)
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    cutoff = min(1.0, n / o) * speech.SINC_ROLLOFF
    half = math.ceil(speech.SINC_ZEROS / cutoff)
    fast = speech.resample(audio, orig, new)
    slow = speech._gathered(audio, o, n, cutoff, half)
    assert len(fast) == len(slow) == math.ceil(len(audio) * new / orig)
    assert np.allclose(fast, slow, atol=1e-4)
    odd = speech.resample(tone(440, 0.5, 44101), 44101)  # an awkward ratio takes the direct path
    assert len(odd) == 8000 and amplitude_at(odd, 440) == pytest.approx(0.4, rel=0.03)


def test_bad_recordings_give_clear_input_errors(tmp_path, limits):
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(InputError, match="empty \\(0 bytes\\)"):
        decode_audio(empty, limits)

    text = tmp_path / "notes.wav"
    text.write_text("These are my meeting notes, not a recording.\n" * 20)
    with pytest.raises(InputError, match="could not be read as audio"):
        decode_audio(text, limits)

    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SAMPLE_RATE * 2, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(InputError, match="No speech was heard"):
        decode_audio(silent, limits)

    no_frames = tmp_path / "header-only.wav"
    sf.write(no_frames, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(InputError, match="No speech was heard"):
        decode_audio(no_frames, limits)

    long = tmp_path / "long.wav"
    sf.write(long, tone(300, 3.0, SAMPLE_RATE), SAMPLE_RATE)
    with pytest.raises(InputError, match="3 seconds long; the limit is 2 seconds"):
        decode_audio(long, Limits(max_audio_seconds=2))


@needs_ffmpeg
def test_long_compressed_recording_is_refused_without_decoding_it_all(tmp_path):
    clip = tmp_path / "long.webm"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=5", "-c:a", "libopus", str(clip))
    with pytest.raises(InputError, match="too long; the limit is 2 seconds"):
        decode_audio(clip, Limits(max_audio_seconds=2))


def test_silent_recording_is_refused_before_loading_a_model(tmp_path, cache_dir):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    transcriber = Transcriber("embedded:whisper-tiny.en", cache_dir)
    with pytest.raises(InputError, match="No speech was heard"):
        transcriber.transcribe(silent)
    assert transcriber._model is None
