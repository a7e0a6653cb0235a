"""Text in pictures: rapidocr's bundled PP-OCR models on pictures rendered here, in the caption and the prompt."""

from __future__ import annotations

import copy
import dataclasses
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data

from interactive_format.engine.chat import ChatEngine
from interactive_format.config import AppConfig, GenerationConfig, ModelsConfig
from interactive_format.ranking.ranking import Reranker
from interactive_format.errors import ModelLoadError
from interactive_format.media.ocr import TextReader, load_reader
from interactive_format.media.vision import TEXT_HEADING, UNCLEAR, Captioner

from ..fakes import FakeGenerator

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")  # Debian fonts-wqy-zenhei: Chinese and Latin glyphs
SIGN = ("欢迎光临北京烤鸭店", "Open 9:00-21:00")


def render(lines, size=(560, 200), background=None, font_px=36, fill="black", stroke=0) -> Image.Image:
    """`lines` drawn top to bottom on white (or on `background`, resized)."""
    img = Image.new("RGB", size, "white") if background is None else background.convert("RGB").resize(size)
    draw, font = ImageDraw.Draw(img), ImageFont.truetype(str(FONT), font_px)
    for i, line in enumerate(lines):
        draw.text((20, 20 + i * int(font_px * 1.6)), line, font=font, fill=fill, stroke_width=stroke, stroke_fill="white")
    return img


def squash(text: str) -> str:
    """Without whitespace, full-width forms as their plain ones (the recogniser writes ￥ for ¥, ： for :)."""
    return "".join(unicodedata.normalize("NFKC", text).split())


@pytest.fixture(scope="module")
def reader() -> TextReader:
    reader = load_reader("rapidocr")
    assert reader is not None, "rapidocr and onnxruntime are in requirements.lock"
    return reader


@pytest.fixture(scope="module")
def captioner(cache_dir, reader) -> Captioner:
    return Captioner("embedded:imagenet-tags", cache_dir, reader=reader)


def test_a_reader_loads_its_models_on_the_first_picture_outside_the_time_budget():
    """Without a warm-up (IF_WARMUP=0, or a picture sent before the warm-up behind the page reached the reader)
    the first read loads the three models first; the picture's time budget starts after that."""
    reader = load_reader("rapidocr", warm_up=False)
    assert reader is not None and reader._engine is None  # nothing loaded at start
    reader.options = dataclasses.replace(reader.options, budget_s=0.5)  # less than loading takes here
    read = reader.read(render(SIGN))
    assert reader._engine is not None
    assert [squash(line) for line in read.lines] == [squash(line) for line in SIGN] and not read.truncated, read


def test_reads_chinese_and_english_lines_in_order(reader):
    read = reader.read(render(SIGN))
    assert [squash(line) for line in read.lines] == [squash(line) for line in SIGN], read
    assert min(read.scores) > 0.9 and read.orientation == 0


def test_mixed_chinese_and_english_on_one_line(reader):
    read = reader.read(render(["营业时间 Opening hours", "周一至周五 Mon-Fri 8:30"], size=(640, 180), font_px=32))
    assert squash(read.text) == squash("营业时间 Opening hours\n周一至周五 Mon-Fri 8:30"), read


@pytest.mark.parametrize("turn, orientation", [(90, 270), (180, 180), (270, 90)])  # PIL turns anticlockwise
def test_turned_photos_are_read_in_reading_order(reader, turn, orientation):
    sign = render((*SIGN, "Tel 010-6512 3456"), size=(560, 240))
    read = reader.read(sign.rotate(turn, expand=True))
    assert [squash(line) for line in read.lines] == [squash(s) for s in (*SIGN, "Tel 010-6512 3456")], read
    assert read.orientation == orientation


def test_text_on_a_busy_photo(reader):
    photo = Image.fromarray(data.astronaut())
    read = reader.read(render(["限时特价 ¥39", "SALE 50% OFF"], size=(512, 512), background=photo, font_px=48, stroke=3))
    assert squash(read.text) == squash("限时特价 ¥39\nSALE 50% OFF"), read


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_small_screenshot_text_is_read(reader, size):
    """14 px text, as on a real screenshot: the detector sees the picture at no less than half its size."""
    lines = ("Order number A58213, shipped Friday", "订单已确认，客服电话 400-800-1234")
    img = Image.new("RGB", size, (250, 250, 250))
    draw, font = ImageDraw.Draw(img), ImageFont.truetype(str(FONT), 14)
    for i, line in enumerate(lines):
        draw.text((40, 80 + i * 22), line, font=font, fill=(30, 30, 30))
    assert [squash(line) for line in reader.read(img).lines] == [squash(line) for line in lines]
    assert reader.engine.text_det.limit_side_len == size[0] // 2  # 640: 60 % of the detector work at 960


