"""Text in pictures, measured: OCR character accuracy and latency, and whether replies use the text.

    flock /tmp/bench.lock python3 bench/pictures.py                      # accuracy + latency
    flock /tmp/bench.lock python3 bench/pictures.py --replies --llm SPEC  # + question turns through the engine

22 pictures with text (receipts, signs, screens, tickets, dialogs; 11 Chinese, 11 English), half of
them "photographed-looking" (on a textured background, turned, in perspective, blurred, noisy, JPEG),
are rendered with the fonts on this machine (Debian fonts-wqy-zenhei). Accuracy is 1 − the character
error rate (Levenshtein distance over the characters, whitespace ignored, against the rendered lines).
Latency is what OCR adds to a picture turn (`TextReader.read`), median of 5, for a 1920×1080
screenshot and a 12-megapixel phone photo. With --replies each picture is sent through the app's
ChatEngine (tags + text caption, the given --llm) with a question about its text, and the reply
counts as using the text when it contains the expected answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


@dataclass(frozen=True)
class Picture:
    name: str
    lang: str  # "zh" or "en"
    lines: tuple[str, ...]
    question: str
    answer: str  # the reply uses the text when it contains this
    style: str  # "clean" (screenshot-like) or "photo"


PICTURES = (
    Picture("duck-shop-sign", "zh", ("欢迎光临北京烤鸭店", "营业时间 10:00-22:00"), "这家店几点开门？", "10:00", "photo"),
    Picture("bakery-sign", "en", ("Rosie's Bakery", "Open 7:30-18:00", "Closed Mondays"),
            "What time does the bakery open?", "7:30", "photo"),
    Picture("receipt-en", "en", ("FRESHMART", "Milk 2.49", "Bread 3.10", "TOTAL 5.59"),
            "What is the total on this receipt?", "5.59", "photo"),
    Picture("receipt-zh", "zh", ("华联超市", "苹果 12.50", "牛奶 8.00", "合计 20.50"), "小票上的合计是多少？", "20.5", "photo"),
    Picture("order-en", "en", ("Order confirmed", "Order number A58213", "Delivery Friday 12 December"),
            "What is my order number?", "A58213", "clean"),
    Picture("order-zh", "zh", ("订单已确认", "订单号 20261201", "预计送达 12月5日"), "我的订单号是多少？", "20261201", "clean"),
    Picture("thermostat-en", "en", ("Living room", "21.5°C", "Heating on"),
            "What temperature does the thermostat show?", "21.5", "photo"),
    Picture("thermostat-zh", "zh", ("客厅温度", "23.5°C", "湿度 45%"), "温控器显示的温度是多少？", "23.5", "photo"),
    Picture("boarding-pass", "en", ("BOARDING PASS", "Flight BA117 to London", "Gate 32", "Boarding 14:25"),
            "Which gate does my flight leave from?", "32", "clean"),
    Picture("train-ticket", "zh", ("G1234次 北京南站 开往 上海虹桥", "08:00开 05车12F号", "二等座 ¥553.0"),
            "火车几点开？", "8:00", "clean"),
    Picture("error-dialog-en", "en", ("Error 0x80070005", "Access is denied.", "Contact your administrator."),
            "What error code is shown?", "0x80070005", "clean"),
    Picture("error-dialog-zh", "zh", ("网络连接失败", "错误代码 E102", "请检查网络设置后重试"), "错误代码是什么？", "E102", "clean"),
    Picture("pharmacy-sign", "zh", ("平安大药房", "24小时营业", "电话 6512 3456"), "这家药店的电话是多少？", "6512", "photo"),
    Picture("parking-sign", "en", ("PARKING", "Mon-Sat 8am-6pm", "$2 per hour"), "How much is parking per hour?", "$2",
            "photo"),
    Picture("menu-zh", "zh", ("今日特价", "宫保鸡丁 ¥28", "麻婆豆腐 ¥18"), "宫保鸡丁多少钱？", "28", "photo"),
    Picture("wifi-card", "en", ("WiFi: CafeGuest", "Password: latte2024"), "What is the WiFi password?", "latte2024",
            "clean"),
    Picture("battery-screen", "zh", ("电量 15%", "请及时充电"), "手机电量还剩多少？", "15%", "clean"),
    Picture("museum-sign", "en", ("City Museum", "Tue-Sun 9:30-17:00", "Tickets EUR 12"),
            "When does the museum close?", "17:00", "photo"),
    Picture("bus-stop", "zh", ("38路 公交站", "首班 6:00 末班 22:30"), "末班车几点？", "22:30", "photo"),
    Picture("washing-machine", "en", ("Cotton 40", "Time left 1:25"), "How much time is left on the wash?", "1:25",
            "clean"),
    Picture("hotel-card", "zh", ("前台电话 8001", "早餐 7:00-10:00"), "早餐几点开始？", "7:00", "clean"),
    Picture("medicine-label", "en", ("Take 2 tablets", "every 6 hours", "Do not exceed 8 in 24 hours"),
            "How often should I take the tablets?", "6 hours", "photo"),
)


# --- rendering ---------------------------------------------------------------------------------


def card(lines: tuple[str, ...], font_px: int, rng: random.Random) -> Image.Image:
    """The lines on a plain card (a sign, a receipt, a screen), sized to fit."""
    font = ImageFont.truetype(str(FONT), font_px)
    widths = [font.getbbox(line)[2] for line in lines]
    pad, step = font_px, int(font_px * 1.6)
    size = (max(widths) + 2 * pad, len(lines) * step + 2 * pad - (step - font_px))
    ink, paper = rng.choice([((20, 20, 20), (250, 250, 245)), ((255, 255, 255), (30, 60, 120)), ((10, 40, 10), (235, 240, 200))])
    img = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * step), line, font=font, fill=ink)
    return img


def screenshot(lines: tuple[str, ...], rng: random.Random, size=(1280, 720)) -> Image.Image:
    """A flat window with a title bar and the lines in it."""
    img = Image.new("RGB", size, (242, 242, 242))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, size[0], 40), fill=(60, 64, 72))
    inner = card(lines, rng.choice([28, 32, 36]), rng)
    img.paste(inner, ((size[0] - inner.width) // 2, (size[1] - inner.height) // 2))
    return img


def _perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping output points `dst` to input points `src`."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist()


def texture(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A busy background: a scikit-image photo or coloured noise, blurred."""
    from skimage import data

    name = rng.choice(["brick", "gravel", "grass", "rocket", "coffee", "astronaut"])
    pixels = getattr(data, name)()
    return Image.fromarray(pixels).convert("RGB").resize(size)


