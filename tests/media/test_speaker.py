"""The Speaker stage: sentences, language routing, the real Kokoro engine, bad cases, and a round trip
through our own Whisper."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from interactive_format.media import phonemes
from interactive_format.media import speaker as sp
from interactive_format.settings.load import load_config, parse_args
from interactive_format.flows import FLOWS_DIR
from interactive_format.settings.flow_file import FlowError, load_flow
from interactive_format.media.speaker import SentenceSplitter, Speaker, language_of, load_speaker, split_sentences

ROOT = Path(__file__).resolve().parents[2]
_bench = importlib.util.spec_from_file_location("bench_tts", ROOT / "bench" / "tts.py")
BENCH = importlib.util.module_from_spec(_bench)  # the round-trip measure and the fixed set (bench/tts.py)
_bench.loader.exec_module(BENCH)
_REAL_PATH = os.environ.get("PATH", "")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the espeak-ng program is not installed")


@pytest.fixture(scope="module")
def kokoro(cache_dir) -> Speaker:
    """The default engine (embedded Kokoro-82M), loaded once for this module."""
    speaker = Speaker("embedded:kokoro-82m", cache_dir)
    speaker.load()
    return speaker


# --- sentences and language ------------------------------------------------------------------


def test_sentences_split_at_chinese_and_english_punctuation_not_inside_numbers_or_abbreviations():
    text = "It costs 3.5 dollars, e.g. for Mr. Smith. Really? 好的，客厅的灯已经打开了。今天很冷，多穿点衣服！OK"
    assert split_sentences(text) == [
        "It costs 3.5 dollars, e.g. for Mr. Smith.",
        "Really?",
        "好的，客厅的灯已经打开了。",
        "今天很冷，多穿点衣服！",
        "OK",
    ]


def test_streamed_text_gives_each_sentence_once_complete_and_the_first_may_end_at_a_comma():
    splitter, got = SentenceSplitter(), []
    for ch in "Of course, the living-room light is on now. Anything else? 好的，马上就办。还有":
        for sentence in splitter.feed(ch):
            got.append(sentence)
            if sentence == "Of course, the living-room light is on now.":
                pytest.fail("the first sentence should have been cut at its comma")
    assert got == ["Of course,", "the living-room light is on now.", "Anything else?", "好的，马上就办。"]
    assert splitter.flush() == ["还有"]


def test_a_short_opening_clause_is_not_cut_alone():
    splitter = SentenceSplitter()
    assert splitter.feed("Sure, it is on. ") == ["Sure, it is on."]


def test_a_long_english_first_sentence_is_cut_before_a_function_word_the_same_way_streamed_or_whole():
    text = "Your alarm is set for seven in the morning. Remember to hang the clothes before dinner."
    splitter, streamed = SentenceSplitter(), []
    for ch in text:
        streamed += splitter.feed(ch)
    streamed += splitter.flush()
    want = ["Your alarm is set", "for seven in the morning.", "Remember to hang the clothes before dinner."]
    assert streamed == want  # only the first piece is cut early; the rest keep their sentences whole
    assert SentenceSplitter().feed(text) == want
    # never after a function word, nor in a short first sentence, nor in one with no function word
    cut = {t: SentenceSplitter().feed(t) for t in ("The battery of the smoke detector is low.", "I put it on the list.",
                                                    "The washing machine has finished.")}  # fmt: skip
    assert list(cut.values()) == [["The battery", "of the smoke detector is low."], *([t] for t in list(cut)[1:])]


def test_a_long_english_sentence_goes_on_at_its_commas_so_the_voice_need_not_wait_for_its_end():
    """A later piece ends at a comma once 40 characters long: a one-sentence reply of 170 characters was said as a
    4-word first piece, then silence until the whole sentence was written and synthesised (8-15 s)."""
    text = ("For a two-day hiking trip, pack sturdy shoes, a good book or magazine, a water bottle, a map, a compass, "
            "a first aid kit, and plenty of clothes to be comfortable and dry.")  # fmt: skip
    assert split_sentences(text) == [text]  # whole sentences where no voice waits
    splitter, streamed = SentenceSplitter(), []
    for ch in text:
        streamed += splitter.feed(ch)
    assert streamed == ["For a two-day hiking trip,", "pack sturdy shoes, a good book or magazine,",
                        "a water bottle, a map, a compass, a first aid kit,",
                        "and plenty of clothes to be comfortable and dry."]  # fmt: skip
    zh = SentenceSplitter()  # Chinese keeps whole sentences (its voice reads them better)
    assert zh.feed("好的。" + "周末可以去公园散步，也可以在家看书、听音乐，或者约朋友一起吃饭，都是很好的放松方式。") == [
        "好的。周末可以去公园散步，也可以在家看书、听音乐，或者约朋友一起吃饭，都是很好的放松方式。"
    ]


def test_a_number_being_written_is_not_cut_at_its_dot_or_comma():
    for text, pieces in (("Hi. It costs 3.5 dollars.", ["Hi.", "It costs 3.5 dollars."]),
                         ("Sure. We sold 3,000 of them to people, which is a lot of lamps for one shop.",
                          ["Sure.", "We sold 3,000 of them to people, which is a lot of lamps for one shop."])):  # fmt: skip
        splitter, streamed = SentenceSplitter(), []
        for ch in text:
            streamed += splitter.feed(ch)
        assert streamed + splitter.flush() == pieces  # "3." and "3," waited for the next character


@pytest.mark.parametrize(
    "text",
    [*(t for _, t in BENCH.REPLIES + BENCH.FRESH), "Cats are fond of naps, and they sleep a lot at night, with one eye open.",
     "Cats are small, furry animals of the night, with sharp claws. They purr.",
     "Hi. It costs 3.5 dollars, or 3,000 yuan for ten of them, which is the price most shops ask for now. Fine."],
)  # fmt: skip
def test_the_pieces_cut_so_far_never_change_as_the_reply_streams_on(text):
    # follow() cuts the growing reply afresh at every look and says the pieces after those already said
    def pieces(prefix: str, done: bool) -> list[str]:
        splitter = SentenceSplitter()
        return splitter.feed(prefix) + (splitter.flush() if done else [])

    whole = pieces(text, True)
    for end in range(len(text) + 1):
        so_far = pieces(text[:end], False)
        assert so_far == whole[: len(so_far)], text[:end]


def test_a_switch_to_another_candidate_is_said_from_where_the_replies_differ():
    """The shown reply switched after its first sentences were said (a draft with a defect left for a clean one):
    the listener hears the new reply from its first differing sentence to its end, not the old one's sequel."""
    shown = ["Cats sleep a lot. They purr when happy. Dogs", "Cats sleep a lot. They purr when",
             "Cats sleep a lot. They hunt at night.", "Cats sleep a lot. They hunt at night. They like warm places."]
    looks = iter(shown)

    def text() -> str:  # what the chat shows at each look: the draft, then the candidate that replaced it
        return next(looks, shown[-1])

    class Voice:  # follow's control logic alone: what it asks to say, in order
        max_chars, cut_note = 10_000, ""

        def __init__(self) -> None:
            self.said: list[str] = []

        def say(self, sentence: str, first: bool = False):
            self.said.append(sentence)
            return sentence

    voice = Voice()
    finished = iter([False, False, False, True])
    list(sp.follow(text, lambda: next(finished, True), voice, poll_s=0))
    assert voice.said == ["Cats sleep a lot.", "They purr when happy.", "They hunt at night.", "They like warm places."]


