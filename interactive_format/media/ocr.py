"""Text in pictures: PP-OCR (Chinese + English) through rapidocr's bundled ONNX models, offline.

`load_reader(spec)` gives a `TextReader` ("rapidocr") or None ("off", or the packages are missing:
one warning names them). `TextReader.read(img)` returns the lines it is confident about, in
reading order, also for photos turned by 90°, 180° or 270°; its work is bounded (the picture is
downscaled first, a noisy picture's boxes are capped, recognition stops at a time budget).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ModelLoadError, log_failure

log = logging.getLogger(__name__)

SPECS = ("rapidocr", "off")
INSTALL = "pip install rapidocr==3.10.0 onnxruntime"  # the versions in requirements.lock


@dataclass(frozen=True)
class OcrOptions:
    """How much work one picture may cost and what counts as read."""

    max_side: int = 1600  # the picture is downscaled to this long side before anything runs
    # The detector sees the picture at half its size, its long side kept within [det_floor, det_side]: at
    # half size it still found 12 px screenshot text (1280x720 and 1920x1080), at 0.42 it lost lines; a
    # 1280x720 screenshot then costs 60 % of the detector work at 960. Small text in huge pictures is lost first.
    det_side: int = 960
    det_floor: int = 640
    max_boxes: int = 80  # text boxes recognised per picture, the largest first (noise makes hundreds)
    min_score: float = 0.75  # recognised lines below this confidence are dropped
    min_score_short: float = 0.93  # lines of one or two characters need this much (texture reads as "8", "T")
    max_chars: int = 600  # the text kept per picture; longer text is cut at a line end, marked "…"
    budget_s: float = 6.0  # recognition stops after this long (the lines read so far are kept)
    # onnxruntime threads (0: one per core). On the shared 2-core dev machine one thread read a 1280×720
    # screenshot in 0.60-0.64 s in every run; one per core took 0.50-1.12 s depending on the other load, at
    # twice the CPU time (spinning workers), which a reply being generated at the same time would lose.
    threads: int = 1


@dataclass(frozen=True)
class ReadText:
    """What a picture says, and how reading it went."""

    lines: tuple[str, ...] = ()  # in reading order
    ms: float = 0.0
    truncated: bool = False  # cut at max_chars, max_boxes or the time budget
    orientation: int = 0  # the page's turn in degrees clockwise (0, 90, 180, 270)
    scores: tuple[float, ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        """The lines joined by newlines ("" when there is no text)."""
        return "\n".join(self.lines)


def load_reader(spec: str, options: OcrOptions | None = None, warm_up: bool = True) -> "TextReader | None":
    """The reader for `spec`: "rapidocr" or "off" (None). Missing packages: a warning, and None."""
    spec = (spec or "off").strip().lower()
    if spec not in SPECS:
        raise ModelLoadError(f"Unknown text reader '{spec}': use 'rapidocr' or 'off'.")
    if spec == "off":
        return None
    missing = [name for name in ("onnxruntime", "rapidocr") if importlib.util.find_spec(name) is None]
    if missing:  # found without importing them: rapidocr takes over a second to import
        log.warning("Text in pictures is off: %s is not installed; install it with: %s", missing[0], INSTALL)
        return None
    reader = TextReader(options)
    if warm_up:
        reader.warm_up()
    return reader


class TextReader:
    """Reads the text lines of a picture with rapidocr (PP-OCR det + direction cls + rec)."""

    name = "rapidocr"

    def __init__(self, options: OcrOptions | None = None) -> None:
        self.options = options or OcrOptions()
        self._engine: Any = None
        self._lock = threading.Lock()  # one picture at a time (waiting counts against the time budget)
        self._loading = threading.Lock()

    @property
    def engine(self) -> Any:
        """rapidocr's engine, its three models loaded on first use (or by `warm_up`)."""
        if self._engine is None:
            with self._loading:
                if self._engine is None:
                    self._engine = self._load()
        return self._engine

    def _load(self) -> Any:
        from rapidocr import RapidOCR

        params = {
            "Global.log_level": "error",
            "Global.text_score": 0.0,  # we filter ourselves
            "Global.max_side_len": self.options.max_side,
            "Det.limit_type": "max",
            "Det.limit_side_len": self.options.det_side,
            "Det.max_candidates": 4 * self.options.max_boxes,
        }
        if self.options.threads > 0:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = self.options.threads
        try:
            engine = RapidOCR(params=params)
            self._load_models(engine)
        except Exception as e:  # a broken install: say which, and what to do
            why = f"The text reader (rapidocr) could not load ({e}); reinstall it with: {INSTALL}"
            raise ModelLoadError(why) from e
        log.info("text reader rapidocr ready")
        return engine

    @staticmethod
    def _load_models(engine: Any) -> None:
        """Load the three ONNX models now (rapidocr loads each on first use), all at once."""
        from rapidocr.main import RapidOCRError

        blank = np.full((48, 96, 3), 255, np.uint8)
        try:
            engine.detect_and_crop(blank, {})
        except RapidOCRError:  # nothing to find on a blank picture: expected
            pass
        engine.cls_and_rotate([blank])
        engine.recognize_txt([blank])

    def warm_up(self) -> None:
        """Run all three models once on a small rendered line."""
        img = Image.new("RGB", (160, 48), "white")
        ImageDraw.Draw(img).text((10, 16), "Open 9:00", fill="black")
        self.read(img)

    def read(self, img: Image.Image) -> ReadText:
        """The confident text lines of `img` (RGB), in reading order."""
        try:
            self.engine  # noqa: B018  loaded on first use, outside the time budget
        except ModelLoadError as e:  # OCR is an extra: a broken install must not cost the user their turn
            log_failure(log, "the text reader could not load", e, logging.WARNING)
            return ReadText()
        start = time.perf_counter()
        with self._lock:
            try:
                self.engine.text_det.limit_side_len = _det_side(max(img.size), self.options)
                lines, scores, orientation, cut = self._read(_downscaled(img, self.options.max_side), start)
            except Exception as e:  # OCR is an extra: a failure must not cost the user their turn
                log_failure(log, "reading text in a picture failed", e, logging.WARNING)
                lines, scores, orientation, cut = [], [], 0, False
        lines, cut_chars = _capped(lines, self.options.max_chars)
        ms = (time.perf_counter() - start) * 1000
        return ReadText(tuple(lines), ms, cut or cut_chars, orientation, tuple(scores))

    def _read(self, img: Image.Image, start: float) -> tuple[list[str], list[float], int, bool]:
        """(lines, their scores, page orientation, whether boxes were left out)."""
        from rapidocr.main import RapidOCRError

        o, engine = self.options, self.engine
        pixels, record = engine.preprocess_img(np.asarray(img)[:, :, ::-1].copy())  # rapidocr works in BGR
        try:
            crops, det = engine.detect_and_crop(pixels, record)
        except RapidOCRError:  # no text found
            return [], [], 0, False
        boxes = np.asarray(det.boxes, dtype=np.float32)
        keep = np.argsort(-_areas(boxes), kind="stable")[: o.max_boxes]
        cut = len(boxes) > len(keep)
        boxes, crops = boxes[keep], [crops[i] for i in keep]
        tall = [_is_tall(b) for b in boxes]
        turned, cls = engine.cls_and_rotate(crops)
        flipped = [label == "180" and score > engine.cfg.Cls.cls_thresh for label, score in cls.cls_res]
        texts, scores = [""] * len(turned), [0.0] * len(turned)
        for first in range(0, len(turned), 12):  # in chunks, so that the budget can stop it
            if time.perf_counter() - start > o.budget_s:
                cut = True
                log.warning("text reading stopped at its %.0f s budget: %d of %d boxes", o.budget_s, first, len(turned))
                break
            rec = engine.recognize_txt(turned[first : first + 12])
            texts[first : first + 12], scores[first : first + 12] = rec.txts, rec.scores
        orientation = _orientation(tall, flipped, [len(t) for t in texts])
        found = [
            (_upright_centre(b, orientation), _height(b), " ".join(t.split()), s)
            for b, t, s in zip(boxes, texts, scores)
            if _confident(t, s, o)
        ]
        lines, line_scores = _reading_order(found)
        return lines, line_scores, orientation, cut


