"""Starting the app with a bad config or model spec prints one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--llm", "embedded:nope"], "Unknown model spec 'embedded:nope'"),
        (["--llm", "./no-such-model-dir"], "does not exist"),
        (["--asr", "embedded:minilm"], "embedded:minilm"),
        (["--config", "missing.toml"], "missing.toml"),
        (["--llm", "openai:http://127.0.0.1:9/v1"], "Could not reach the OpenAI-compatible model server"),
        (["--llm", "openai:localhost:8000"], "needs a server URL"),
    ],
)
def test_bad_start_is_one_clear_line(cache_dir, tmp_path, args, expected):
    env = {**os.environ, "IF_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1", "IF_DB": str(tmp_path / "chats.db")}
    run = subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode != 0
    assert expected in run.stderr
    assert "Traceback" not in run.stderr
