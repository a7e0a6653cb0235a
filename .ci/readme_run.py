"""CI step: the README's run command, literally, on a fresh virtual environment and an empty model cache.

It reads the first command block under "## Run it" in README.md (so an edit there is what gets
tested), runs it in a new venv with its `pip`/`python` first on PATH — the install part, then the
part after its last `&&` that starts the app, timed apart — waits for the page, sends one
text turn through `gradio_client` (the venv's own), checks that a reply came back, spoken (English
speech from what pip installed: the app runs with the espeak-ng program hidden from PATH), and stops the
app. Then it starts `python app.py` once more on the now-filled cache and times that second start.
Prints the install time and the cold and warm start times, and writes them to
test-artifacts/readme-run.json.

    python3 .ci/readme_run.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL_LIMIT_S = 1800  # a fresh machine downloads the locked packages and the weight packages
START_LIMIT_S = 600  # the first start converts the embedded models (about a minute on 2 cores)
TURN = "Hello! Please answer in one short sentence: what is the capital of France?"

CLIENT = """
import json, sys
from gradio_client import Client
client = Client(sys.argv[1], verbose=False)
result = client.predict(sys.argv[2], None, None, 2, 0.7, 24, api_name="/chat_spoken")
print(json.dumps(result, ensure_ascii=False))
"""


def readme_command(readme: Path) -> str:
    """The first fenced shell block of the README's "Run it" section, as one command line."""
    text = readme.read_text(encoding="utf-8")
    section = re.search(r"^## Run it\s*$(.*?)^## ", text, re.S | re.M)
    if not section:
        sys.exit("README.md has no '## Run it' section")
    block = re.search(r"```(?:bash|sh|shell)?\n(.*?)```", section.group(1), re.S)
    if not block:
        sys.exit("README.md's 'Run it' section has no command block")
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    command = " ".join(ln.rstrip().removesuffix("\\") for ln in lines)
    if "python app.py" not in command:
        sys.exit(f"README.md's run command does not start the app: {command!r}")
    return command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_page(url: str, proc: subprocess.Popen, limit_s: float, log: Path) -> float:
    """Seconds until `url` answers 200; exits with the log's tail if the process ends or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if proc.poll() is not None:
            sys.exit(f"the README command ended (exit {proc.returncode}) before the page came up:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(1)
    sys.exit(f"no page at {url} within {limit_s:.0f} s:\n{tail(log)}")


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(proc: subprocess.Popen) -> None:
    """End the command's whole process group (bash, pip or python app.py)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def path_without(program: str, path: str, folder: Path) -> str:
    """`path` with `program` hidden: each folder holding it is replaced by a folder of links to its other files."""
    parts = []
    for k, part in enumerate(path.split(os.pathsep)):
        if part and (Path(part) / program).exists():
            copy = folder / str(k)
            copy.mkdir(parents=True, exist_ok=True)
            for entry in Path(part).iterdir():
                if entry.name != program and not (copy / entry.name).exists():
                    (copy / entry.name).symlink_to(entry)
            part = str(copy)
        parts.append(part)
    return os.pathsep.join(parts)


def launch(command: str, env: dict, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            ["bash", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args()
    command = readme_command(ROOT / "README.md")
    work = args.keep or Path(tempfile.mkdtemp(prefix="readme-run-"))
    work.mkdir(parents=True, exist_ok=True)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IF_", "VIRTUAL_ENV", "PYTHON"))}
    path = path_without("espeak-ng", env.get("PATH", ""), work / "path")  # what pip gives must be enough
    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}{path}",
        "VIRTUAL_ENV": str(venv),
        "XDG_CACHE_HOME": str(work / "cache"),  # an empty model cache: the one-time conversions run
        "IF_DB": str(work / "chats.db"),
        "IF_PORT": str(port),
        "IF_HOST": "127.0.0.1",
        "PIP_ROOT_USER_ACTION": "ignore",
    }
    # pip's own download cache stays where it is (a fresh machine downloads instead; only time differs).
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    url = f"http://127.0.0.1:{port}/"
    log = work / "readme-run.log"
    install, run = command.rsplit("&&", 1)
    if "python app.py" not in run:
        sys.exit(f"README.md's run command must end in '&& python app.py ...': {command!r}")
    print(f"README command, in a fresh venv ({venv}):\n  {command}", flush=True)
    began = time.monotonic()
    with log.open("wb") as out:
        done = subprocess.run(
            ["bash", "-c", install], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_LIMIT_S
        )
    if done.returncode != 0:
        sys.exit(f"the README's install command failed (exit {done.returncode}):\n{tail(log)}")
    install_s = time.monotonic() - began
    print(f"installed in {install_s:.0f} s; starting the app on an empty model cache", flush=True)
    proc = launch(run, env, log)
    try:
        cold_s = wait_for_page(url, proc, START_LIMIT_S, log)
        answer = subprocess.run(
            [str(venv / "bin" / "python"), "-c", CLIENT, url, TURN], capture_output=True, text=True, timeout=300
        )
        if answer.returncode != 0:
            sys.exit(f"the text turn failed:\n{answer.stderr[-3000:]}\n{tail(log)}")
        result = json.loads(answer.stdout.strip().splitlines()[-1])
        reply = result.get("reply", "").strip()
        if not reply or len(result.get("candidates", [])) != 2:
            sys.exit(f"no reply came back: {result}\n{tail(log)}")
        if not result.get("audio") or result.get("audio_seconds", 0) <= 0:
            sys.exit(f"the reply was not spoken: {result.get('audio_notes')}\n{tail(log)}")
    finally:
        stop(proc)
    warm_log = work / "readme-run-warm.log"
    proc = launch(run, env, warm_log)
    try:
        warm_s = wait_for_page(url, proc, START_LIMIT_S, warm_log)
    finally:
        stop(proc)
    times = {"install_s": install_s, "cold_start_s": cold_s, "warm_start_s": warm_s, "reply": reply}
    times["reply_audio_s"] = result["audio_seconds"]
    print(json.dumps(times, ensure_ascii=False, indent=1))
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "readme-run.json").write_text(json.dumps(times, ensure_ascii=False, indent=1), encoding="utf-8")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("README run command: OK", flush=True)


if __name__ == "__main__":
    main()
