"""Voice messages: transcribed by the engine's Transcriber (media/speech.py); a voice turn is what was said."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .reading import Reader, Reading, ReadingMeta


@dataclass
class VoiceMeta(ReadingMeta):
    language: str | None = None  # as detected
    seconds: float | None = None  # the recording's length


class VoiceReader(Reader):
    kind = "audio"
    modality = "voice"
    noun = "voice messages"
    format_name = "voice"
    status = "Transcribing your voice…"
    title = "Voice message"
    hint = ("record your voice", "录制语音")
    sources = ("upload", "microphone")
    limits_field = "audio_types"
    box_types = ("audio",)
    signatures = (
        (8, b"WAVE"),
        (0, b"fLaC"),
        (0, b"OggS"),
        (0, b"ID3"),
        (0, b"\x1aE\xdf\xa3"),  # Matroska / WebM
        (4, b"ftyp"),  # MP4 / M4A
        (8, b"AIFF"),
        (8, b"AIFC"),
        (0, b".snd"),
        (0, b"caff"),
        (0, b"riff\x2e\x91\xcf\x11"),  # Sony Wave64
    )
    meta_type = VoiceMeta

    def label(self, meta: VoiceMeta, number: int | None) -> str:
        return f"Transcript ({meta.language or '?'})"

    def read(self, path: Path, stages: Any) -> Reading:
        t = stages.transcriber.transcribe(path, stages.config.flow.speech_languages)
        return Reading(
            t.text, VoiceMeta(model=t.model, ms=round(t.ms), language=t.language, seconds=round(t.seconds, 2))
        )
