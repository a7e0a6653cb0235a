"""The README's screenshot: the app on its embedded defaults answers a question about a picture's text.

    python3 bench/screenshot.py                     # -> assets/screenshot.png

Starts `python app.py` (default models, a throwaway database) on a free loopback port, sends a shop
sign with the question in Debian's chromium, waits for the turn to finish, saves a screenshot and
prints the reply. It exits 1 when the reply does not use the text read from the picture.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"  # Debian fonts-wqy-zenhei
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SIGN = ("欢迎光临北京烤鸭店", "Open 9:00-21:00", "Tel 010-6512 3456")
QUESTION = "When does this restaurant open and close?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign(path: Path) -> Path:
    img = Image.new("RGB", (640, 300), (250, 246, 235))
    draw, font = ImageDraw.Draw(img), ImageFont.truetype(FONT, 40)
    for i, line in enumerate(SIGN):
        draw.text((30, 40 + i * 80), line, font=font, fill=(30, 30, 30))
    img.save(path)
    return path


def wait_up(url: str, app: subprocess.Popen, limit_s: float = 300) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if app.poll() is not None:
            sys.exit(f"the app exited with {app.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    sys.exit(f"the app did not answer at {url} within {limit_s:.0f} s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "assets" / "screenshot.png"))
    ap.add_argument("--app-args", default="", help="extra arguments for app.py, e.g. '--llm embedded:smollm2-135m'")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="screenshot-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--db", str(tmp / "chats.db")]
    app = subprocess.Popen(command + args.app_args.split(), cwd=ROOT, env=os.environ.copy())
    try:
        wait_up(url, app)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_selector("#input-box textarea:not([disabled])", timeout=60_000)
            page.set_input_files("#input-box input[type=file]", [str(sign(tmp / "sign.png"))])
            page.wait_for_function(
                "document.querySelectorAll('#input-box .thumbnail-item, #input-box img').length >= 1"
            )
            page.fill("#input-box textarea", QUESTION)
            page.press("#input-box textarea", "Enter")
            page.wait_for_function("document.querySelector('#status').innerText.startsWith('Sampling')", timeout=60_000)
            page.wait_for_function("document.querySelector('#status').innerText.trim() === 'Ready'", timeout=180_000)
            page.screenshot(path=args.out)
            bubbles = page.locator("#chatbot [data-testid=bot]").all_inner_texts()
            reply = next(b for b in reversed(bubbles) if not b.lstrip().startswith("ℹ"))  # not a notice under it
            browser.close()
    finally:
        app.terminate()
        app.wait(30)
    print("reply:", reply)
    print("written:", args.out)
    opens = re.search(r"9[:：]00|9\s*(am|AM|a\.m\.)", reply)
    uses_text = bool(opens) and bool(re.search(r"21[:：]00|9\s*(pm|PM|p\.m\.)", reply))
    sys.exit(0 if uses_text else 1)


if __name__ == "__main__":
    main()
