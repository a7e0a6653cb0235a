"""A flow file read and checked: every key, and a bad value reported with the file, the line and the key, e.g.

    assets/flows/shop.toml, line 7, 'candidates': must be a whole number from 1 to 8 (got "four")

tomllib reports syntax errors with a line but not where a key was defined, so `key_line` finds that in the
source text itself. The model specs are checked with `models.specs.parse_spec`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tomllib

from ..errors import ModelLoadError
from ..flows import (
    LANGUAGES,
    MAX_EXAMPLES,
    MAX_QUICK_REPLIES,
    MODALITIES,
    MODEL_KEYS,
    SPEECH_LANGUAGES,
    THEMES,
    Flow,
)
from ..knobs import KNOBS
from ..models.specs import parse_spec


class FlowError(ValueError):
    """A flow file that cannot be used; the message names the file, line and key."""


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