def _confident(text: str, score: float, o: OcrOptions) -> bool:
    """Whether a recognised box is kept: visible characters, and enough confidence for its length."""
    chars = sum(not c.isspace() for c in text)
    return chars > 0 and score >= (o.min_score_short if chars <= 2 else o.min_score)


def _det_side(long_side: int, o: OcrOptions) -> int:
    """The long side the detector sees for a picture whose long side is `long_side` (half of it, bounded)."""
    return max(o.det_floor, min(o.det_side, (long_side + 1) // 2))


def _downscaled(img: Image.Image, max_side: int) -> Image.Image:
    """`img` with its long side at most `max_side` (a 40-megapixel photo costs what a 2.5 MP one does)."""
    if max(img.size) <= max_side:
        return img
    small = img.copy()
    small.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return small


def _areas(boxes: np.ndarray) -> np.ndarray:
    """Area of each quadrilateral (N, 4, 2), by the shoelace formula."""
    x, y = boxes[..., 0], boxes[..., 1]
    return 0.5 * np.abs((x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y).sum(1))


def _sides(box: np.ndarray) -> tuple[float, float]:
    """(width, height) of a quadrilateral whose points run top-left, top-right, bottom-right, bottom-left."""
    width = max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3]))
    height = max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2]))
    return float(width), float(height)