def test_words_side_by_side_stay_on_one_line(reader):
    img = Image.new("RGB", (700, 120), "white")
    draw, font = ImageDraw.Draw(img), ImageFont.truetype(str(FONT), 34)
    draw.text((20, 40), "Total", font=font, fill="black")
    draw.text((520, 40), "¥128.00", font=font, fill="black")
    read = reader.read(img)
    assert len(read.lines) == 1 and read.lines[0].startswith("Total") and read.lines[0].endswith("128.00"), read


def with_options(reader: TextReader, **changes) -> TextReader:
    """The same loaded models, read with other options."""
    other = copy.copy(reader)
    other.options = dataclasses.replace(reader.options, **changes)
    return other


def test_long_text_is_capped_at_a_line_end(reader):
    lines = [f"Line {i} of the receipt" for i in range(8)]
    short = with_options(reader, max_chars=60)
    read = short.read(render(lines, size=(520, 480), font_px=30))
    assert read.truncated and len(read.text) <= 62 and read.text.endswith("…"), read
    assert read.lines[0] == "Line 0 of the receipt"


def test_low_confidence_lines_are_dropped(reader):
    strict = with_options(reader, min_score=1.01, min_score_short=1.01)  # nothing is that sure
    assert strict.read(render(SIGN)).lines == ()


def test_unknown_reader_spec_and_off():
    assert load_reader("off") is None
    with pytest.raises(ModelLoadError, match="use 'rapidocr' or 'off'"):
        load_reader("tesseract")
    with pytest.raises(ValueError, match="models.ocr"):
        AppConfig(models=ModelsConfig(ocr="tesseract"))


