"""CI step: the README's run command, literally, on a fresh virtual environment and an empty model cache.

It reads the first command block under "## Run it" in README.md (so an edit there is what gets
tested), runs it in a new venv with its `pip`/`python` first on PATH and none of the programs a
pip user lacks (ffmpeg, espeak-ng: HIDDEN) — the install part, then the part after its last `&&` that starts
the app, timed apart — waits for the page, sends one text turn through `gradio_client` (the venv's
own), checks that a reply came back, and stops the app. Then it starts `python app.py` once more on
the now-filled cache, times that second start, and in Chromium turns the speaker on and waits until
a spoken reply plays in the page. Prints the install time and the cold and warm start times, and
writes them to test-artifacts/readme-run.json.

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
HIDDEN = ("ffmpeg", "ffprobe", "espeak-ng")  # system programs a pip user does not have: the app must do without them
CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--autoplay-policy=no-user-gesture-required"]  # fmt: skip

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


def bare_path(folder: Path) -> str:
    """A folder of links to this machine's programs but the HIDDEN ones: the PATH of a machine without them."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in sorted(Path(directory).iterdir()) if Path(directory).is_dir() else ():
            link = folder / program.name
            if program.name not in HIDDEN and not link.exists() and os.access(program, os.X_OK):
                link.symlink_to(program)
    return str(folder)


def spoken_reply_in_page(url: str, log: Path) -> None:
    """In Chromium: the speaker toggle on, a turn, and its spoken reply playing in the page's audio element."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#input-box textarea:not([disabled])", timeout=60_000)
            page.locator("#speak-toggle input[type=checkbox]").check(timeout=10_000)
            page.fill("#input-box textarea", "Say hello in one short sentence.")
            page.press("#input-box textarea", "Enter")
            page.wait_for_function(
                "() => { const a = document.querySelector('#reply-audio audio');"
                " return a && (a.currentSrc || a.src) && a.currentTime > 0.2; }",
                timeout=180_000,
            )
        except Exception as e:  # a timeout or a disabled toggle: say what the page and the app said
            sys.exit(f"no spoken reply played in the page ({e.__class__.__name__}: {str(e)[:300]}):\n{tail(log)}")
        finally:
            browser.close()


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
    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}{bare_path(work / 'bin')}",
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
        spoken_reply_in_page(url, warm_log)
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
    print(f"README run command: OK (a spoken reply played in the page without {', '.join(HIDDEN)})", flush=True)


if __name__ == "__main__":
    main()
