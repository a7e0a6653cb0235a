"""Flows: a chat product described in one TOML file — persona, welcome, examples, buttons, modalities, models.

A product team writes `assets/flows/NAME.toml` and starts the app with `--flow` (or `IF_FLOW`);
the UI switches between the shipped flows without a restart. Every key is checked here, and a
bad value is reported with the file, the line and the key, e.g.

    assets/flows/shop.toml, line 7, 'candidates': must be a whole number from 1 to 8 (got "four")

tomllib reports syntax errors with a line but not where a key was defined, so `key_line` finds
that in the source text itself. Nothing here imports the config or the engines: `config.py`
applies a Flow to the settings (see `Flow.overrides`), `engines.FlowSet` serves the flows; the
model specs are checked with `models.parse_spec`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from .knobs import KNOBS
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


class FlowError(ValueError):
    """A flow file that cannot be used; the message names the file, line and key."""


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
        """The settings this flow changes, as {section: {field: value}} for config.merge."""
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


# --- reading a file ------------------------------------------------------------------------------


def load_flow(path: str | Path) -> Flow:
    """Read and check one flow file; FlowError names the file, line and key of the first problem."""
    path = Path(path).expanduser()
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FlowError(f"Cannot read flow file {path}: {e}") from None
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:  # its message carries "(at line L, column C)"
        raise FlowError(f"{path}: not valid TOML: {e}") from None
    return parse_flow(data, source, path)


def parse_flow(data: Mapping[str, Any], source: str, path: Path) -> Flow:
    """A Flow from parsed TOML; `source` is the file's text, for line numbers."""
    check = _Checker(source, path)
    for key in data:
        if key not in FIELDS:
            check.fail(key, f"unknown key{_did_you_mean(key, FIELDS)}. Known keys: {', '.join(FIELDS)}")
    values = {key: FIELDS[key](check, key, value) for key, value in data.items()}
    translations = tuple((lang, values.pop(lang)) for lang in ("zh", "en") if lang in values)
    return Flow(name=path.stem, path=path, translations=translations, **values)


def key_line(source: str, dotted: str) -> int | None:
    """The 1-based line where `dotted` ("title", "models.llm") is defined in TOML text, if found."""
    *table, key = dotted.split(".")
    want = ".".join(table)
    current = ""
    for number, line in enumerate(source.splitlines(), 1):
        header = TABLE_HEADER.match(line)
        if header:
            current = _unquote(header.group(1))
            if current == dotted:  # the table itself, e.g. [models]
                return number
            continue
        assigned = KEY_ASSIGNMENT.match(line)
        if assigned:
            name = _unquote(assigned.group(1))
            if (current, name) == (want, key) or (not current and name == dotted):
                return number
    return None


TABLE_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
KEY_ASSIGNMENT = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)


def _unquote(name: str) -> str:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+)""", name)
    return ".".join(a or b or c for a, b, c in parts)


def _did_you_mean(word: str, known) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Checker:
    """Raises FlowError located at a key's line."""

    def __init__(self, source: str, path: Path) -> None:
        self.source, self.path = source, path

    def fail(self, key: str, problem: str):
        line = key_line(self.source, key)
        where = f"{self.path}, line {line}" if line else str(self.path)
        raise FlowError(f"{where}, '{key}': {problem}")


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:59] + "…"


def _text(limit: int, required: bool = False) -> Callable[[_Checker, str, Any], str]:
    def read(check: _Checker, key: str, value: Any) -> str:
        if not isinstance(value, str):
            check.fail(key, f"must be a string in quotes (got {_shown(value)})")
        if required and not value.strip():
            check.fail(key, "must not be empty")
        if len(value) > limit:
            check.fail(key, f"is {len(value)} characters long; the limit is {limit}")
        return value.strip()

    return read


