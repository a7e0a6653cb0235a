"""English IPA from libespeak-ng (the espeakng-loader package), in a process of its own.

    python -m interactive_format.media.espeak_worker      # started by phonemes.EspeakWorker, not by hand

espeak-ng is GPL-3 and the app Apache-2.0, so the library is never loaded into the app's process: this small
worker loads it with ctypes and answers over its pipes, one JSON line per request ({"voice": "en-us",
"texts": [...]}) and one per answer ({"ipa": [...]} or {"error": "..."}). It does what the program does for
`espeak-ng -q --ipa --tie=^ -v VOICE` with the text on stdin (src/espeak-ng.c): a phoneme trace in IPA with
"^" tying multi-letter phonemes, written while espeak_Synth runs (the audio is thrown away), one input line
(at most 999 bytes, as fgets reads it) per espeak_Synth call. espeak_TextToPhonemes is not used: it says a
lone function word unstressed ("the" → ðə) where the program stresses it (ðˈə).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000  # an error is returned, not exit(1)
POS_CHARACTER = 1
SYNTH_FLAGS = 0x100 | 0x1000  # espeakCHARS_AUTO | espeakPHONEMES | espeakENDPAUSE, as the program
TRACE = 0x01 | 0x02 | 0x80 | (ord("^") << 8)  # SHOW | IPA | TIE, "^" between a phoneme's letters (--tie=^)
LINE_BYTES = 999  # the program reads stdin with fgets(p_text, 1000, stdin)
MAX_DATA_PATH = 130  # espeak cuts "<path>/espeak-ng-data" to 160 bytes, then looks elsewhere (speech.c)
SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _lines(text: str) -> list[bytes]:
    """The text as the program's fgets loop reads it: up to a newline (kept; "\\r" is not one) or LINE_BYTES."""
    data, out, start = text.encode("utf-8", errors="replace"), [], 0
    while start < len(data):
        newline = data.find(b"\n", start, start + LINE_BYTES)
        stop = newline + 1 if newline >= 0 else min(start + LINE_BYTES, len(data))
        out.append(data[start:stop])
        start = stop
    return out


def _data_root(package: Path) -> Path:
    """The folder holding espeak-ng-data, through a short symlink when its path is too long for espeak."""
    if len(str(package)) <= MAX_DATA_PATH:
        return package
    short = Path(tempfile.mkdtemp(prefix="espeak-"))
    atexit.register(shutil.rmtree, short, ignore_errors=True)
    (short / "espeak-ng-data").symlink_to(package / "espeak-ng-data", target_is_directory=True)
    return short


class Espeak:
    """libespeak-ng initialised once, with a voice; `ipa()` gives the program's --ipa output for a text."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.libc = libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.open_memstream.restype = ctypes.c_void_p
        libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.free.argtypes = [ctypes.c_void_p]
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetPhonemeTrace.argtypes = [ctypes.c_int, ctypes.c_void_p]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
        root = _data_root(Path(espeakng_loader.get_data_path()).parent)
        if lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, str(root).encode(), INITIALIZE_DONT_EXIT) <= 0:
            raise RuntimeError(f"libespeak-ng could not start (data in {root})")
        self._callback = SynthCallback(lambda wav, samples, events: 0)  # kept: the library calls it
        lib.espeak_SetSynthCallback(self._callback)
        self.voice = ""
        lib.espeak_Info.restype = ctypes.c_char_p
        self.version = lib.espeak_Info(None).decode()

    def set_voice(self, voice: str) -> None:
        if voice != self.voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self.voice = voice

    def ipa(self, text: str) -> str:
        """The IPA the program writes for `text` given on stdin (clauses on their own lines)."""
        buffer, size = ctypes.c_void_p(), ctypes.c_size_t()
        stream = self.libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
        self.lib.espeak_SetPhonemeTrace(TRACE, stream)
        try:
            for line in _lines(text):
                self.lib.espeak_Synth(line, LINE_BYTES + 1, 0, POS_CHARACTER, 0, SYNTH_FLAGS, None, None)
            self.lib.espeak_Synchronize()
        finally:
            self.lib.espeak_SetPhonemeTrace(TRACE, None)
            self.libc.fclose(stream)  # sets buffer and size
        out = ctypes.string_at(buffer, size.value).decode("utf-8", errors="replace")
        self.libc.free(buffer)
        return out


def answer(espeak: Espeak, request: str) -> dict:
    """One request line → its answer (an error is an answer too: the worker lives on)."""
    try:
        asked = json.loads(request)
        espeak.set_voice(str(asked.get("voice") or "en-us"))
        return {"ipa": [espeak.ipa(str(text)) for text in asked["texts"]]}
    except Exception as e:  # a bad request must not end the worker
        return {"error": f"{e.__class__.__name__}: {e}"[:300]}


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything the library prints stays off the answers
    try:
        espeak = Espeak()
    except Exception as e:  # the parent reads this line and says it
        print(json.dumps({"error": f"{e.__class__.__name__}: {e}"[:300]}), file=out, flush=True)
        return
    print(json.dumps({"ready": espeak.version}), file=out, flush=True)
    for request in sys.stdin:
        print(json.dumps(answer(espeak, request), ensure_ascii=False), file=out, flush=True)


if __name__ == "__main__":
    main()
