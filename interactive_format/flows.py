"""Flows: a chat product described in one TOML file — persona, welcome, examples, buttons, modalities, models.

A product team writes `assets/flows/NAME.toml` and starts the app with `--flow` (or `IF_FLOW`);
the UI switches between the shipped flows without a restart. Here is what a flow is (`Flow`) and
what its keys may hold; settings/flow_file.py reads and checks a file, settings/load.py applies a
Flow to the settings (see `Flow.overrides`), `engine.engines.FlowSet` serves the flows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .inputs.readers import READERS, reader_for

FLOWS_DIR = Path(__file__).resolve().parent.parent / "assets" / "flows"  # the shipped flows
MODALITIES = ("text", *(r.modality for r in READERS.values()))  # ("text", "image", "voice")
LANGUAGES = ("auto", "en", "zh")  # auto: the browser's language
# What a voice turn is heard as (Whisper's codes): the languages the app serves (UI, replies, voices). Speech is
# detected among a flow's `speech_languages` only (Whisper base hears short Mandarin as Thai among all ~100); one
# language is forced. Not derived from `language` (the UI's): a Chinese page's user may still speak English.
SPEECH_LANGUAGES = ("zh", "en")
THEMES = ("default", "base", "soft", "glass", "monochrome", "origin", "citrus", "ocean")  # Gradio's built-in ones
MODEL_KEYS = ("llm", "asr", "captioner", "discriminator", "discriminator_encoder", "tts")
MAX_QUICK_REPLIES = 6  # buttons under the input box
MAX_EXAMPLES = 12


@dataclass(frozen=True)
class Flow:
    """One chat product. The defaults are the bare playground; None means "the app's setting"."""

    name: str = "playground"  # the file's stem; what the UI's flow menu and ?flow= use
    title: str = "Interactive Format"
    description: str = ""  # one or two sentences under the title (markdown)
    language: str = "auto"  # UI language: "en", "zh" (Simplified Chinese) or "auto" (the browser's)
    theme: str = "default"  # a built-in Gradio theme; applies to the flow the app starts with
    persona: str | None = None  # the system prompt; ask for short answers (replies cut at the token limit read worst)
    welcome: str = ""  # shown in the empty chat
    examples: tuple[str, ...] = ()  # prompts a click puts in the input box
    quick_replies: tuple[str, ...] = ()  # buttons that send their text at once
    modalities: tuple[str, ...] = MODALITIES  # "text" always; "image" and/or "voice" allow uploads / the mic
    speech_languages: tuple[str, ...] = SPEECH_LANGUAGES  # what voice turns are heard as; one: forced
    candidates: int | None = None  # N replies sampled per turn
    lam: float | None = None  # λ in λ·D + (1−λ)·J
    voice_replies: bool = False  # replies are spoken aloud from the start (the UI's speaker toggle begins on)
    models: tuple[tuple[str, str], ...] = ()  # (key, spec) pairs overriding [models]; env and flags still win
    # The texts in another UI language, from the [zh] / [en] tables: ((language, ((key, value), ...)), ...).
    # A page in that language shows them (a flow with language "auto" serves both).
    translations: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    path: Path | None = field(default=None, compare=False)  # where it was read from

    def in_language(self, language: str) -> "Flow":
        """This flow with its texts in `language` ("en" / "zh") where the flow gives them, else as written."""
        texts = dict(self.translations).get(language)
        return dataclasses.replace(self, **dict(texts)) if texts else self

    def overrides(self) -> dict[str, dict[str, Any]]:
        """The settings this flow changes, as {section: {field: value}} for settings.load.merge."""
        out: dict[str, dict[str, Any]] = {"server": {"title": self.title}}
        generation = {"system_prompt": self.persona, "num_candidates": self.candidates, "lam": self.lam}
        generation = {k: v for k, v in generation.items() if v is not None}
        if generation:
            out["generation"] = generation
        if self.models:
            out["models"] = dict(self.models)
        return out

    def allows(self, kind: str) -> bool:
        """Whether an upload of this kind (a key of readers.READERS: "image", "audio") is welcome in this flow."""
        reader = reader_for(kind)
        return (reader.modality if reader else kind) in self.modalities


def shipped_flows() -> list[Path]:
    """The flow files that come with the app, by name."""
    return sorted(FLOWS_DIR.glob("*.toml"))
