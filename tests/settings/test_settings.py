"""The settings' names are a contract: every IF_ variable and flag the app has read keeps setting the same field.

The names are derived from the config fields (`config.env`); the tables below are the hand-kept ones they
replaced, copied as they stood, each with a value to set. A field renamed, a name dropped or one added without
a line here fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interactive_format.settings.load import ENV_VARS, FLAGS, load_config, parse_args, parser

# IF_<NAME> -> (section, field, a value to set it to)
ENV_CONTRACT = {
    "IF_LLM": ("models", "llm", "my/model"),
    "IF_LLM_MODEL": ("models", "llm_model", "served-name"),
    "IF_LLM_API_KEY": ("models", "llm_api_key", "sk-test"),
    "IF_LLM_TIMEOUT": ("models", "llm_timeout", 12.5),
    "IF_LLM_SCORER": ("models", "llm_scorer", "embedded:smollm2-135m"),
    "IF_LLM_LOGPROBS": ("models", "llm_logprobs", False),
    "IF_ASR": ("models", "asr", "embedded:whisper-tiny.en"),
    "IF_CAPTIONER": ("models", "captioner", "my/captioner"),
    "IF_TTS": ("models", "tts", "espeak-ng"),
    "IF_TTS_VOICE_EN": ("models", "tts_voice_en", "af_heart"),
    "IF_TTS_VOICE_ZH": ("models", "tts_voice_zh", "zf_xiaobei"),
    "IF_TTS_SPEED": ("models", "tts_speed", 1.25),
    "IF_TTS_THREADS": ("models", "tts_threads", 2),
    "IF_OCR": ("models", "ocr", "off"),
    "IF_DISCRIMINATOR": ("models", "discriminator", "off"),
    "IF_DISCRIMINATOR_ENCODER": ("models", "discriminator_encoder", "embedded:minilm"),
    "IF_RANKING": ("models", "ranking", "off"),
    "IF_CACHE_DIR": ("models", "cache_dir", Path("/tmp/if-cache")),
    "IF_DEVICE": ("models", "device", "cpu"),
    "IF_DTYPE": ("models", "dtype", "bfloat16"),
    "IF_WARMUP": ("models", "warmup", False),
    "IF_LLM_BACKEND": ("models", "llm_backend", "transformers"),
    "IF_LLM_THREADS": ("models", "llm_threads", 2),
    "IF_CANDIDATES": ("generation", "num_candidates", 3),
    "IF_MAX_NEW_TOKENS": ("generation", "max_new_tokens", 64),
    "IF_LAM": ("generation", "lam", 0.25),
    "IF_HOST": ("server", "host", "0.0.0.0"),
    "IF_PORT": ("server", "port", 9100),
    "IF_DB": ("storage", "db_path", Path("/tmp/if-chats.db")),
    "IF_HF_LOGIN": ("server", "hf_login", True),
    "IF_MCP": ("server", "mcp", True),
    "IF_TURN_TIMEOUT": ("generation", "turn_timeout_s", 7.5),
    "IF_PRUNE": ("generation", "prune", False),
    "IF_CONCURRENCY": ("server", "concurrency_limit", 3),
    "IF_MAX_QUEUE": ("server", "max_queue", 5),
    "IF_RATE_LIMIT": ("server", "rate_limit", 7),
    "IF_AUTH": ("server", "auth", "ada:s3cret"),
    "IF_DEBUG": ("server", "debug", True),
    "IF_PERSIST": ("storage", "persist", False),
}

# flag -> (section, field, its arguments after the flag): the FLAGS table, keyed by the flag as parse_args spelled it
FLAG_CONTRACT = {
    "--llm": ("models", "llm", ["my/model"]),
    "--llm-model": ("models", "llm_model", ["served-name"]),
    "--asr": ("models", "asr", ["embedded:whisper-tiny.en"]),
    "--captioner": ("models", "captioner", ["my/captioner"]),
    "--tts": ("models", "tts", ["off"]),
    "--tts-speed": ("models", "tts_speed", ["0.8"]),
    "--ocr": ("models", "ocr", ["off"]),
    "--device": ("models", "device", ["cpu"]),
    "--dtype": ("models", "dtype", ["float16"]),
    "--candidates": ("generation", "num_candidates", ["3"]),
    "--lam": ("generation", "lam", ["0.25"]),
    "--discriminator": ("models", "discriminator", ["off"]),
    "--ranking": ("models", "ranking", ["off"]),
    "--host": ("server", "host", ["0.0.0.0"]),
    "--port": ("server", "port", ["9100"]),
    "--db": ("storage", "db_path", ["/tmp/if-chats.db"]),
    "--mcp": ("server", "mcp", []),
    "--auth": ("server", "auth", ["ada:s3cret"]),
    "--rate-limit": ("server", "rate_limit", ["7"]),
    "--turn-timeout": ("generation", "turn_timeout_s", ["7.5"]),
    "--store-nothing": ("storage", "persist", []),
    "--debug": ("server", "debug", []),
}
FLAG_VALUES = {  # what each flag's text becomes
    "0.8": 0.8, "3": 3, "0.25": 0.25, "9100": 9100, "7": 7, "7.5": 7.5, "/tmp/if-chats.db": Path("/tmp/if-chats.db"),
}


def test_the_derived_env_names_are_todays_exactly():
    assert ENV_VARS == {name: (section, field) for name, (section, field, _) in ENV_CONTRACT.items()}


@pytest.mark.parametrize("name", sorted(ENV_CONTRACT))
def test_each_env_name_still_sets_its_field(name):
    section, field, value = ENV_CONTRACT[name]
    text = str(value).lower() if isinstance(value, bool) else str(value)
    config = load_config(environ={name: text})
    assert getattr(getattr(config, section), field) == value
    assert getattr(getattr(config, section), field) != getattr(getattr(load_config(environ={}), section), field)


def test_the_derived_flags_are_todays_exactly():
    assert set(FLAGS.values()) == {(section, field) for section, field, _ in FLAG_CONTRACT.values()}
    options = {o for a in parser()._actions for o in a.option_strings}
    assert options == {"-h", "--help", "--config", "--flow", *FLAG_CONTRACT}


@pytest.mark.parametrize("flag", sorted(FLAG_CONTRACT))
def test_each_flag_still_sets_its_field(flag):
    section, field, args = FLAG_CONTRACT[flag]
    flags = parse_args([flag, *args])
    value = FLAG_VALUES.get(args[0], args[0]) if args else not getattr(getattr(load_config(environ={}), section), field)
    assert getattr(getattr(load_config(environ={}, flags=flags), section), field) == value
    assert getattr(getattr(load_config(environ={}), section), field) != value


def test_a_flag_wins_over_the_environment_and_bad_values_still_fail():
    flags = parse_args(["--candidates", "2", "--store-nothing"])
    config = load_config(environ={"IF_CANDIDATES": "5", "IF_PERSIST": "true"}, flags=flags)
    assert (config.generation.num_candidates, config.storage.persist) == (2, False)
    with pytest.raises(SystemExit):  # argparse checks the field's type
        parse_args(["--port", "eighty"])
    with pytest.raises(ValueError, match="server.hf_login"):
        load_config(environ={"IF_HF_LOGIN": "maybe"})
