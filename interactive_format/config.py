"""Configuration: frozen dataclasses filled from defaults, a TOML file, the environment and flags.

Precedence (later wins): defaults < TOML file (`--config` / `IF_CONFIG`) < environment
(`IF_*`, read only in `env_overrides`) < command-line flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tomllib

from .flows import FLOWS_DIR, Flow, load_flow, shipped_flows
from .knobs import KNOBS

ASSETS = Path(__file__).resolve().parent.parent / "assets"  # shipped with the app (trained D, images)


def default_cache_dir() -> Path:
    """Where one-time model conversions are written (XDG cache, overridable)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "interactive_format"


def default_db_path() -> Path:
    """Where conversations are kept (XDG data dir, overridable)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "interactive_format" / "chats.db"


@dataclass(frozen=True)
class ModelsConfig:
    # Chat model: embedded name, HF id, local path, or openai:URL of a server. Qwen2.5-Coder-0.5B-Instruct (bilingual;
    # chosen on bench/quality/: SmolLM2-135M writes no usable Chinese); embedded:smollm2-135m is the smallest.
    llm: str = "embedded:qwen2.5-coder-1.5b"  # read best on the blind labels (bench/results/labels-eval.json)
    llm_model: str = ""  # with openai:URL, the model name to request ("" = the first one the server lists)
    llm_api_key: str = field(default="", repr=False)  # with openai:URL, sent as a Bearer token when set
    llm_timeout: float = 60.0  # with openai:URL, seconds to wait for the server's next streamed chunk
    # With openai:URL, a local model (spec) that gives J by teacher forcing when the server sends no log-probs;
    # best the same model the server runs (e.g. embedded:smollm2-135m for its GGUF). "" = J unavailable then.
    llm_scorer: str = ""
    llm_logprobs: bool = True  # with openai:URL, ask the server for log-probs (False: J from llm_scorer, or none)
    asr: str = "embedded:whisper-base"  # speech model; also "embedded:whisper-tiny.en", whisper names
    # Spoken replies (speaker.py): "embedded:kokoro-82m" (Kokoro-82M ONNX; English phonemes from the espeak-ng
    # program, Chinese from misaki), "espeak-ng" (the program alone), a Kokoro .onnx path, or "off".
    tts: str = "embedded:kokoro-82m"
    tts_voice_en: str = ""  # "" = the engine's default (Kokoro: jm_kumo; espeak-ng: en-us)
    tts_voice_zh: str = ""  # "" = the engine's default (Kokoro: jm_kumo; espeak-ng: cmn)
    tts_speed: float = 1.0  # 0.5 (slow) to 2.0 (fast)
    tts_threads: int = 1  # onnxruntime threads for Kokoro (the chat model streams beside it; bench/tts.py)
    captioner: str = "embedded:imagenet-tags"  # or an image-to-text model (HF id / path)
    ocr: str = "rapidocr"  # text in pictures: "rapidocr" (PP-OCR, Chinese + English, models in the package) or "off"
    discriminator: str = str(ASSETS / "discriminator")  # trained D; "off" -> likelihood-only ranking
    # The ranking's signal weights, fitted on the reply-quality labels (ranking.py); "off": the seed ranking,
    # the fewest defects then λ·D + (1−λ)·J (λ applies only then).
    ranking: str = str(ASSETS / "ranking.json")
    # The text encoder under D ("" = the one D was trained on). The same weights by another
    # spec, e.g. "sentence-transformers/all-MiniLM-L6-v2" on a Space without the weight packages.
    discriminator_encoder: str = ""
    cache_dir: Path = field(default_factory=default_cache_dir)  # converted weights live here
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1", ...
    dtype: str = "auto"  # chat model: "auto" (bf16 on CUDA, fp32 on CPU), "bfloat16", "float32", "float16"
    # Chat engine: "auto" = llama.cpp for GGUF models (embedded or a .gguf path) on CPU, transformers otherwise
    # (GPUs, Hugging Face ids, training); or "llamacpp" / "transformers".
    llm_backend: str = "auto"
    llm_threads: int = 1  # llama.cpp threads; 1 measured best on a shared 2-core CPU (README, "Speed")
    warmup: bool = True  # run the models once at start (on CUDA: compile the decode step for every batch size)


@dataclass(frozen=True)
class GenerationConfig:
    num_candidates: int = 4  # N replies sampled in one batch
    temperature: float = 0.7  # sampling temperature (> 0)
    top_p: float = 0.9  # nucleus sampling mass
    max_new_tokens: int = 128  # per reply
    context_tokens: int = 2048  # prompt budget; oldest turns are dropped beyond it
    lam: float | None = None  # λ in score = λ·D + (1−λ)·J; None: the λ chosen on validation when D was trained
    # A short-answer instruction: with it, replies end before the token limit (fewer cut off mid-sentence,
    # and a turn lasts as long as its longest candidate); bench/quality/README.md measures it.
    system_prompt: str = "You are a helpful AI assistant. Answer in the user's language, briefly: at most three sentences."
    turn_timeout_s: float = 120.0  # a reply still not finished after this long ends with a "try again" message
    # End candidates while they are sampled once they are unlikely to be shown (pruning.py: defects on a prefix,
    # enough finished; weak starts opt-in): a turn of N = 4 then costs less; bench/prune.py measures it. False: all run.
    prune: bool = True


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 25 * 1024 * 1024  # any upload
    max_image_pixels: int = 40_000_000  # width × height after decoding the header
    max_audio_seconds: float = 120.0  # longer clips are refused, not truncated
    max_text_chars: int = 4000  # one message
    image_types: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
    audio_types: tuple[str, ...] = (
        *(".wav", ".flac", ".ogg", ".mp3", ".webm", ".m4a", ".aac", ".opus"),
        *(".aiff", ".aif", ".aifc", ".au", ".caf", ".w64"),  # further formats soundfile reads
    )


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    title: str = "Interactive Format"
    concurrency_limit: int = 2  # turns generated at once
    max_queue: int = 32  # turns waiting beyond this are told "busy, try again" at once
    rate_limit: int = 30  # turns one user may start per minute (0: no limit)
    auth: str = ""  # "user:password": every page and API call must log in (Gradio auth); "" = open
    hf_login: bool = False  # a "Sign in with Hugging Face" button (a Space with hf_oauth: true)
    mcp: bool = False  # also serve an MCP server (tool generate_and_rank) at /gradio_api/mcp/
    upload_max_age_s: int = 86_400  # uploaded files older than this are deleted from Gradio's cache
    debug: bool = False  # debug logging, which may include what users sent; never on a public server


@dataclass(frozen=True)
class StorageConfig:
    db_path: Path = field(default_factory=default_db_path)  # SQLite file with every user's conversations
    # False: store nothing — no database file (chats live in memory until the server stops) and each
    # uploaded file is deleted as soon as its turn has read it.
    persist: bool = True


@dataclass(frozen=True)
class AppConfig:
    models: ModelsConfig = field(default_factory=ModelsConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    limits: Limits = field(default_factory=Limits)
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    flow: Flow = field(default_factory=Flow)  # the chat product: persona, welcome, buttons, language (flows.py)

    def __post_init__(self) -> None:
        validate(self)


def validate(config: AppConfig) -> None:
    """Raise ValueError naming the first bad field."""
    g, lim = config.generation, config.limits
    checks = {
        "generation.num_candidates": KNOBS["num_candidates"].allows(g.num_candidates),
        "generation.temperature": KNOBS["temperature"].allows(g.temperature),
        "generation.top_p": 0 < g.top_p <= 1,
        "generation.max_new_tokens": KNOBS["max_new_tokens"].allows(g.max_new_tokens),
        "generation.context_tokens": g.context_tokens > g.max_new_tokens,
        "generation.lam": g.lam is None or KNOBS["lam"].allows(g.lam),
        "limits.max_file_bytes": lim.max_file_bytes > 0,
        "limits.max_image_pixels": lim.max_image_pixels > 0,
        "limits.max_audio_seconds": lim.max_audio_seconds > 0,
        "limits.max_text_chars": lim.max_text_chars > 0,
        "server.port": 0 <= config.server.port < 65536,
        "server.concurrency_limit": config.server.concurrency_limit >= 1,
        "models.dtype": config.models.dtype in ("auto", "bfloat16", "float32", "float16"),
        "models.llm_timeout": config.models.llm_timeout > 0,
        "models.ocr": config.models.ocr.strip().lower() in ("rapidocr", "off"),
        "models.llm_backend": config.models.llm_backend in ("auto", "llamacpp", "transformers"),
        "models.llm_threads": config.models.llm_threads >= 1,
        "models.tts_speed": 0.5 <= config.models.tts_speed <= 2.0,
        "models.tts_threads": config.models.tts_threads >= 1,
        "server.max_queue": config.server.max_queue >= 1,
        "server.rate_limit": config.server.rate_limit >= 0,
        "server.auth": not config.server.auth or _auth_pair(config.server.auth) is not None,
        "server.upload_max_age_s": config.server.upload_max_age_s >= 1,
        "generation.turn_timeout_s": g.turn_timeout_s > 0,
    }
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"invalid config value for {name}")


def _auth_pair(text: str) -> tuple[str, str] | None:
    """("user", "password") from "user:password"; None if either part is empty."""
    user, _, password = text.partition(":")
    return (user, password) if user and password else None


def auth_pair(config: AppConfig) -> tuple[str, str] | None:
    """The login Gradio asks for, or None for an open app."""
    return _auth_pair(config.server.auth) if config.server.auth else None


SECTIONS = {
    "models": ModelsConfig,
    "generation": GenerationConfig,
    "limits": Limits,
    "server": ServerConfig,
    "storage": StorageConfig,
}

# IF_<NAME> environment variables and the (section, field) they set.
ENV_VARS = {
    "IF_LLM": ("models", "llm"),
    "IF_LLM_MODEL": ("models", "llm_model"),
    "IF_LLM_API_KEY": ("models", "llm_api_key"),
    "IF_LLM_TIMEOUT": ("models", "llm_timeout"),
    "IF_LLM_SCORER": ("models", "llm_scorer"),
    "IF_LLM_LOGPROBS": ("models", "llm_logprobs"),
    "IF_ASR": ("models", "asr"),
    "IF_CAPTIONER": ("models", "captioner"),
    "IF_TTS": ("models", "tts"),
    "IF_TTS_VOICE_EN": ("models", "tts_voice_en"),
    "IF_TTS_VOICE_ZH": ("models", "tts_voice_zh"),
    "IF_TTS_SPEED": ("models", "tts_speed"),
    "IF_TTS_THREADS": ("models", "tts_threads"),
    "IF_OCR": ("models", "ocr"),
    "IF_DISCRIMINATOR": ("models", "discriminator"),
    "IF_DISCRIMINATOR_ENCODER": ("models", "discriminator_encoder"),
    "IF_RANKING": ("models", "ranking"),
    "IF_CACHE_DIR": ("models", "cache_dir"),
    "IF_DEVICE": ("models", "device"),
    "IF_DTYPE": ("models", "dtype"),
    "IF_WARMUP": ("models", "warmup"),
    "IF_LLM_BACKEND": ("models", "llm_backend"),
    "IF_LLM_THREADS": ("models", "llm_threads"),
    "IF_CANDIDATES": ("generation", "num_candidates"),
    "IF_MAX_NEW_TOKENS": ("generation", "max_new_tokens"),
    "IF_LAM": ("generation", "lam"),
    "IF_HOST": ("server", "host"),
    "IF_PORT": ("server", "port"),
    "IF_DB": ("storage", "db_path"),
    "IF_HF_LOGIN": ("server", "hf_login"),
    "IF_MCP": ("server", "mcp"),
    "IF_TURN_TIMEOUT": ("generation", "turn_timeout_s"),
    "IF_PRUNE": ("generation", "prune"),
    "IF_CONCURRENCY": ("server", "concurrency_limit"),
    "IF_MAX_QUEUE": ("server", "max_queue"),
    "IF_RATE_LIMIT": ("server", "rate_limit"),
    "IF_AUTH": ("server", "auth"),
    "IF_DEBUG": ("server", "debug"),
    "IF_PERSIST": ("storage", "persist"),
}  # IF_FLOW (a flow file) is read by load_config


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


# Command-line flags (argparse dest) and the (section, field) they set.
FLAGS = {
    "llm": ("models", "llm"),
    "llm_model": ("models", "llm_model"),
    "asr": ("models", "asr"),
    "captioner": ("models", "captioner"),
    "tts": ("models", "tts"),
    "tts_speed": ("models", "tts_speed"),
    "ocr": ("models", "ocr"),
    "device": ("models", "device"),
    "dtype": ("models", "dtype"),
    "candidates": ("generation", "num_candidates"),
    "lam": ("generation", "lam"),
    "discriminator": ("models", "discriminator"),
    "ranking": ("models", "ranking"),
    "host": ("server", "host"),
    "port": ("server", "port"),
    "db": ("storage", "db_path"),
    "mcp": ("server", "mcp"),
    "auth": ("server", "auth"),
    "rate_limit": ("server", "rate_limit"),
    "turn_timeout": ("generation", "turn_timeout_s"),
    "persist": ("storage", "persist"),
    "debug": ("server", "debug"),
}


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
    p = argparse.ArgumentParser(description="Interactive Format: multimodal chat with reranked replies")
    p.add_argument("--config", help="TOML config file (also IF_CONFIG)")
    p.add_argument("--flow", help="flow file, e.g. assets/flows/travel-assistant.toml (also IF_FLOW)")
    p.add_argument("--llm", help="chat model spec (embedded:smollm2-135m, HF id, path, or openai:URL of a server)")
    p.add_argument("--llm-model", help="with --llm openai:URL, the model name to request (also IF_LLM_MODEL)")
    p.add_argument("--asr", help="speech model spec (embedded:whisper-base, whisper name, path)")
    p.add_argument("--tts", help="spoken replies: embedded:kokoro-82m (default), espeak-ng, a Kokoro .onnx, or off")
    p.add_argument("--tts-speed", type=float, help="speaking rate of spoken replies, 0.5 to 2.0 (also IF_TTS_SPEED)")
    p.add_argument("--captioner", help="image model spec (embedded:imagenet-tags or image-to-text id)")
    p.add_argument("--ocr", help="text in pictures: rapidocr (default) or off (also IF_OCR)")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--dtype", help="chat model dtype: auto, bfloat16, float32 or float16")
    p.add_argument("--candidates", type=int, help="replies sampled per turn")
    p.add_argument("--lam", type=float, help="λ in λ·D + (1−λ)·J with --ranking off (default: D's own)")
    p.add_argument("--discriminator", help="trained discriminator directory ('off': rank by likelihood only)")
    p.add_argument("--ranking", help="fitted ranking weights (JSON; 'off': fewest defects, then λ·D + (1−λ)·J)")
    p.add_argument("--host", help="address to serve on (0.0.0.0 for all interfaces)")
    p.add_argument("--port", type=int, help="port to serve on")
    p.add_argument("--db", help="SQLite file for the conversations (also IF_DB)")
    p.add_argument("--mcp", action="store_true", default=None, help="also serve the MCP tool generate_and_rank")
    p.add_argument("--auth", help="USER:PASSWORD required to open the app or call its API (also IF_AUTH)")
    p.add_argument("--rate-limit", type=int, help="turns one user may start per minute (0: no limit)")
    p.add_argument("--turn-timeout", type=float, help="seconds a reply may take before it is ended")
    p.add_argument("--store-nothing", dest="persist", action="store_const", const=False,
                   help="keep no database and delete uploads after use (also IF_PERSIST=false)")
    p.add_argument("--debug", action="store_const", const=True, help="debug logging (may log what users send)")
    return p.parse_args(argv)


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
