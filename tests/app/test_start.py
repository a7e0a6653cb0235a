"""Starting the app with a bad config or model spec prints one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


@pytest.mark.parametrize("args", [args for args, _ in BAD_STARTS])
def test_a_bad_start_is_told_before_any_model_or_the_ui_loads(starts, args):
    """A typo in a flag, a spec or a path, or a model server that is down, is told in a second: not after torch,
    the models and Gradio have loaded (9-18 s here), nor after a hub lookup of a missing local path (36 s without
    HF_HUB_OFFLINE)."""
    proc, stderr_file = starts[tuple(args)]
    proc.wait(timeout=180)
    modules = imported(stderr_file.read_text())
    assert "interactive_format" in modules  # the import log is there
    assert not modules & {"torch", "gradio", "xllamacpp", "transformers", "whisper", "onnxruntime"}


@pytest.mark.slow
def test_the_page_answers_before_the_warm_up_and_the_speech_and_picture_models(cache_dir, media, tmp_path, app_process):
    """The start loads the chat model and serves the page; the warm-up runs, and Whisper and the text reader load,
    behind it (6-11 s of the default start here), and a voice turn sent meanwhile is answered."""
    from gradio_client import Client, handle_file

    from ..conftest import free_port

    log = tmp_path / "app.log"
    env = {**os.environ, "IF_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1", "IF_DB": str(tmp_path / "chats.db"),
           "IF_PORT": str(free_port()), "IF_HOST": "127.0.0.1", "IF_WARMUP": "1", "PYTHONUNBUFFERED": "1",
           **TEST_ENV}  # fmt: skip
    with app_process(env, log=log) as url:
        result = Client(url, verbose=False).predict(
            message="", image=None, audio=handle_file(str(media["question"])), candidates=2, temperature=0.7,
            max_new_tokens=16, api_name="/chat",
        )  # fmt: skip
        assert "weather" in result["transcript"].lower()
        deadline = time.monotonic() + 120
        while "models warmed up" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
    text = log.read_text()
    up = text.index("Running on local URL")
    for later in ("speech model embedded:whisper-base ready", "text reader rapidocr ready", "models warmed up"):
        assert up < text.index(later), later
    assert "warming up the" not in text  # no step failed
