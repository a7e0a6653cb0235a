"""The first turn of a fresh app: sent the instant its page answers (the warm-up, Whisper and the text reader still
loading behind the page) against the same first turn sent on another fresh app once its warm-up is done.

PYTHONPATH=. python3 bench/first_turn.py [RUNS [KINDS [OUT]]]   (KINDS: text,voice; app defaults: the 1.5B,
the user's filled model cache; writes bench/results/first-turn-DATE.json; see docs/performance.md)

A text turn and a voice turn (an espeak-ng clip), through the app's /reply API as a new user, N = 4 up to 128
tokens, temperature 0.05. Each turn is the first its app answers: a second turn of the same question would find
its prompt in llama.cpp's cache. Per run: at once, then after the warm-up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date
from pathlib import Path

from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parents[1]
TEXT = "How do I keep my houseplants alive while I'm on vacation?"  # turnbench's en-2: held out from tuning
SPOKEN = "What is a good way to learn new words in a foreign language?"


def start(folder: Path) -> tuple[subprocess.Popen, str, float, Path]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IF_")} | {"IF_DB": str(folder / "chats.db")}
    log = folder / "app.log"
    started = time.perf_counter()
    with log.open("w") as out:
        app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    while True:
        if app.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=5):
                return app, url, time.perf_counter() - started, log
        except OSError:
            time.sleep(0.2)


def turn(client: Client, audio: Path | None) -> tuple[float, str]:
    started = time.perf_counter()
    out = client.predict(conversation_id="", message="" if audio else TEXT, image=None,
                         audio=handle_file(str(audio)) if audio else None, candidates=4, temperature=0.05,
                         max_new_tokens=128, user_id=uuid.uuid4().hex, api_name="/reply")  # fmt: skip
    return time.perf_counter() - started, out["reply"]


def first_turn(folder: Path, audio: Path | None, warm: bool) -> dict:
    """A fresh app's first turn: at once, or (`warm`) once the log says the warm-up is done."""
    folder.mkdir()
    app, url, page_s, log = start(folder)
    try:
        client = Client(url, verbose=False)
        while warm and "models warmed up" not in log.read_text():
            time.sleep(0.2)
        turn_s, reply = turn(client, audio)
        warmed = "models warmed up" in log.read_text()
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(30)
    return {"page_s": round(page_s, 2), "turn_s": round(turn_s, 2), "warm_up_done_at_turn_end": warmed,
            "reply_chars": len(reply)}  # fmt: skip


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    kinds = sys.argv[2].split(",") if len(sys.argv) > 2 else ["text", "voice"]
    out: dict = {"how": __doc__.strip(), "load_average_start": os.getloadavg(), "text": TEXT, "spoken": SPOKEN}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "spoken.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(clip), SPOKEN], check=True)
        for kind, audio in [(k, a) for k, a in (("text", None), ("voice", clip)) if k in kinds]:
            rows = []
            for k in range(runs):
                rows.append({"at_once": first_turn(Path(tmp) / f"{kind}-{k}-at-once", audio, False),
                             "after_warm_up": first_turn(Path(tmp) / f"{kind}-{k}-warm", audio, True)})  # fmt: skip
                print(kind, rows[-1], flush=True)
            at_once = statistics.median(r["at_once"]["turn_s"] for r in rows)
            after = statistics.median(r["after_warm_up"]["turn_s"] for r in rows)
            out[kind] = {"runs": rows, "at_once_s_median": at_once, "after_warm_up_s_median": after,
                         "ratio": round(at_once / after, 2)}  # fmt: skip
    out["load_average_end"] = os.getloadavg()
    path = Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / "bench" / "results" / f"first-turn-{date.today()}.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(path)


if __name__ == "__main__":
    main()