def _texts(limit: int, item_limit: int = 200) -> Callable[[_Checker, str, Any], tuple[str, ...]]:
    def read(check: _Checker, key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            check.fail(key, f'must be a list of non-empty strings, e.g. ["Hello!"] (got {_shown(value)})')
        if len(value) > limit:
            check.fail(key, f"has {len(value)} entries; at most {limit} are shown")
        long = next((v for v in value if len(v) > item_limit), None)
        if long is not None:
            check.fail(key, f"entry {_shown(long)} is over {item_limit} characters")
        return tuple(v.strip() for v in value)

    return read


def _choice(options: tuple[str, ...]) -> Callable[[_Checker, str, Any], str]:
    def read(check: _Checker, key: str, value: Any) -> str:
        if value not in options:
            check.fail(
                key, f"must be one of {', '.join(options)} (got {_shown(value)}){_did_you_mean(str(value), options)}"
            )
        return value

    return read


def _modalities(check: _Checker, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(v not in MODALITIES for v in value):
        check.fail(key, f'must be a list of {", ".join(MODALITIES)}, e.g. ["text", "voice"] (got {_shown(value)})')
    if "text" not in value:
        check.fail(key, 'must include "text" (the message box is always there)')
    return tuple(m for m in MODALITIES if m in value)


def _speech_languages(check: _Checker, key: str, value: Any) -> tuple[str, ...]:
    options = " and/or ".join(f'"{lang}"' for lang in SPEECH_LANGUAGES)
    if not isinstance(value, list) or not value or any(v not in SPEECH_LANGUAGES for v in value):
        check.fail(key, f'must be a list of {options}, e.g. ["zh"] (got {_shown(value)})')
    if len(set(value)) < len(value):
        check.fail(key, f"names a language twice (got {_shown(value)})")
    return tuple(value)


def _candidates(check: _Checker, key: str, value: Any) -> int:
    low, high = KNOBS["num_candidates"].ui_low, KNOBS["num_candidates"].ui_high  # the settings slider's range
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        check.fail(key, f"must be a whole number from {low:g} to {high:g} (got {_shown(value)})")
    return value


def _lam(check: _Checker, key: str, value: Any) -> float:
    knob = KNOBS["lam"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not knob.allows(value):
        check.fail(key, f"must be a number from {knob.range_text}, e.g. {knob.default:g} (got {_shown(value)})")
    return float(value)


def _flag(check: _Checker, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        check.fail(key, f"must be true or false, without quotes (got {_shown(value)})")
    return value


def _models(check: _Checker, key: str, value: Any) -> tuple[tuple[str, str], ...]:
    from .errors import ModelLoadError
    from .models.specs import parse_spec

    if not isinstance(value, dict):
        check.fail(key, f'must be a table, e.g. [models] with llm = "embedded:smollm2-135m" (got {_shown(value)})')
    for name, spec in value.items():
        where = f"{key}.{name}"
        if name not in MODEL_KEYS:
            check.fail(where, f"unknown model key{_did_you_mean(name, MODEL_KEYS)}. Known: {', '.join(MODEL_KEYS)}")
        if not isinstance(spec, str):
            check.fail(where, f"must be a model spec in quotes (got {_shown(spec)})")
        try:
            if spec not in ("off", "") and not (name == "tts" and spec in ("espeak-ng", "espeak")):
                parse_spec(spec)
        except ModelLoadError as e:
            check.fail(where, str(e))
    return tuple((name, spec) for name, spec in value.items())


TRANSLATED = ("title", "description", "welcome", "examples", "quick_replies")  # what a [zh] / [en] table may set


def _translation(check: _Checker, key: str, value: Any) -> tuple[tuple[str, Any], ...]:
    """A [zh] or [en] table: the flow's texts in that language, each checked like the key it translates."""
    if not isinstance(value, dict):
        check.fail(key, f'must be a table, e.g. [{key}] with title = "…" (got {_shown(value)})')
    for name in value:
        if name not in TRANSLATED:
            check.fail(f"{key}.{name}", f"cannot be translated{_did_you_mean(name, TRANSLATED)}. These can: "
                       f"{', '.join(TRANSLATED)}")  # fmt: skip
    return tuple((name, FIELDS[name](check, f"{key}.{name}", v)) for name, v in value.items())


# Every key a flow file may set, and how its value is checked.
FIELDS: dict[str, Callable[[_Checker, str, Any], Any]] = {
    "title": _text(80, required=True),
    "description": _text(600),
    "language": _choice(LANGUAGES),
    "theme": _choice(THEMES),
    "persona": _text(600, required=True),
    "welcome": _text(1000),
    "examples": _texts(MAX_EXAMPLES),
    "quick_replies": _texts(MAX_QUICK_REPLIES, item_limit=60),
    "modalities": _modalities,
    "speech_languages": _speech_languages,
    "candidates": _candidates,
    "lam": _lam,
    "voice_replies": _flag,
    "models": _models,
    "zh": _translation,
    "en": _translation,
}


def shipped_flows() -> list[Path]:
    """The flow files that come with the app, by name."""
    return sorted(FLOWS_DIR.glob("*.toml"))