def test_chinese_is_said_in_whole_sentences_and_a_short_one_with_the_next():
    # Kokoro's Mandarin is heard better in longer pieces (bench/tts.py: 27 % -> 21 % character errors)
    text = "早上好！今天天气晴朗，出门不用带伞。现在卧室有点冷，我把暖气调高了一点。好的。"
    splitter, streamed = SentenceSplitter(), []
    for ch in text:
        streamed += splitter.feed(ch)
    assert streamed == ["早上好！今天天气晴朗，出门不用带伞。", "现在卧室有点冷，我把暖气调高了一点。"]
    assert splitter.flush() == ["好的。"]  # the reply's last sentence, however short, once it is complete
    assert SentenceSplitter().feed(text) == streamed


@pytest.mark.parametrize(
    "text, language",
    [("Turn on the light.", "en"), ("打开客厅的灯。", "zh"), ("我把 Wi-Fi 打开了。", "zh"), ("42!", None),
     ("😀🎉", None), ("Привет, мир.", None), ("", None)],
)  # fmt: skip
def test_language_is_picked_from_the_text(text, language):
    assert language_of(text) == language


# --- the real engine ---------------------------------------------------------------------------


def test_english_and_chinese_sentences_get_their_own_phonemes_and_voices(cache_dir, monkeypatch):
    speaker = Speaker("embedded:kokoro-82m", cache_dir, voices={"en": "jf_alpha", "zh": "jm_kumo"})
    engine = speaker.load()
    calls = []
    real = engine.synthesize
    monkeypatch.setattr(
        engine,
        "synthesize",
        lambda t, lang, voice, speed, *first: calls.append((lang, voice)) or real(t, lang, voice, speed, *first),
    )
    reply = speaker.speak("The light is on. 客厅的灯已经打开了。")
    assert calls == [("en", "jf_alpha"), ("zh", "jm_kumo")]
    assert [u.language for u in reply.utterances] == ["en", "zh"]
    assert re.search("[ˈˌ]", engine.phonemes("The light is on.", "en"))  # espeak-ng stress marks
    zh = engine.phonemes("我把 Wi-Fi 打开了。", "zh")
    assert re.search("[→↗↓↘]", zh) and "w" in zh.lower() and "Wi" not in zh  # tones; the Latin word phonemised