def _is_tall(box: np.ndarray) -> bool:
    """rapidocr turns a crop this tall by 90° before reading it (a line on a page turned sideways)."""
    width, height = _sides(box)
    return height >= 1.5 * max(width, 1.0)


def _height(box: np.ndarray) -> float:
    """The line's height: its short side."""
    return max(min(_sides(box)), 1.0)


def _orientation(tall: list[bool], flipped: list[bool], weights: list[int]) -> int:
    """The page's turn (degrees clockwise) most of the text agrees on.

    A tall box is read after turning it 90° anticlockwise, so upright text there means the page
    was turned clockwise (90), upside-down text that it was turned anticlockwise (270).
    """
    votes = {0: 0, 90: 0, 180: 0, 270: 0}
    for t, f, w in zip(tall, flipped, weights):
        votes[(90 if not f else 270) if t else (180 if f else 0)] += max(w, 1)
    return max(votes, key=lambda k: (votes[k], k == 0))


def _upright_centre(box: np.ndarray, orientation: int) -> tuple[float, float]:
    """The box's centre in the frame of the upright page (only the order matters, not the offset)."""
    x, y = box.mean(0)
    return {0: (x, y), 90: (y, -x), 180: (-x, -y), 270: (-y, x)}[orientation]


def _reading_order(found: list[tuple[tuple[float, float], float, str, float]]) -> tuple[list[str], list[float]]:
    """Boxes grouped into lines (centres within half a line height), top to bottom, each left to right."""
    rows: list[list[tuple[tuple[float, float], float, str, float]]] = []
    for item in sorted(found, key=lambda f: f[0][1]):
        (_, y), height = item[0], item[1]
        if rows:
            row = rows[-1]
            mean_y = sum(f[0][1] for f in row) / len(row)
            if abs(y - mean_y) < 0.5 * min(height, min(f[1] for f in row)):
                row.append(item)
                continue
        rows.append([item])
    lines, scores = [], []
    for row in rows:
        row.sort(key=lambda f: f[0][0])
        lines.append("  ".join(f[2] for f in row))
        scores.append(min(f[3] for f in row))
    return lines, scores


def _capped(lines: list[str], max_chars: int) -> tuple[list[str], bool]:
    """The first lines that fit in `max_chars` (a first line longer than that is cut), and whether any were cut."""
    kept, total = [], 0
    for line in lines:
        if total + len(line) > max_chars:
            if not kept:
                kept.append(line[:max_chars].rstrip() + "…")
            else:
                kept[-1] += " …"
            return kept, True
        kept.append(line)
        total += len(line) + 1
    return kept, False
