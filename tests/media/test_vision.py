"""Pictures to text: the embedded ImageNet tagger (real weights), the image-to-text loader, bad inputs."""

from __future__ import annotations

import re
import struct
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from interactive_format.config import Limits
from interactive_format.errors import InputError, ModelLoadError
from interactive_format.media.vision import UNCLEAR, Caption, Captioner, load_image


def save(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


def sample(name: str, tmp_path: Path) -> Path:
    """A scikit-image sample picture saved as PNG."""
    return save(Image.fromarray(getattr(data, name)()), tmp_path / f"{name}.png")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width`×`height` (valid IHDR) but holds almost no pixel data."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))


@pytest.fixture(scope="module")
def tagger(cache_dir) -> Captioner:
    return Captioner("embedded:imagenet-tags", cache_dir)


# --- the embedded tagger ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, words",
    [
        ("coffee", ("espresso", "coffee", "cup")),
        ("chelsea", ("cat", "Mau", "lynx")),
        ("rocket", ("missile", "projectile", "space shuttle", "rocket")),
    ],
)
def test_tagger_names_what_is_in_the_picture(tagger, tmp_path, name, words):
    caption = tagger.describe(sample(name, tmp_path))
    assert isinstance(caption, Caption)
    assert caption.kind == "tags" and caption.model == "embedded:imagenet-tags" and caption.ms > 0
    top = caption.text.removeprefix("A photo that looks like: ").split(" (")[0]
    assert any(w in top for w in words), caption.text
    assert "Main colours: " in caption.text


def test_a_picture_no_label_fits_names_no_object(tagger, tmp_path):
    """A plain red square: its best ImageNet label is 'velvet' at 5 %, a guess the model would take as a fact."""
    path = tmp_path / "red.png"
    Image.new("RGB", (200, 200), "red").save(path)
    assert tagger.describe(path).text == f"{UNCLEAR} Main colours: red."


def test_tagger_reports_the_coffee_colours(tagger, tmp_path):
    text = tagger.describe(sample("coffee", tmp_path)).text
    colours = text.split("Main colours: ")[1]
    assert "brown" in colours and "blue" not in colours, text


def test_embedded_model_of_another_kind_is_refused(cache_dir):
    with pytest.raises(ModelLoadError, match="embedded:minilm"):
        Captioner("embedded:minilm", cache_dir)


def test_unknown_hub_id_names_the_spec(cache_dir):
    spec = "nobody-here/no-such-captioner-xyz"
    with pytest.raises(ModelLoadError, match=spec):
        Captioner(spec, cache_dir)


def test_missing_model_folder_is_named(cache_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="is not a model folder"):
        Captioner(str(tmp_path / "no-model-here"), cache_dir)


# --- the image-to-text path on a tiny model built here ---------------------------------------

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "a", "cat", "on", "table"]


def build_tiny_captioner(out: Path) -> None:
    """A random ViT→GPT-2 VisionEncoderDecoder whose decoder always says 'cat', plus processors."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
    )
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    vocab = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    vocab.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=vocab, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    encoder = ViTConfig(
        image_size=32, patch_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    decoder = GPT2Config(
        vocab_size=len(WORDS), n_positions=64, n_embd=16, n_layer=1, n_head=2, bos_token_id=1, eos_token_id=2, pad_token_id=0
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(config=config)
    for key, value in {"decoder_start_token_id": 1, "pad_token_id": 0, "eos_token_id": 2}.items():
        setattr(model.generation_config, key, value)
    with torch.no_grad():  # constant final hidden state aligned with the tied embedding of "cat"
        gpt2 = model.decoder.transformer
        direction = torch.randn(16)
        gpt2.ln_f.weight.zero_()
        gpt2.ln_f.bias.copy_(direction)
        gpt2.wte.weight[WORDS.index("cat")] = 10 * direction
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(out)


def build_tiny_blip(out: Path) -> None:
    """A random BLIP captioner with a full BlipProcessor (image processor + BERT tokenizer)."""
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat"]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    tiny = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    text = dict(tiny, vocab_size=7, encoder_hidden_size=16, max_position_embeddings=64,
                bos_token_id=2, sep_token_id=3, pad_token_id=0, eos_token_id=3)
    vision = dict(tiny, image_size=32, patch_size=16)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=16))
    model.save_pretrained(out)
    image_processor = BlipImageProcessorPil(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)


@pytest.fixture(scope="module")
def tiny_captioner_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-captioner")
    build_tiny_captioner(out)
    return out


def test_image_to_text_model_from_a_local_folder(tiny_captioner_dir, cache_dir, tmp_path):
    captioner = Captioner(str(tiny_captioner_dir), cache_dir)
    caption = captioner.describe(sample("chelsea", tmp_path))
    assert caption.kind == "caption" and caption.model == str(tiny_captioner_dir)
    assert isinstance(caption.text, str) and caption.text.split()[0] == "cat", caption.text
    assert "<s>" not in caption.text and "</s>" not in caption.text


def test_blip_style_model_with_a_processor(tmp_path, cache_dir):
    build_tiny_blip(tmp_path)
    caption = Captioner(str(tmp_path), cache_dir).describe(sample("coffee", tmp_path))
    assert caption.kind == "caption" and isinstance(caption.text, str)  # random weights: any text


# --- refused inputs --------------------------------------------------------------------------


def truncated_jpeg() -> bytes:
    buf = BytesIO()
    Image.fromarray(data.coffee()).save(buf, "JPEG", quality=90)
    return buf.getvalue()[: buf.tell() // 2]


@pytest.mark.parametrize(
    "filename, content, message",
    [
        ("empty.png", b"", "is empty"),
        ("noise.png", bytes(range(256)) * 8, "is damaged or is not a picture file; it could not be opened."),
        ("notes.jpg", b"just some text, not a picture\n" * 10, "is damaged or is not a picture file"),
        ("half.jpg", truncated_jpeg(), "damaged or incomplete"),
        ("broken.png", png_header(64, 64), "damaged or incomplete"),
        # a picture's signature, then a header cut short (1 in ~100 of the suite's random "corrupt.png" files)
        ("cut.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00", "is damaged or incomplete and could not be decoded"),
        ("bomb.png", png_header(8000, 8000), "too large (8000×8000 pixels; the limit is 40 megapixels)"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(tmp_path, limits, filename, content, message):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)) as info:
        load_image(path, limits)
    assert filename in str(info.value)


@pytest.mark.parametrize("side", [10_000, 50_000])  # PIL's bomb warning (>89 MP) and error (>179 MP)
def test_pil_decompression_bomb_is_refused_even_under_a_generous_limit(tmp_path, side):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(side, side))
    with pytest.raises(InputError, match="too large: it declares more pixels than can be decoded safely"):
        load_image(path, Limits(max_image_pixels=10**12))


def test_real_picture_over_the_pixel_limit_is_refused(tmp_path):
    path = sample("coffee", tmp_path)  # 600×400
    with pytest.raises(InputError, match=re.escape("(600×400 pixels; the limit is 0.1 megapixels)")):
        load_image(path, Limits(max_image_pixels=100_000))


def test_file_over_the_size_limit_is_refused(tmp_path):
    with pytest.raises(InputError, match="too big"):
        load_image(sample("coffee", tmp_path), Limits(max_file_bytes=1000))


def test_missing_file_and_unlisted_format_are_refused(tmp_path, limits):
    with pytest.raises(InputError, match="could not be found"):
        load_image(tmp_path / "nowhere.png", limits)
    tga = save(Image.new("RGB", (8, 8), "red"), tmp_path / "red.tga")  # PIL reads TGA, limits don't list it
    with pytest.raises(InputError, match=r"'red.tga' is a TGA picture, a format not accepted here \(accepted: \.png"):
        load_image(tga, limits)


# --- odd but good pictures -------------------------------------------------------------------


def test_cmyk_jpeg(tmp_path, limits):
    path = save(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")
    img = load_image(path, limits)
    assert img.mode == "RGB" and img.size == (30, 20)
    r, g, b = img.getpixel((15, 10))
    assert r > 200 and g < 60 and b < 60


def test_transparency_is_composited_on_white(tmp_path, limits):
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.putpixel((5, 5), (255, 0, 0, 255))
    img = load_image(save(rgba, tmp_path / "alpha.png"), limits)
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((5, 5)) == (255, 0, 0)
    palette = rgba.convert("P")  # palette with a transparent index
    palette.info["transparency"] = palette.getpixel((0, 0))
    img = load_image(save(palette, tmp_path / "palette.png", transparency=palette.getpixel((0, 0))), limits)
    assert img.getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path, limits):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))
    path = save(Image.fromarray(ramp), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    img = np.asarray(load_image(path, limits))
    assert img.shape == (4, 256, 3)
    assert img[0, 0, 0] == 0 and img[0, -1, 0] == 255 and 120 <= img[0, 128, 0] <= 135


def test_animated_gif_gives_the_first_frame(tmp_path, limits):
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    path = save(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    img = load_image(path, limits)
    assert img.mode == "RGB" and img.getpixel((8, 8)) == (255, 0, 0)


def test_exif_orientation_is_applied(tmp_path, limits):
    stored = Image.new("RGB", (40, 20), "blue")
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    img = load_image(save(stored, tmp_path / "phone.jpg", exif=exif, quality=95), limits)
    assert img.size == (20, 40)
    top, bottom = img.getpixel((10, 5)), img.getpixel((10, 35))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]