def photographed(sign: Image.Image, rng: random.Random, size=(1024, 768), fill: float | None = None) -> Image.Image:
    """The sign on a textured background, in perspective, turned a little, blurred, noisy (saved as JPEG).

    `fill`: the share of the frame's width the sign takes (random 0.4-0.75 when None).
    """
    w, h = sign.size
    fill = fill or rng.uniform(0.4, 0.75)
    scale = min(size[0] * fill / w, size[1] * 0.6 / h)
    sign = sign.resize((int(w * scale), int(h * scale)), Image.Resampling.BICUBIC)
    w, h = sign.size
    j = lambda: rng.uniform(-0.07, 0.07)  # noqa: E731
    dst = [(w * j(), h * j()), (w * (1 + j()), h * j()), (w * (1 + j()), h * (1 + j())), (w * j(), h * (1 + j()))]
    xs, ys = [p[0] for p in dst], [p[1] for p in dst]
    dst = [(x - min(xs), y - min(ys)) for x, y in dst]
    out = (int(max(xs) - min(xs)), int(max(ys) - min(ys)))
    coeffs = _perspective_coeffs([(0, 0), (w, 0), (w, h), (0, h)], dst)
    warped = sign.convert("RGBA").transform(out, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    warped = warped.rotate(rng.uniform(-12, 12), Image.Resampling.BICUBIC, expand=True)
    img = texture(size, rng)
    img.paste(warped, ((size[0] - warped.width) // 2, (size[1] - warped.height) // 2), warped)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 2.0)))
    noise = np.random.default_rng(rng.randrange(2**31)).normal(0, rng.uniform(5, 12), (size[1], size[0], 3))
    pixels = np.asarray(img, np.float32) + noise
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return img


def render(p: Picture, seed: int = 0) -> Image.Image:
    rng = random.Random(f"{p.name}-{seed}")
    if p.style == "clean":
        return screenshot(p.lines, rng)
    return photographed(card(p.lines, 64, rng), rng)


def save(img: Image.Image, path: Path, style: str) -> Path:
    if style == "photo":
        img.save(path, "JPEG", quality=70)
    else:
        img.save(path, "PNG")
    return path


def phone_photo(rng: random.Random) -> Image.Image:
    """A 12-megapixel (4000×3000) photo of a shop sign."""
    sign = card(("欢迎光临北京烤鸭店", "Open 9:00-21:00", "Tel 010-6512 3456"), 150, rng)
    return photographed(sign, rng, size=(4000, 3000), fill=0.5)


def big_screenshot(rng: random.Random) -> Image.Image:
    """A 1920×1080 screenshot with an order confirmation of ten lines."""
    lines = ("Order confirmed - thank you!", "Order number A58213", "1 x Espresso machine  129.00",
             "2 x Coffee beans 1kg  31.80", "Shipping  4.90", "Total  165.70", "Paid by card ending 4242",
             "Delivery: Friday 12 December", "订单已确认，感谢您的购买", "客服电话 400-800-1234")
    return screenshot(lines, rng, size=(1920, 1080))


# --- measuring ---------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def squash(text: str) -> str:
    """Without whitespace, full-width forms as their plain ones (the recogniser writes ￥ for ¥, ： for :)."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def accuracy(reader, folder: Path) -> list[dict]:
    from interactive_format.config import Limits
    from interactive_format.media.vision import load_image

    rows = []
    for p in PICTURES:
        path = save(render(p), folder / f"{p.name}.{'jpg' if p.style == 'photo' else 'png'}", p.style)
        read = reader.read(load_image(path, Limits()))
        truth, got = squash("".join(p.lines)), squash("".join(read.lines))
        edits = levenshtein(truth, got)
        rows.append(dict(name=p.name, lang=p.lang, style=p.style, expected=list(p.lines), read=list(read.lines),
                         chars=len(truth), edits=edits, char_accuracy=round(1 - edits / len(truth), 4),
                         lines_in_order=[squash(x) for x in read.lines] == [squash(x) for x in p.lines],
                         ms=round(read.ms)))
        print(f"{p.name:18} {rows[-1]['char_accuracy']:.3f} {read.ms:6.0f} ms  {read.lines}", flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    def acc(sel):
        sel = list(sel)
        return round(1 - sum(r["edits"] for r in sel) / sum(r["chars"] for r in sel), 4) if sel else None

    return {
        "pictures": len(rows),
        "char_accuracy": acc(rows),
        "char_accuracy_zh": acc(r for r in rows if r["lang"] == "zh"),
        "char_accuracy_en": acc(r for r in rows if r["lang"] == "en"),
        "char_accuracy_clean": acc(r for r in rows if r["style"] == "clean"),
        "char_accuracy_photo": acc(r for r in rows if r["style"] == "photo"),
        "all_lines_in_order": sum(r["lines_in_order"] for r in rows),
    }


def latency(reader, runs: int = 5) -> dict:
    rng = random.Random(7)
    out = {}
    dialog = next(p for p in PICTURES if p.name == "error-dialog-en")
    cases = (("screenshot_1280x720_3_lines", render(dialog)), ("screenshot_1920x1080_10_lines", big_screenshot(rng)),
             ("phone_photo_12mp_3_lines", phone_photo(rng)))
    for name, img in cases:
        reader.read(img)  # warm
        times, cpu = [], []
        for _ in range(runs):
            start = time.process_time()  # CPU seconds of this process (all its threads): robust to a busy machine
            times.append(reader.read(img).ms)
            cpu.append((time.process_time() - start) * 1000)
        lines = reader.read(img).lines
        out[name] = {"median_ms": round(statistics.median(times)), "all_ms": [round(t) for t in times],
                     "median_cpu_ms": round(statistics.median(cpu)), "size": list(img.size), "lines": list(lines)}
        print(name, out[name], flush=True)
    return out


def uses_text(reply: str, answer: str) -> bool:
    """Whether the reply contains the answer (case, width and spaces ignored)."""
    return squash(answer).lower() in squash(reply).lower()


def replies(llm: str, folder: Path, candidates: int, max_new_tokens: int) -> dict:
    """Each picture + its question through the real engine; does the chosen reply contain the answer?"""
    from interactive_format.engine.chat import TurnSettings
    from interactive_format.settings.load import load_config, merge
    from interactive_format.engine.engines import build_engine

    config = merge(load_config(environ={}), {"models": {"llm": llm}})
    engine = build_engine(config)
    settings = TurnSettings(candidates, engine.config.generation.temperature, max_new_tokens, engine.reranker.lam)
    rows = []
    for p in PICTURES:
        path = next(folder.glob(f"{p.name}.*"))
        conversation = engine.new_conversation()
        start = time.perf_counter()
        for _ in engine.respond(conversation, p.question, [str(path)], settings):
            pass
        reply = conversation.turns[-1].reply if conversation.turns[-1].role == "assistant" else ""
        used = uses_text(reply, p.answer)
        rows.append(dict(name=p.name, lang=p.lang, question=p.question, answer=p.answer, reply=reply,
                         caption=conversation.turns[0].attachments[0].text, uses_text=used,
                         s=round(time.perf_counter() - start, 1)))
        print(f"{p.name:18} {'YES' if used else 'no '} {reply[:100]!r}", flush=True)
    rate = sum(r["uses_text"] for r in rows) / len(rows)
    return {"llm": llm, "candidates": candidates, "max_new_tokens": max_new_tokens, "answered": sum(r["uses_text"] for r in rows),
            "of": len(rows), "rate": round(rate, 3), "turns": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "pictures.json"))
    ap.add_argument("--replies", action="store_true", help="also run the question turns through the engine")
    ap.add_argument("--llm", default=None, help="chat model spec for --replies (default: the app's default)")
    ap.add_argument("--candidates", type=int, default=None, help="candidates per turn (default: the app's)")
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--keep", help="write the rendered pictures to this folder")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency runs (e.g. for a --replies run)")
    args = ap.parse_args(argv)

    from interactive_format.settings.load import load_config
    from interactive_format.media.ocr import TextReader, load_reader

    folder = Path(args.keep or tempfile.mkdtemp(prefix="pictures-"))
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    reader = load_reader("rapidocr")
    load_s = time.perf_counter() - start
    result = {
        "command": "python3 bench/pictures.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_before": os.getloadavg(),
        "ocr_load_and_warm_up_s": round(load_s, 2),
    }
    rows = accuracy(reader, folder)
    result["accuracy"] = summary(rows)
    result["latency"] = {}
    if not args.no_latency:
        for threads in (0, 1):  # 0: one per core (the default), 1: one thread
            other = TextReader(dataclasses.replace(reader.options, threads=threads))
            result["latency"]["threads_per_core" if threads == 0 else "threads_1"] = latency(other)
    result["pictures"] = rows
    if args.replies:
        defaults = load_config(environ={})
        llm = args.llm or defaults.models.llm
        result["replies"] = replies(llm, folder, args.candidates or defaults.generation.num_candidates,
                                    args.max_new_tokens or defaults.generation.max_new_tokens)
    result["load_after"] = os.getloadavg()
    result["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result["accuracy"]))
    for threads, cases in result["latency"].items():
        print(threads, {k: (v["median_ms"], v["median_cpu_ms"]) for k, v in cases.items()})
    if args.replies:
        print("replies use the text:", result["replies"]["answered"], "/", result["replies"]["of"])
    print("written:", args.out)


if __name__ == "__main__":
    main()