def test_real_engine_audio_has_a_plausible_duration(kokoro):
    english = "The washing machine has finished, so remember to hang the clothes before dinner."
    chinese = "洗衣机已经洗完了，记得晚饭前把衣服晾起来。"
    en, zh = kokoro.say(english), kokoro.say(chinese)
    assert en.rate == zh.rate == 24_000 and not en.note and not zh.note
    per_word = en.seconds / len(english.split())
    per_char = zh.seconds / len(re.findall(r"\w", chinese))
    assert 0.2 <= per_word <= 0.7, per_word  # people say 2-4 words a second
    assert 0.12 <= per_char <= 0.5, per_char  # and 3-6 Chinese characters
    assert 0.05 < float(np.sqrt(np.mean(en.audio**2))) < 0.7  # not silence, not clipping


def test_speed_changes_the_length(cache_dir, kokoro):
    fast = Speaker("embedded:kokoro-82m", cache_dir, speed=1.6)
    fast._engine = kokoro.load()  # the same loaded model
    text = "Your alarm is set for seven in the morning."
    assert fast.say(text).seconds < 0.8 * kokoro.say(text).seconds


@needs_espeak
def test_espeak_engine_speaks_both_languages(cache_dir):
    speaker = Speaker("espeak-ng", cache_dir)
    en, zh = speaker.say("Hello there."), speaker.say("你好。")
    assert en.seconds > 0.3 and zh.seconds > 0.3 and not en.note and not zh.note


def test_whole_reply_is_joined_with_pauses_and_written_as_wav(kokoro, tmp_path):
    reply = kokoro.speak("First one. Second one.")
    parts = sum(len(u.audio) for u in reply.utterances)
    assert len(reply.audio) == parts + int(sp.SENTENCE_PAUSE_S * reply.rate)
    path = sp.write_wav(reply.audio, reply.rate, tmp_path / "r.wav")
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (reply.rate, 1, len(reply.audio))


# --- English phonemes: libespeak-ng in a worker process, no program needed ----------------------------

# Replies' kinds of English (numbers, times, abbreviations, URLs, code words) and Chinese with Latin runs; a line
# over the 999 bytes the program reads at once; a lone function word (stressed by the program, not by
# espeak_TextToPhonemes).
SAID = [
    "Sure, I turned on the living room light.", "Your alarm is set for 7:30 in the morning.",
    "It costs $12.99, or about €11.50 with the discount.", "Python 3.11 is about 25% faster.",
    "Connect to the Wi-Fi network called HomeNet-5G.", "Visit https://www.example.com/docs for more.",
    "Dr. Smith will see you at 10:15 a.m. tomorrow.", "The U.S. and the U.K. signed it in 1998.",
    "Use Ctrl+C to copy; the CPU runs at 3.2 GHz.", "The café serves crème brûlée.", "The.", "Hmm... OK!",
    "Close the door, the shop is close.", "lights " * 170,
]  # fmt: skip
RAW = ["Line one\nline two\n", "carriage\rreturn", "the " * 249 + "lights\nok", "", "\n\n"]  # fgets' lines
SAID_ZH = ["我把 Wi-Fi 打开了。", "你可以用 Python 3.11 写这个脚本。", "请访问 https://www.example.com 了解更多。"]


