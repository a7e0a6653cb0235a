"""Starting the app with a bad config or model spec prints one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import TEST_ENV

ROOT = Path(__file__).resolve().parents[2]
BAD_STARTS = [
    (["--llm", "embedded:nope"], "Unknown model spec 'embedded:nope'"),
    (["--llm", "./no-such-model-dir"], "does not exist"),
    (["--asr", "embedded:minilm"], "embedded:minilm"),
    (["--config", "missing.toml"], "missing.toml"),
    (["--llm", "openai:http://127.0.0.1:9/v1"], "Could not reach the OpenAI-compatible model server"),
    (["--llm", "openai:localhost:8000"], "needs a server URL"),
    (["--llm", "embedded:whisper-base"], "is not a chat model"),
]
REACHED = ("openai:http://127.0.0.1:9/v1",)  # a bad start only trying the server can tell: the rest is told at once


@pytest.fixture(scope="module")
def starts(cache_dir, tmp_path_factory):
    """Every bad start at once (separate processes: they share the cores instead of queueing for them), on the
    test models, not warmed up (a start that fails after loading the chat model skips its warm-up runs);
    args -> (process, the file its stderr goes to)."""
    runs = {}
    for args, _ in BAD_STARTS:
        folder = tmp_path_factory.mktemp("start")
        env = {**os.environ, "IF_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1", "IF_DB": str(folder / "chats.db"),
               "IF_WARMUP": "0", **TEST_ENV}  # fmt: skip
        with open(folder / "stderr", "w") as err:
            proc = subprocess.Popen([sys.executable, "-X", "importtime", "app.py", *args], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=err, text=True)  # fmt: skip
        runs[tuple(args)] = proc, folder / "stderr"
    yield runs
    for proc, _ in runs.values():
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("args, expected", BAD_STARTS)
def test_bad_start_is_one_clear_line(starts, args, expected):
    proc, stderr_file = starts[tuple(args)]
    returncode = proc.wait(timeout=180)
    said = [line for line in stderr_file.read_text().splitlines() if not line.startswith("import time:")]
    assert returncode != 0
    assert said[-1].startswith("interactive-format: ") and expected in said[-1]
    assert not any("Traceback" in line for line in said)


def imported(stderr: str) -> set[str]:
    """The top-level packages a process imported (`python -X importtime` writes one line per module)."""
    return {
        line.rsplit("|", 1)[-1].strip().split(".")[0] for line in stderr.splitlines() if line.startswith("import time:")
    }


@pytest.mark.parametrize("args", [args for args, _ in BAD_STARTS if not set(args) & set(REACHED)])
def test_a_bad_start_is_told_before_any_model_or_the_ui_loads(starts, args):
    """A typo in a flag, a spec or a path is told in a second: not after torch, the models and Gradio have
    loaded (9-18 s here), nor after a hub lookup of a missing local path (36 s without HF_HUB_OFFLINE)."""
    proc, stderr_file = starts[tuple(args)]
    proc.wait(timeout=180)
    modules = imported(stderr_file.read_text())
    assert "interactive_format" in modules  # the import log is there
    assert not modules & {"torch", "gradio", "xllamacpp", "transformers", "whisper", "onnxruntime"}