def test_missing_package_is_one_clear_warning(monkeypatch, caplog):
    """rapidocr is looked for without importing it (over a second): as Python's import system would find it."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "rapidocr" else real(name, *a, **k))
    with caplog.at_level("WARNING"):
        assert load_reader("rapidocr") is None
    (record,) = [r for r in caplog.records if "Text in pictures is off" in r.getMessage()]
    assert "rapidocr is not installed" in record.getMessage() and "pip install rapidocr==3.10.0 onnxruntime" in record.getMessage()


# --- in the description the model reads --------------------------------------------------------


def test_caption_has_tags_colours_and_the_text(captioner, tmp_path):
    path = tmp_path / "sign.png"
    render(SIGN).save(path)
    caption = captioner.describe(path)
    tags, _, text = caption.text.partition(f" {TEXT_HEADING}\n")
    assert tags.startswith(UNCLEAR) and "Main colours: " in tags  # a sign is no ImageNet object: none is named
    assert [squash(line) for line in text.split("\n")] == [squash(line) for line in SIGN]
    assert caption.text_lines == 2 and 0 < caption.ocr_ms <= caption.ms


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_picture_without_text_adds_no_text_line(captioner, tmp_path, name):
    path = tmp_path / f"{name}.png"
    Image.fromarray(getattr(data, name)()).save(path)
    caption = captioner.describe(path)
    assert TEXT_HEADING not in caption.text and caption.text_lines == 0, caption.text


def test_off_keeps_the_tags_alone(cache_dir, tmp_path):
    path = tmp_path / "sign.png"
    render(SIGN).save(path)
    caption = Captioner("embedded:imagenet-tags", cache_dir, reader=load_reader("off")).describe(path)
    assert TEXT_HEADING not in caption.text and caption.text_lines == 0


def engine_with(captioner: Captioner) -> ChatEngine:
    config = AppConfig(generation=GenerationConfig(num_candidates=1, max_new_tokens=8, turn_timeout_s=30))
    return ChatEngine(config, FakeGenerator(), None, captioner, Reranker(None, 0.5))


def test_several_pictures_in_one_turn_are_read_in_order(captioner, tmp_path):
    first, second = tmp_path / "hours.png", tmp_path / "ticket.png"
    render(SIGN).save(first)
    render(["G1234 北京南 → 上海虹桥", "08:00 开 12:28 到"], size=(620, 180), font_px=32).save(second)
    engine = engine_with(captioner)
    conversation = engine.new_conversation()
    list(engine.respond(conversation, "When does the shop open, and when does my train leave?", [str(first), str(second)]))
    user = conversation.turns[0]
    assert [a.meta.text_lines for a in user.attachments] == [2, 2] and user.error is None
    prompt = engine.generator.prompts[-1][-1]["content"]
    assert prompt.startswith(f"[The user sent 2 pictures.]\n[Picture 1: {UNCLEAR} Main colours: ")
    one, two = prompt.index("[Picture 1: "), prompt.index("[Picture 2: ")
    assert one < prompt.index("9:00-21:00") < two < prompt.index("G1234") and prompt.endswith("leave?")
    from interactive_format.web.rendering import to_messages, turn_result

    labels = [m["content"].split(":*")[0] for m in to_messages(conversation) if isinstance(m["content"], str)]
    assert labels[:2] == ["*Picture 1 tags and text", "*Picture 2 tags and text"]
    captions = turn_result(conversation)["captions"]
    assert len(captions) == 2 and "9:00-21:00" in captions[0] and "G1234" in captions[1]


# --- bad pictures stay handled -----------------------------------------------------------------


def test_bad_pictures_give_a_reply_or_a_clear_message_in_time(captioner, tmp_path):
    huge = Image.new("RGB", (7300, 5470), (200, 190, 170))  # 39.9 megapixels, under the 40 MP limit
    ImageDraw.Draw(huge).text((300, 300), "OPEN 24 HOURS", font=ImageFont.truetype(str(FONT), 400), fill="black")
    huge.save(tmp_path / "huge.png", compress_level=1)
    Image.new("RGB", (1, 1), "red").save(tmp_path / "pixel.png")
    noise = np.random.default_rng(0).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png", compress_level=1)
    Image.new("RGB", (9000, 5000)).save(tmp_path / "over.png", compress_level=1)  # 45 MP: over the limit
    engine = engine_with(captioner)
    for name in ("huge", "pixel", "noise", "over"):
        conversation = engine.new_conversation()
        start = time.perf_counter()
        list(engine.respond(conversation, "What does it say?", [str(tmp_path / f"{name}.png")]))
        seconds = time.perf_counter() - start
        user, last = conversation.turns[0], conversation.turns[-1]
        assert seconds < 20, (name, seconds)
        if name == "over":
            assert "too large (9000×5000 pixels; the limit is 40 megapixels)" in user.error
            continue
        assert user.error is None and last.role == "assistant" and last.reply, (name, user.error, last.error)
        if name == "huge":
            assert "OPEN 24 HOURS" in user.attachments[0].text, user.attachments[0].text
        else:
            assert TEXT_HEADING not in user.attachments[0].text, (name, user.attachments[0].text)


def test_recognition_stops_at_its_time_budget(reader):
    lines = [f"Row {i}: item {i * 7}" for i in range(24)]
    img = render(lines, size=(900, 1400), font_px=30)
    slow = with_options(reader, budget_s=0.0)
    read = slow.read(img)
    assert read.truncated and read.lines == (), read  # nothing recognised once the budget is spent



def test_the_models_line_says_whether_text_is_read(captioner, cache_dir):
    from interactive_format.web.rendering import models_line as _models_line

    assert _models_line(engine_with(captioner)).endswith("pictures `embedded:imagenet-tags` + text `rapidocr`")
    off = Captioner("embedded:imagenet-tags", cache_dir, reader=None)
    assert _models_line(engine_with(off)).endswith("pictures `embedded:imagenet-tags`")


def test_ocr_setting_from_toml_environment_and_flag(tmp_path):
    from interactive_format.settings.load import load_config, parse_args

    assert load_config(environ={}).models.ocr == "rapidocr"
    assert load_config(environ={"IF_OCR": "off"}).models.ocr == "off"
    assert load_config(environ={}, flags=parse_args(["--ocr", "off"])).models.ocr == "off"
    toml = tmp_path / "app.toml"
    toml.write_text('[models]\nocr = "off"\n')
    assert load_config(toml, environ={}).models.ocr == "off"