@pytest.fixture
def no_program(monkeypatch, tmp_path):
    """PATH without the espeak-ng program (only an empty folder), and a fresh worker started under it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("espeak-ng") is None
    worker = phonemes.EspeakWorker()
    monkeypatch.setattr(phonemes, "_WORKER", worker)
    yield worker
    worker.close()


@needs_espeak
def test_english_phonemes_without_the_program_are_the_programs(monkeypatch, no_program):
    with monkeypatch.context() as m:
        m.setenv("PATH", _REAL_PATH)  # the program, as the reference
        m.setattr(phonemes, "espeak_ipa", phonemes.program_ipa)
        by_program = [phonemes.english_phonemes(t) for t in SAID] + [phonemes.chinese_phonemes(t) for t in SAID_ZH]
        raw_program = phonemes.program_ipa(RAW)
    assert no_program.ipa(RAW) == raw_program  # the IPA itself, line for line
    by_worker = [phonemes.english_phonemes(t) for t in SAID] + [phonemes.chinese_phonemes(t) for t in SAID_ZH]
    assert by_worker == by_program
    assert no_program.version.startswith("1.52")  # espeakng-loader's libespeak-ng, not the system's
    assert "ðˈə" in phonemes.english_phonemes("The.")  # a lone "the" stressed, as the program says it


def test_kokoro_speaks_english_with_no_espeak_ng_on_path(cache_dir, kokoro, no_program):
    speaker, note = load_speaker("embedded:kokoro-82m", cache_dir)
    assert note == "" and speaker is not None
    said = speaker.say("The front door is locked and the porch light is on.")
    assert not said.note and said.seconds > 1.5 and float(np.abs(said.audio).max()) > 0.05


def test_the_espeak_library_is_never_loaded_into_the_apps_process(no_program):
    import espeakng_loader

    assert phonemes.english_phonemes("Hello there.")
    maps = Path("/proc/self/maps").read_text()
    assert "libespeak-ng" not in maps  # GPL-3: only the worker process loads it
    worker_maps = Path(f"/proc/{no_program._proc.pid}/maps").read_text()
    libraries = {line.split()[-1] for line in worker_maps.splitlines() if "libespeak-ng" in line}
    assert libraries == {str(Path(espeakng_loader.get_library_path()).resolve())}  # pip's, not a system one


def test_the_worker_finds_its_data_under_a_long_install_path(no_program, tmp_path, monkeypatch):
    import espeakng_loader

    deep = tmp_path / ("site-packages-" + "x" * 150)  # espeak reads at most 160 bytes of its data path
    shutil.copytree(Path(espeakng_loader.__file__).parent, deep / "espeakng_loader", symlinks=True)
    monkeypatch.setenv("PYTHONPATH", str(deep))
    assert phonemes.english_phonemes("Hello there.") == "həlˈO ðˈɛɹ."
    assert str(deep) in Path(f"/proc/{no_program._proc.pid}/maps").read_text()  # that copy's library


def test_a_dead_worker_is_replaced_and_the_next_sentence_is_said(no_program, kokoro):
    first = phonemes.english_phonemes("The light is on.")
    dead = no_program._proc
    dead.kill()
    dead.wait()
    assert phonemes.english_phonemes("The light is on.") == first
    assert no_program._proc.pid != dead.pid
    no_program._proc.kill()  # killed again, now through the Speaker: still spoken, no note
    said = kokoro.say("The light is on.")
    assert not said.note and said.seconds > 0.5


def test_a_worker_that_keeps_dying_gives_a_note_not_a_hang(kokoro, monkeypatch):
    says_ready_and_dies = (sys.executable, "-c", 'print(\'{"ready": "0"}\', flush=True)')
    monkeypatch.setattr(phonemes, "_WORKER", phonemes.EspeakWorker(command=says_ready_and_dies))
    said = kokoro.say("The light is on.")
    assert said.note == "Not spoken: English phonemes failed: the espeak-ng worker stopped twice."
    assert kokoro.say("灯开了。").seconds > 0.3  # Chinese is said all the same


def test_bad_text_gives_a_clean_note_never_a_hang(kokoro, no_program):
    started = time.perf_counter()
    with pytest.raises(phonemes.SpeakerError, match="too long to speak"):
        phonemes.english_phonemes("word " * 100_000)
    assert time.perf_counter() - started < 1
    said = kokoro.say("Turn\x00 on\x07 the\x1b[31m light\x7f now.")  # control characters are not said
    assert not said.note and said.seconds > 0.5
    assert phonemes.english_phonemes("on\x00 the light") == phonemes.english_phonemes("on  the light")
    assert kokoro.say("\ud800 lone surrogate.").seconds > 0.3  # not valid UTF-8: replaced, still said
    with pytest.raises(phonemes.SpeakerError, match=r"English phonemes failed \(ValueError: espeak-ng has no voice"):
        phonemes.english_phonemes("Hello.", voice="xx-nope")
    assert phonemes.english_phonemes("Hello.")  # the worker lived through the bad request


def test_a_worker_that_takes_too_long_is_ended_with_a_note(kokoro, monkeypatch):
    says_ready_and_hangs = (sys.executable, "-c", 'import time; print(\'{"ready": "0"}\', flush=True); time.sleep(600)')
    worker = phonemes.EspeakWorker(timeout_s=0.5, command=says_ready_and_hangs)
    monkeypatch.setattr(phonemes, "_WORKER", worker)
    started = time.perf_counter()
    said = kokoro.say("The washing machine has finished.")
    assert said.note == "Not spoken: English phonemes took too long on this sentence."
    assert time.perf_counter() - started < 3 and worker._proc is None  # ended, not left running
    worker.command = phonemes.WORKER_COMMAND  # the next sentence gets a fresh worker
    assert kokoro.say("The washing machine has finished.").seconds > 1
    worker.close()


# --- bad cases: the audio is skipped with a note, nothing raises --------------------------------


@pytest.mark.parametrize("text", ["", "   \n", "😀🎉👍", "***"])
def test_nothing_to_say_gives_no_audio_and_a_note(kokoro, text):
    reply = kokoro.speak(text)
    assert len(reply.audio) == 0 and reply.notes == ("Nothing in this reply could be spoken.",)


def test_a_script_the_voice_cannot_say_is_skipped_with_a_note_and_the_rest_spoken(kokoro):
    reply = kokoro.speak("Привет, как дела? The light is on.")
    assert reply.seconds > 0.5
    assert len(reply.notes) == 1 and "cannot say" in reply.notes[0] and "Привет" in reply.notes[0]


def test_a_giant_reply_is_spoken_up_to_the_limit_with_a_note(cache_dir, kokoro, monkeypatch):
    speaker = Speaker("embedded:kokoro-82m", cache_dir, max_chars=60)
    speaker._engine = kokoro.load()
    said = []
    monkeypatch.setattr(speaker, "say", lambda s, **kw: said.append(s) or kokoro.say(s, **kw))
    reply = speaker.speak("This is a sentence. " * 500)
    assert sum(len(s) for s in said) <= 60 and said
    assert reply.notes == (speaker.cut_note,) and reply.seconds > 1


def test_one_unbroken_giant_sentence_is_cut_into_model_sized_pieces(kokoro):
    u = kokoro.say("la " * 135)  # 539 phonemes, no punctuation: over the model's 510 tokens
    assert u.seconds > 10 and not u.note


def test_a_synthesis_error_is_a_note_not_a_crash(cache_dir, kokoro, monkeypatch):
    speaker = Speaker("embedded:kokoro-82m", cache_dir)
    speaker._engine = kokoro.load()

    def broken(*args):
        raise RuntimeError("onnxruntime exploded")

    monkeypatch.setattr(speaker._engine, "synthesize", broken)
    reply = speaker.speak("Hello there. 你好。")
    assert len(reply.audio) == 0
    assert reply.notes == ("Not spoken: speech synthesis failed (RuntimeError).",)


# --- choosing the engine -------------------------------------------------------------------------


def test_off_and_missing_engines_are_one_line_not_a_failure(cache_dir, monkeypatch):
    assert load_speaker("off", cache_dir) == (None, "")
    speaker, note = load_speaker("hexgrad/Kokoro-82M", cache_dir)
    assert speaker is None and note.startswith("Spoken replies are off:") and "\n" not in note
    speaker, note = load_speaker("embedded:whisper-base", cache_dir)
    assert speaker is None and "not a speech synthesis model" in note
    speaker, note = load_speaker("embedded:kokoro-82m", cache_dir, voices={"en": "af_heart"})
    assert speaker is None and "Unknown Kokoro voice 'af_heart'" in note
    monkeypatch.setattr("shutil.which", lambda name: None)  # no espeak-ng program: only its own voice is missing
    speaker, note = load_speaker("espeak-ng", cache_dir)
    assert speaker is None and "apt-get install espeak-ng" in note and "\n" not in note
    assert load_speaker("embedded:kokoro-82m", cache_dir)[1] == ""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "espeakng_loader" else real(name, *a)
    )
    speaker, note = load_speaker("embedded:kokoro-82m", cache_dir)
    assert speaker is None and "'espeakng-loader'" in note and "pip install" in note and "\n" not in note


def test_kokoro_parts_join_to_the_checked_file(kokoro, cache_dir):
    from interactive_format.models.specs import EMBEDDED

    joined = list(cache_dir.glob("kokoro-82m-*.onnx"))
    assert len(joined) == 1 and joined[0].stat().st_size == EMBEDDED["kokoro-82m"].size


def test_tampered_voice_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "data"
    fake.mkdir()
    (fake / "vocab.json").write_text('{"vocab": {}}')
    with pytest.raises(sp.ModelLoadError, match="not the expected file"):
        sp._checked(fake / "vocab.json", *sp.VOICE_FILES["data/vocab.json"])


def test_config_flag_env_and_flow_choose_the_speaker():
    config = load_config(environ={"IF_TTS": "espeak-ng", "IF_TTS_SPEED": "1.3"}, flags=parse_args([]))
    assert (config.models.tts, config.models.tts_speed) == ("espeak-ng", 1.3)
    config = load_config(environ={"IF_TTS": "espeak-ng"}, flags=parse_args(["--tts", "off", "--tts-speed", "0.8"]))
    assert (config.models.tts, config.models.tts_speed) == ("off", 0.8)
    with pytest.raises(ValueError, match="models.tts_speed"):
        load_config(environ={"IF_TTS_SPEED": "5"})
    assert load_flow(FLOWS_DIR / "smart-home.toml").voice_replies is True
    assert load_flow(FLOWS_DIR / "playground.toml").voice_replies is False


def test_flow_voice_replies_must_be_a_boolean(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text('title = "T"\npersona = "P"\nvoice_replies = "yes"\n')
    with pytest.raises(FlowError, match="line 3, 'voice_replies': must be true or false"):
        load_flow(path)


# --- round trip through our own Whisper -------------------------------------------------------------


@pytest.mark.slow
def test_spoken_replies_are_understood_by_our_whisper(kokoro, cache_dir, tmp_path):
    edit_distance, tokens = BENCH.edit_distance, BENCH.tokens
    from interactive_format.media.speech import Transcriber

    whisper = Transcriber("embedded:whisper-base", cache_dir)
    cases = [
        ("en", "Sure, I turned on the living room light."),
        ("en", "I have added milk, eggs and bread to your shopping list."),
        ("zh", "好的，客厅的灯已经打开了。"),
        ("zh", "所有的窗户都关好了，空调现在是睡眠模式。"),
    ]
    errors = {"en": [0, 0], "zh": [0, 0]}
    for i, (lang, text) in enumerate(cases):
        reply = kokoro.speak(text)
        heard = whisper.transcribe(sp.write_wav(reply.audio, reply.rate, tmp_path / f"{i}.wav"))
        ref = tokens(text, lang)
        errors[lang][0] += edit_distance(ref, tokens(heard.text, lang))
        errors[lang][1] += len(ref)
        assert heard.language == lang, (text, heard.text)
    assert errors["en"][0] / errors["en"][1] <= 0.10, errors
    assert errors["zh"][0] / errors["zh"][1] <= 0.15, errors


def test_chinese_is_said_at_its_own_pace_times_the_speed_setting(cache_dir, kokoro, monkeypatch):
    engine, speeds = kokoro.load(), []
    real = engine.synthesize
    monkeypatch.setattr(
        engine,
        "synthesize",
        lambda t, lang, voice, speed, *first: speeds.append((lang, speed)) or real(t, lang, voice, speed, *first),
    )
    slow = Speaker("embedded:kokoro-82m", cache_dir, speed=1.2)
    slow._engine = engine
    text = "好的，客厅的灯已经打开了。"
    paced = slow.say(text)
    slow.pace = {}
    plain = slow.say(text)
    assert speeds == [("zh", pytest.approx(1.2 * sp.KOKORO_PACE["zh"])), ("zh", 1.2)]
    assert paced.seconds > 1.04 * plain.seconds  # really slower, not only asked to be
    assert sp.KOKORO_PACE["zh"] < 1.0 and "en" not in sp.KOKORO_PACE


def test_bench_set_is_half_chinese_half_english_and_big_enough():
    REPLIES = BENCH.REPLIES
    langs = [lang for lang, _ in REPLIES]
    assert len(REPLIES) >= 20 and langs.count("zh") == langs.count("en")
    assert all(language_of(text) == lang for lang, text in REPLIES)


# --- the app: the API's audio, the spoken reply while it streams, the picked candidate ----------------


def _wav_seconds(path_or_bytes) -> float:
    import io

    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    with wave.open(source) as w:
        return w.getnframes() / w.getframerate()


def test_chat_api_returns_the_reply_spoken_when_asked(client):
    plain = client.predict("Say hello.", None, None, 1, 0.7, 24, api_name="/chat")
    assert "audio" not in plain  # not asked: nothing spent on speech
    result = client.predict("Say hello.", None, None, 1, 0.7, 24, api_name="/chat_spoken")
    assert result["reply"].strip()
    if result["audio"] is None:  # a reply with nothing sayable (e.g. only emoji) says why
        assert result["audio_notes"]
        return
    seconds = _wav_seconds(result["audio"])
    assert seconds == pytest.approx(result["audio_seconds"], abs=0.05)
    words = len(re.findall(r"\w+", result["reply"]))
    assert 0.1 * words <= seconds <= 1.0 * words + 1


def test_chat_api_says_why_when_the_server_has_no_speaker(engine, monkeypatch):
    from interactive_format.web.callbacks import chat_ui
    from interactive_format.store.store import Store

    monkeypatch.setattr(engine, "speaker", None)
    monkeypatch.setattr(engine, "speaker_note", "Spoken replies are off: espeak-ng is missing.")
    ui = chat_ui(engine, Store(":memory:"))
    result = ui.api.chat("Hi!", None, None, 1, 0.7, 8, True)
    assert result["reply"] and result["audio"] is None
    assert result["audio_notes"] == ["Spoken replies are off: espeak-ng is missing."]


class _Request:
    session_hash = "talk-test"


def test_the_shown_reply_is_spoken_sentence_by_sentence_while_it_streams(engine, monkeypatch):
    import threading

    from interactive_format.web.callbacks import chat_ui
    from interactive_format.store.store import Store

    ui = chat_ui(engine, Store(":memory:"))
    chat = ui.history.new()
    said = []
    real_say = engine.speaker.say
    monkeypatch.setattr(
        engine.speaker,
        "say",
        lambda s, **kw: said.append((s, chat.conversation.turns[-1].meta.get("ms"))) or real_say(s, **kw),
    )
    chunks = []
    listener = threading.Thread(target=lambda: chunks.extend(ui.speak_live(chat, True, _Request())))
    listener.start()  # the spoken reply's event starts first and waits for the turn the same click starts
    list(
        ui.respond(
            {"text": "Tell me about cats in two sentences.", "files": []}, chat, 2, 0.7, 48, 0.5, USER, _Request()
        )
    )
    listener.join(timeout=120)
    reply = chat.conversation.turns[-1].reply
    assert not listener.is_alive() and chunks and all(c[:4] == b"RIFF" for c in chunks)
    assert len(chunks) == len([s for s, _ in said if language_of(s)])
    splitter, uttered = SentenceSplitter(), [s for s, _ in said]
    final = splitter.feed(reply) + splitter.flush()
    if "draft" not in (chat.conversation.turns[-1].notice or ""):
        assert " ".join(uttered).split() == reply.split()  # the final shown reply, all of it
    else:  # the draft being said was replaced: the shown reply is said from where the two differ, to its end
        k = next(k for k, (a, b) in enumerate(zip(uttered, final)) if a != b)
        assert uttered[:k] == final[:k] and uttered[len(uttered) - len(final) + k :] == final[k:]
    if len(split_sentences(reply)) > 1:  # the first sentence was spoken before the turn had finished
        assert said[0][1] is None


def test_speaker_off_speaks_nothing(engine):
    from interactive_format.web.callbacks import chat_ui
    from interactive_format.store.store import Store

    ui = chat_ui(engine, Store(":memory:"))
    chat = ui.history.new()
    assert list(ui.speak_live(chat, False, _Request())) == [] and list(ui.speak_shown(chat, False)) == []


def test_picking_another_candidate_speaks_it(engine, monkeypatch):
    from interactive_format.web.callbacks import chat_ui
    from interactive_format.store.store import Store

    ui = chat_ui(engine, Store(":memory:"))
    chat = ui.history.new()
    list(ui.respond({"text": "Name a fruit.", "files": []}, chat, 3, 1.0, 16, 0.5, USER))
    reply = chat.conversation.turns[-1]
    other = next(i for i, c in enumerate(reply.candidates) if i != reply.chosen and c.text.strip())
    chat.browse = other
    ui.pick(chat, USER)
    assert reply.chosen == other
    said = []
    monkeypatch.setattr(
        engine.speaker, "say", lambda s, **kw: said.append(s) or engine.speaker.__class__.say(engine.speaker, s, **kw)
    )
    chunks = list(ui.speak_shown(chat, True))
    assert " ".join(said).split() == reply.candidates[other].text.split()
    assert len(chunks) == len([s for s in said if language_of(s)])


USER = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "data, message",
    [
        ("", "Nothing was recorded"),
        ("data:audio/wav;base64,%%%not base64", "not base64 audio"),
        ("data:audio/wav;base64," + "aGVsbG8gd29ybGQh" * 4, "not a WAV file"),
        ("A" * (4 * 2**20), "too big"),
    ],
)
def test_a_bad_talk_mode_recording_is_refused_with_a_clear_message(data, message, engine, monkeypatch):
    from interactive_format.web.callbacks import chat_ui
    from interactive_format.config import Limits
    from interactive_format.errors import InputError
    from interactive_format.store.store import Store
    from interactive_format.web.talk import recording_file

    with pytest.raises(InputError, match=message):
        recording_file(data, Limits(max_file_bytes=2**20))
    warnings = []
    monkeypatch.setattr("interactive_format.web.talk.gr.Warning", warnings.append)
    ui = chat_ui(engine, Store(":memory:"))
    chat = ui.history.new()
    chat.conversation.turns.clear()
    views = list(ui.talk(data if message != "too big" else "A" * 40_000_000, chat, 1, 0.7, 8, 0.5, USER))
    assert len(views) == 1 and views[0].chat is chat and not chat.conversation.turns  # nothing was sent or lost
    assert len(warnings) == 1


def test_a_talk_mode_recording_is_answered_as_a_voice_turn(engine, media):
    import base64

    from interactive_format.web.callbacks import chat_ui
    from interactive_format.store.store import Store

    ui = chat_ui(engine, Store(":memory:"))
    chat = ui.history.new()
    data = "data:audio/wav;base64," + base64.b64encode(media["question"].read_bytes()).decode()
    views = list(ui.talk(data, chat, 1, 0.7, 8, 0.5, USER))
    user, reply = chat.conversation.turns[-2], chat.conversation.turns[-1]
    assert "weather" in user.attachments[0].text.lower() and reply.reply.strip()
    assert views[-1].status == "Ready"


def test_a_flow_that_does_not_speak_checks_the_speaker_at_start_and_builds_it_on_first_use(cache_dir, monkeypatch):
    speaker, note = load_speaker("embedded:kokoro-82m", cache_dir, eager=False)
    assert note == "" and not speaker.loaded  # no ONNX session yet
    said = speaker.say("Hello there.")
    assert speaker.loaded and said.seconds > 0.3 and not said.note
    real = importlib.util.find_spec  # a missing part is still one line at start
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "espeakng_loader" else real(name, *a)
    )
    speaker, note = load_speaker("embedded:kokoro-82m", cache_dir, eager=False)
    assert speaker is None and "'espeakng-loader'" in note


def test_the_smart_home_flow_starts_with_its_speaker_loaded(cache_dir, models):
    from interactive_format.config import AppConfig
    from interactive_format.engine.engines import build_engine

    from ..conftest import TEST_MODELS

    engine = build_engine(
        AppConfig(models=TEST_MODELS(cache_dir), flow=load_flow(FLOWS_DIR / "smart-home.toml")), models
    )
    if engine.speaker is None:
        pytest.skip(engine.speaker_note)
    assert engine.speaker.loaded  # voice_replies: loaded (and warmed up) at start, not by the first reply


def test_a_replys_first_piece_is_synthesised_with_more_threads(kokoro, monkeypatch):
    engine = kokoro.load()
    assert engine.first_session is not engine.session  # FIRST_THREADS (2) over the default 1 thread
    runs = []

    class Spy:
        def __init__(self, session, name):
            self.session, self.name = session, name

        def run(self, *args):
            runs.append(self.name)
            return self.session.run(*args)

    monkeypatch.setattr(engine, "session", Spy(engine.session, "rest"))
    monkeypatch.setattr(engine, "first_session", Spy(engine.first_session, "first"))
    spoken = list(sp.follow(lambda: "Of course, the light is on now. Anything else?", lambda: True, kokoro))
    assert [u.text for u in spoken] == ["Of course,", "the light is on now.", "Anything else?"]
    assert runs == ["first", "rest", "rest"] and all(u.seconds > 0.3 for u in spoken)
