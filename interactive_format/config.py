"""Configuration: frozen dataclasses, one per section, and which of their fields the outside may set.

A field declared with `env(...)` may also be set by the environment, as IF_<NAME>, and where it has a
`flag`, by a command-line flag; settings/load.py derives both tables from these fields and reads a TOML
file, a flow, the environment and the flags into an AppConfig. Nothing here reads any of them.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from .flows import Flow
from .knobs import KNOBS

ROOT = Path(__file__).resolve().parent.parent  # the project: assets/ and bench/ are found from here
ASSETS = ROOT / "assets"  # shipped with the app (trained D, images)


def env(default: Any = MISSING, *, name: str = "", flag: str | bool = False, help: str = "", **kwargs: Any) -> Any:
    """A field the environment may set too, as IF_<NAME> (the field's name in capitals unless `name` says), and
    with `flag` the command line, as --<flag> (True: the field's name with dashes; a yes/no field's flag sets the
    opposite of its default). `help` is the flag's --help line."""
    return field(default=default, metadata={"env": name or True, "flag": flag, "help": help}, **kwargs)


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
    # Chat model: embedded name, HF id, local path, or openai:URL of a server. The default,
    # Qwen2.5-Coder-1.5B-Instruct (bilingual; SmolLM2-135M writes no usable Chinese, bench/quality/), reads best on
    # the blind labels against the 0.5B (bench/results/models.md); embedded:qwen2.5-coder-0.5b is the light option,
    # embedded:smollm2-135m the smallest.
    llm: str = env(
        "embedded:qwen2.5-coder-1.5b",
        flag=True,
        help="chat model spec (embedded:smollm2-135m, HF id, path, or openai:URL of a server)",
    )
    llm_model: str = env(  # with openai:URL, the model name to request ("" = the first one the server lists)
        "", flag=True, help="with --llm openai:URL, the model name to request (also IF_LLM_MODEL)"
    )
    llm_api_key: str = env("", repr=False)  # with openai:URL, sent as a Bearer token when set
    llm_timeout: float = env(60.0)  # with openai:URL, seconds to wait for the server's next streamed chunk
    # With openai:URL, a local model (spec) that gives J by teacher forcing when the server sends no log-probs;
    # best the same model the server runs (e.g. embedded:smollm2-135m for its GGUF). "" = J unavailable then.
    llm_scorer: str = env("")
    llm_logprobs: bool = env(True)  # with openai:URL, ask the server for log-probs (False: J from llm_scorer, or none)
    asr: str = env(  # speech model; also "embedded:whisper-tiny.en", whisper names
        "embedded:whisper-base", flag=True, help="speech model spec (embedded:whisper-base, whisper name, path)"
    )
    # Spoken replies (media/speaker.py): "embedded:kokoro-82m" (Kokoro-82M ONNX; English phonemes from libespeak-ng
    # in media/espeak_worker.py, Chinese from misaki), "espeak-ng" (the program alone), a Kokoro .onnx path, or "off".
    tts: str = env(
        "embedded:kokoro-82m",
        flag=True,
        help="spoken replies: embedded:kokoro-82m (default), espeak-ng, a Kokoro .onnx, or off",
    )
    tts_voice_en: str = env("")  # "" = the engine's default (Kokoro: jm_kumo; espeak-ng: en-us)
    tts_voice_zh: str = env("")  # "" = the engine's default (Kokoro: jm_kumo; espeak-ng: cmn)
    tts_speed: float = env(  # 0.5 (slow) to 2.0 (fast)
        1.0, flag=True, help="speaking rate of spoken replies, 0.5 to 2.0 (also IF_TTS_SPEED)"
    )
    tts_threads: int = env(1)  # onnxruntime threads for Kokoro (the chat model streams beside it; bench/tts.py)
    captioner: str = env(  # or an image-to-text model (HF id / path)
        "embedded:imagenet-tags", flag=True, help="image model spec (embedded:imagenet-tags or image-to-text id)"
    )
    ocr: str = env(  # text in pictures: "rapidocr" (PP-OCR, Chinese + English, models in the package) or "off"
        "rapidocr", flag=True, help="text in pictures: rapidocr (default) or off (also IF_OCR)"
    )
    discriminator: str = env(  # trained D; "off" -> likelihood-only ranking
        str(ASSETS / "discriminator"),
        flag=True,
        help="trained discriminator directory ('off': rank by likelihood only)",
    )
    # The ranking's signal weights, fitted on the reply-quality labels (ranking/ranking.py); "off": the seed ranking,
    # the fewest defects then λ·D + (1−λ)·J (λ applies only then).
    ranking: str = env(
        str(ASSETS / "ranking.json"),
        flag=True,
        help="fitted ranking weights (JSON; 'off': fewest defects, then λ·D + (1−λ)·J)",
    )
    # The text encoder under D ("" = the one D was trained on). The same weights by another
    # spec, e.g. "sentence-transformers/all-MiniLM-L6-v2" on a Space without the weight packages.
    discriminator_encoder: str = env("")
    cache_dir: Path = env(default_factory=default_cache_dir)  # converted weights live here
    device: str = env("auto", flag=True, help="auto, cpu or cuda")  # "auto" (CUDA if present), "cpu", "cuda:1", ...
    dtype: str = env(  # chat model: "auto" (bf16 on CUDA, fp32 on CPU), "bfloat16", "float32", "float16"
        "auto", flag=True, help="chat model dtype: auto, bfloat16, float32 or float16"
    )
    # Chat engine: "auto" = llama.cpp for GGUF models (embedded or a .gguf path) on CPU, transformers otherwise
    # (GPUs, Hugging Face ids, training); or "llamacpp" / "transformers".
    llm_backend: str = env("auto")
    # llama.cpp threads; 0 = one per CPU, pinned, where each CPU is its own core and no quota holds them back, else
    # half the usable CPUs (device.llm_threads, llm_pinned_cpus: 2 pinned on a 2-core machine; docs/performance.md)
    llm_threads: int = env(0)
    # Run the models once at start (on CUDA: compile the decode step for every batch size); app.py does it behind
    # the served page. False: Whisper and the text reader load on first use.
    warmup: bool = env(True)


@dataclass(frozen=True)
class GenerationConfig:
    num_candidates: int = env(  # N replies sampled in one batch
        4, name="CANDIDATES", flag="candidates", help="replies sampled per turn"
    )
    temperature: float = 0.7  # sampling temperature (> 0)
    top_p: float = 0.9  # nucleus sampling mass
    max_new_tokens: int = env(128)  # per reply
    context_tokens: int = 2048  # prompt budget; oldest turns are dropped beyond it
    lam: float | None = env(  # λ in score = λ·D + (1−λ)·J; None: the λ chosen on validation when D was trained
        None, flag=True, help="λ in λ·D + (1−λ)·J with --ranking off (default: D's own)"
    )
    # A short-answer instruction: with it, replies end before the token limit (fewer cut off mid-sentence,
    # and a turn lasts as long as its longest candidate); bench/quality/README.md measures it.
    system_prompt: str = "You are a helpful AI assistant. Answer in the user's language, briefly: at most three sentences."
    turn_timeout_s: float = env(  # a reply still not finished after this long ends with a "try again" message
        120.0, name="TURN_TIMEOUT", flag="turn-timeout", help="seconds a reply may take before it is ended"
    )
    # End candidates while they are sampled once they are unlikely to be shown (engine/pruning.py: defects on a
    # prefix, enough finished; weak starts opt-in): a turn of N = 4 then costs less; bench/prune.py measures it.
    # False: all run.
    prune: bool = env(True)


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
    host: str = env("127.0.0.1", flag=True, help="address to serve on (0.0.0.0 for all interfaces)")
    port: int = env(7860, flag=True, help="port to serve on")
    title: str = "Interactive Format"
    concurrency_limit: int = env(2, name="CONCURRENCY")  # turns generated at once
    max_queue: int = env(32)  # turns waiting beyond this are told "busy, try again" at once
    rate_limit: int = env(  # turns one user may start per minute (0: no limit)
        30, flag=True, help="turns one user may start per minute (0: no limit)"
    )
    auth: str = env(  # "user:password": every page and API call must log in (Gradio auth); "" = open
        "", flag=True, help="USER:PASSWORD required to open the app or call its API (also IF_AUTH)"
    )
    hf_login: bool = env(False)  # a "Sign in with Hugging Face" button (a Space with hf_oauth: true)
    mcp: bool = env(  # also serve an MCP server (tool generate_and_rank) at /gradio_api/mcp/
        False, flag=True, help="also serve the MCP tool generate_and_rank"
    )
    upload_max_age_s: int = 86_400  # uploaded files older than this are deleted from Gradio's cache
    debug: bool = env(  # debug logging, which may include what users sent; never on a public server
        False, flag=True, help="debug logging (may log what users send)"
    )


@dataclass(frozen=True)
class StorageConfig:
    db_path: Path = env(  # SQLite file with every user's conversations
        name="DB", flag="db", help="SQLite file for the conversations (also IF_DB)", default_factory=default_db_path
    )
    # False: store nothing — no database file (chats live in memory until the server stops) and each
    # uploaded file is deleted as soon as its turn has read it.
    persist: bool = env(
        True, flag="store-nothing", help="keep no database and delete uploads after use (also IF_PERSIST=false)"
    )


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
        "models.llm_threads": config.models.llm_threads >= 0,
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
