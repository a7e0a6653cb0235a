"""Where the settings come from, read into a config.AppConfig. Precedence (later wins): defaults < TOML file
(`--config` / `IF_CONFIG`) < a flow (`--flow` / `IF_FLOW`) < environment (`IF_*`, read only in `env_overrides`)
< command-line flags.

The IF_ variables and the flags are the config fields declared with `config.env`: `ENV_VARS` and `FLAGS` are
derived from those fields, so a new setting is one field and no table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Mapping

import tomllib

from ..config import SECTIONS, AppConfig
from ..flows import FLOWS_DIR, Flow, shipped_flows
from .flow_file import load_flow


def outside_fields() -> list[tuple[str, dataclasses.Field]]:
    """(section, field) of every config field the environment may set (declared with `config.env`), in order."""
    return [(name, f) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls) if f.metadata.get("env")]


def env_name(f: dataclasses.Field) -> str:
    """IF_<NAME>: the name the field's `env` gives, else the field's own in capitals."""
    name = f.metadata["env"]
    return "IF_" + (name if isinstance(name, str) else f.name.upper())


def flag_name(f: dataclasses.Field) -> str | None:
    """--<flag>: the field's `flag`, or (True) its name with dashes; None for a field without a flag."""
    flag = f.metadata.get("flag")
    return "--" + (flag if isinstance(flag, str) else f.name.replace("_", "-")) if flag else None


# IF_<NAME> environment variables and the (section, field) they set.
ENV_VARS = {env_name(f): (section, f.name) for section, f in outside_fields()}  # IF_FLOW and IF_CONFIG: load_config

# Command-line flags (argparse dest: the field's name) and the (section, field) they set.
FLAGS = {f.name: (section, f.name) for section, f in outside_fields() if flag_name(f)}


def _coerce(section: str, name: str, value: Any) -> Any:
    """Convert a TOML/env/flag value to the type of the dataclass field's default."""
    default = getattr(SECTIONS[section](), name)
    if default is None:  # optional numbers (λ: None means "D's own")
        default = 0.0
    if isinstance(default, Path):
        return Path(value).expanduser()
    if isinstance(default, tuple):
        return tuple(value)
    if isinstance(default, bool):
        return _boolean(section, name, value)
    if not isinstance(default, (int, float)):
        return value
    try:
        return type(default)(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid config value for {section}.{name}: {value!r}") from e


def _boolean(section: str, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"invalid config value for {section}.{name}: {value!r} (use true or false)")


def merge(config: AppConfig, overrides: Mapping[str, Mapping[str, Any]]) -> AppConfig:
    """Return `config` with {section: {field: value}} applied; unknown keys raise ValueError."""
    parts = {}
    for section, values in overrides.items():
        if section not in SECTIONS:
            raise ValueError(f"unknown config section [{section}]")
        known = {f.name for f in dataclasses.fields(SECTIONS[section])}
        for key in values:
            if key not in known:
                raise ValueError(f"unknown config key {section}.{key}")
        coerced = {k: _coerce(section, k, v) for k, v in values.items()}
        parts[section] = dataclasses.replace(getattr(config, section), **coerced)
    return dataclasses.replace(config, **parts)


# Gradio's own variables (set by Hugging Face Spaces); the IF_* ones win over them.
GRADIO_ENV_VARS = {"GRADIO_SERVER_NAME": ("server", "host"), "GRADIO_SERVER_PORT": ("server", "port")}


def _overrides(values: Mapping[str, Any], table: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """{section: {field: value}} for the keys of `table` that `values` sets (None/"" = unset)."""
    out: dict[str, dict[str, Any]] = {}
    for key, (section, name) in table.items():
        if values.get(key) not in (None, ""):
            out.setdefault(section, {})[name] = values[key]
    return out


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The only place that reads configuration from environment variables (IF_* win)."""
    return _overrides(environ, {**GRADIO_ENV_VARS, **ENV_VARS})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parser().parse_args(argv)


def parser() -> argparse.ArgumentParser:
    """The app's command line: --config, --flow, and a flag for each config field declared with one."""
    p = argparse.ArgumentParser(description="Interactive Format: multimodal chat with reranked replies")
    p.add_argument("--config", help="TOML config file (also IF_CONFIG)")
    p.add_argument("--flow", help="flow file, e.g. assets/flows/travel-assistant.toml (also IF_FLOW)")
    for section, f in outside_fields():
        if flag := flag_name(f):
            p.add_argument(flag, dest=f.name, help=f.metadata["help"], **_takes(SECTIONS[section], f, flag))
    return p


def _takes(section: type, f: dataclasses.Field, flag: str) -> dict[str, Any]:
    """How a flag takes its value: a yes/no field's flag alone sets the opposite of its default; any other
    flag is followed by a value, checked by argparse as the field's type (int, float) or taken as text."""
    kind = typing.get_type_hints(section)[f.name]
    kind = next((k for k in typing.get_args(kind) if k is not type(None)), kind)  # `float | None`: float
    if kind is bool:
        return {"action": "store_const", "const": not f.default}
    return {"type": kind if kind in (int, float) else None, "metavar": flag[2:].replace("-", "_").upper()}


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: argparse.Namespace | None = None,
    flow: str | Path | Flow | None = None,
) -> AppConfig:
    """Build the config from defaults, a TOML file, a flow, the environment and parsed flags (later wins)."""
    environ = os.environ if environ is None else environ
    path = path or (flags.config if flags else None) or environ.get("IF_CONFIG")
    flow = flow or (getattr(flags, "flow", None) if flags else None) or environ.get("IF_FLOW") or DEFAULT_FLOW
    config = AppConfig()
    if path:
        with open(path, "rb") as f:
            config = merge(config, tomllib.load(f))
    if flow:
        config = with_flow(config, flow if isinstance(flow, Flow) else load_flow(flow))
    config = merge(config, env_overrides(environ))
    if flags is not None:
        config = merge(config, _overrides(vars(flags), FLAGS))
    return config


DEFAULT_FLOW = FLOWS_DIR / "playground.toml"  # the bare chat, when no flow is named


def with_flow(config: AppConfig, flow: Flow) -> AppConfig:
    """`config` with the flow's persona, candidates, λ, title and model specs applied."""
    return dataclasses.replace(merge(config, flow.overrides()), flow=flow)


def flow_configs(
    config: AppConfig, environ: Mapping[str, str] | None = None, flags: argparse.Namespace | None = None
) -> dict[str, AppConfig]:
    """The config of every flow the UI offers: the shipped ones, with the started one (`config`) in its place.

    Each is built like the started one (same file, environment and flags), so IF_LLM and friends
    still win over a flow's model specs.
    """
    configs = {p.stem: load_config(environ=environ, flags=flags, flow=p) for p in shipped_flows()}
    configs[config.flow.name] = config
    return configs
