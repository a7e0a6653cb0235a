"""Describe a picture as text, offline.

`load_image` turns an uploaded file into a safe RGB picture (or refuses it with an `InputError`).
`Captioner` describes it: the embedded EfficientNet-Lite0 gives ImageNet tags plus the main
colours ("tags"); any other spec is a transformers image-to-text model ("caption"). With a text
reader (ocr.py) the description ends with the text read from the picture, line by line.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from ..config import ASSETS, Limits
from ..errors import InputError, ModelLoadError, log_failure
from ..models.specs import EMBEDDED, INSTALL_HINT, Spec, embedded_files, parse_spec, role_error
from ..models.hub import hub_error
from ..models.device import resolve_device
from .ocr import TextReader
from ..uploads import checked_size, display_name

log = logging.getLogger(__name__)

CLASSES_FILE = ASSETS / "imagenet_classes.txt"

# --- loading pictures ------------------------------------------------------------------------

_HIGH_DEPTH = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # greyscale modes wider than 8 bits
_WHITE = (255, 255, 255, 255)
_WARNINGS_LOCK = threading.Lock()  # catch_warnings swaps process-wide state; opening is header-only and quick


def load_image(path: str | Path, limits: Limits) -> Image.Image:
    """Decode an uploaded picture into an upright RGB image, or raise InputError saying why not."""
    path = Path(path)
    checked_size(path, limits, "picture")
    with _open(path, limits) as img:
        _check_pixels(img, path, limits)
        _decode(img, path)
        return _to_rgb(_upright(img), path)


def _refuse(path: Path, why: str) -> InputError:
    """An InputError naming the file."""
    return InputError(f"The picture '{display_name(path)}' {why}")


def allowed_formats(limits: Limits) -> list[str]:
    """PIL format names for the file types in `limits.image_types` (only these decoders are used)."""
    extensions = Image.registered_extensions()
    return sorted({extensions[ext] for ext in limits.image_types if ext in extensions})


def _too_many_pixels(path: Path, limits: Limits, size: str) -> InputError:
    """The refusal for a picture whose dimensions exceed the limit."""
    return _refuse(path, f"is too large ({size}; the limit is {limits.max_image_pixels / 1e6:g} megapixels).")


def _open(path: Path, limits: Limits) -> Image.Image:
    """Open lazily (header only) with the allowed decoders; PIL failures become InputError."""
    formats = allowed_formats(limits)
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path, formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse(path, "is too large: it declares more pixels than can be decoded safely.") from None
    except UnidentifiedImageError:
        found = _format_of(path)  # a picture of a kind Pillow reads but this app does not take (TGA, say)?
        if found is None:
            raise _refuse(path, "is damaged or is not a picture file; it could not be opened.") from None
        kinds = ", ".join(limits.image_types)
        raise _refuse(path, f"is a {found} picture, a format not accepted here (accepted: {kinds}).") from None
    except Exception as e:  # a picture's signature, then a header its decoder cannot read: damage, as in _decode
        log.debug("opening %s failed", path, exc_info=True)
        raise _refuse(path, f"is damaged or incomplete and could not be decoded ({e.__class__.__name__}).") from None


def _format_of(path: Path) -> str | None:
    """The picture format Pillow finds in the file's header with all its decoders, None for none."""
    try:
        with Image.open(path) as img:
            return img.format
    except Exception:  # unreadable by every decoder (or a bomb): no picture Pillow knows
        return None


def _check_pixels(img: Image.Image, path: Path, limits: Limits) -> None:
    """Refuse pictures whose header declares more pixels than allowed, before decoding."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise _refuse(path, "has no pixels.")
    if width * height > limits.max_image_pixels:
        raise _too_many_pixels(path, limits, f"{width}×{height} pixels")


def _decode(img: Image.Image, path: Path) -> None:
    """Decode the pixel data (the first frame of an animation); damage becomes InputError."""
    try:
        img.load()
    except Exception as e:  # truncated data, bad checksums, broken plugins
        log.debug("decoding %s failed", path, exc_info=True)
        raise _refuse(path, f"is damaged or incomplete and could not be decoded ({e.__class__.__name__}).") from None


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a broken tag leaves the picture as stored."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception as e:  # malformed EXIF must not cost the user their picture
        log_failure(log, "ignoring unreadable EXIF orientation", e, logging.WARNING)
        return img.copy()


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale a 16/32-bit integer or float greyscale picture into 8-bit 'L'."""
    pixels = np.asarray(img, dtype=np.float64)
    top = float(pixels.max()) if pixels.size else 0.0
    if img.mode.startswith("I;16") or (img.mode == "I" and 255 < top <= 65535):
        scale = 65535.0
    elif img.mode == "F":
        scale = 1.0 if top <= 1.0 else top
    else:
        scale = max(top, 255.0)
    return Image.fromarray(np.clip(pixels / scale * 255.0, 0, 255).round().astype(np.uint8), "L")


def _to_rgb(img: Image.Image, path: Path) -> Image.Image:
    """Convert any decoded mode to RGB; transparency is composited on white."""
    try:
        if img.mode in _HIGH_DEPTH:
            img = _to_8bit(img)
        if img.has_transparency_data:
            background = Image.new("RGBA", img.size, _WHITE)
            background.alpha_composite(img.convert("RGBA"))
            img = background
        return img.convert("RGB")
    except Exception as e:  # a colour mode PIL cannot convert
        log.debug("converting %s (%s) failed", path, img.mode, exc_info=True)
        why = f"uses a colour mode ({img.mode}) that is not supported ({e.__class__.__name__})."
        raise _refuse(path, why) from None


# --- EfficientNet-Lite0 ----------------------------------------------------------------------

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, as in the TF reference.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, kept by the converted checkpoint
INPUT_SIZE = 224
CROP_PADDING = 32  # TF eval: centre crop of 224/(224+32) of the short side, then resize
PIXEL_MEAN, PIXEL_STD = 127.0, 128.0  # EfficientNet-Lite normalisation (all channels)


class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow 'SAME' padding (asymmetric when strided)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad like TF, then convolve."""
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, None, self.stride, 0, 1, self.groups)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excite, with ReLU6 (the Lite variant)."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand, depthwise, project; add the input when shapes match."""
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the parameter names of the efficientnet_lite_pytorch checkpoint."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised 3×H×W pictures."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def load_efficientnet(weights: Path, spec: str) -> EfficientNetLite0:
    """Build the network and load the shipped state dict (strict), in eval mode."""
    model = EfficientNetLite0()
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        why = f"{weights} could not be loaded ({e.__class__.__name__})"
        raise ModelLoadError(f"Model '{spec}': {why}; reinstall it with: {INSTALL_HINT}") from e
    return model.eval()


def read_classes(path: Path = CLASSES_FILE) -> list[str]:
    """The 1000 ImageNet class names, in index order."""
    try:
        names = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ModelLoadError(f"ImageNet class names are missing: {path} could not be read.") from e
    if len(names) != 1000:
        raise ModelLoadError(f"{path} should list 1000 ImageNet classes, one per line; it has {len(names)}.")
    return names


def preprocess(img: Image.Image) -> torch.Tensor:
    """Centre-crop, resize to 224 and normalise like the TF EfficientNet-Lite evaluation."""
    width, height = img.size
    side = max(1, round(min(width, height) * INPUT_SIZE / (INPUT_SIZE + CROP_PADDING)))
    left, top = (width - side) // 2, (height - side) // 2
    crop = img.crop((left, top, left + side, top + side)).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(crop, dtype=np.float32).copy()).permute(2, 0, 1)
    return ((pixels - PIXEL_MEAN) / PIXEL_STD).unsqueeze(0)


# --- colour names ----------------------------------------------------------------------------

# Hue ranges in degrees (upper bound exclusive) and their names; red wraps around 360.
_HUES = (
    (15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (195, "cyan"),
    (255, "blue"), (290, "purple"), (345, "pink"), (361, "red"),
)


def colour_names(img: Image.Image) -> np.ndarray:
    """A plain colour name for every pixel of a small thumbnail."""
    thumb = img.copy()
    thumb.thumbnail((64, 64))
    hsv = np.asarray(thumb.convert("HSV"), dtype=np.float32) / 255.0
    h, s, v = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    hue = np.select([h < bound for bound, _ in _HUES], [name for _, name in _HUES], "red").astype(object)
    hue = np.where((hue == "orange") & (v < 0.75), "brown", hue)  # brown is dim orange
    hue = np.where((hue == "yellow") & (v < 0.55), "olive", hue)
    shade = np.where(v < 0.45, "dark ", np.where((s < 0.45) & (v > 0.8), "light ", ""))
    named = shade.astype(object) + hue
    grey = np.where(v > 0.85, "white", np.where(v > 0.6, "light grey", np.where(v > 0.35, "grey", "dark grey")))
    named = np.where(s < 0.18, grey, named)
    return np.where(v < 0.15, "black", named)


def main_colours(img: Image.Image, most: int = 3, min_share: float = 0.1) -> list[str]:
    """The most common colour names covering at least `min_share` of the picture."""
    names, counts = np.unique(colour_names(img), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    shares = counts[order] / counts.sum()
    picked = [str(names[i]) for i, share in zip(order, shares) if share >= min_share][:most]
    return picked or [str(names[order[0]])]


# --- describers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caption:
    """What a picture shows, as text, and how it was obtained."""

    text: str  # what the picture shows, ready to put in a prompt
    kind: str  # "tags" (ImageNet labels + colours) or "caption" (an image-to-text model's sentence)
    model: str  # the spec that produced it
    ms: float  # time spent describing (model work, not file decoding), reading text included
    text_lines: int = 0  # lines of text read from the picture (0: none found, or no text reader)
    ocr_ms: float = 0.0  # time spent reading text


UNCLEAR = "A picture with no object recognised clearly."  # the tags' opening when no label is likely enough
TEXT_HEADING = "Text in the picture:"  # starts the lines read from a picture, in the description the model reads


class ImageNetTagger:
    """Top ImageNet labels and main colours from the embedded EfficientNet-Lite0."""

    kind = "tags"
    top_k = 3
    min_probability = 0.05  # lower-ranked labels below this are left out
    min_best = 0.10  # a best label below this is a guess (a page of text came out "analog clock (3%)"): none is named

    def __init__(self, spec: Spec, device: str) -> None:
        (weights,) = embedded_files(spec)
        self.classes = read_classes()
        self.device = device
        self.model = load_efficientnet(weights, spec.text).to(device)

    @torch.inference_mode()
    def labels(self, img: Image.Image) -> list[tuple[str, float]]:
        """The top labels with their probabilities, best first (none when even the best is a guess)."""
        probs = self.model(preprocess(img).to(self.device)).softmax(dim=-1)[0].float().cpu()
        values, indices = probs.topk(self.top_k)
        ranked = [(self.classes[i], p) for p, i in zip(values.tolist(), indices.tolist())]
        if ranked[0][1] < self.min_best:
            return []
        return [ranked[0]] + [(name, p) for name, p in ranked[1:] if p >= self.min_probability]

    def __call__(self, img: Image.Image) -> str:
        """'A photo that looks like: …. Main colours: ….' ('A picture with no object recognised clearly. …' when
        no label is likely enough to name)."""
        colours = f"Main colours: {', '.join(main_colours(img))}."
        labels = ", ".join(f"{name} ({p:.0%})" for name, p in self.labels(img))
        return f"A photo that looks like: {labels}. {colours}" if labels else f"{UNCLEAR} {colours}"


class ImageToText:
    """A transformers image-to-text model (BLIP, GIT, VisionEncoderDecoder, …) from the hub or a folder."""

    kind = "caption"
    max_new_tokens = 30

    def __init__(self, spec: Spec, device: str) -> None:
        from transformers import AutoModelForImageTextToText

        if spec.kind == "path" and not Path(spec.name).is_dir():
            raise ModelLoadError(f"Could not load model '{spec.text}': {spec.name} is not a model folder.")
        try:
            self.encode, self.decode = _processors(spec.name)
            model = AutoModelForImageTextToText.from_pretrained(spec.name)
        except (OSError, ValueError, KeyError, ImportError) as e:
            raise hub_error(spec.text, e, example="embedded:imagenet-tags") from e
        self.device = device
        self.model = model.to(device).eval()

    @torch.inference_mode()
    def __call__(self, img: Image.Image) -> str:
        """One generated sentence for the picture."""
        inputs = self.encode(images=img, return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        return self.decode.batch_decode(output, skip_special_tokens=True)[0].strip()


def _processors(source: str):
    """(image encoder, token decoder): a full processor, or an image processor plus tokenizer."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer, ProcessorMixin

    processor = AutoProcessor.from_pretrained(source)
    encode = processor if isinstance(processor, ProcessorMixin) else AutoImageProcessor.from_pretrained(source)
    decode = processor if hasattr(processor, "batch_decode") else AutoTokenizer.from_pretrained(source)
    return encode, decode


class Captioner:
    """Describes pictures with the model named by `spec`."""

    def __init__(
        self,
        spec: str,
        cache_dir: Path,
        device: str = "cpu",
        limits: Limits | None = None,
        reader: TextReader | None = None,
    ) -> None:
        self.spec = spec
        self.cache_dir = Path(cache_dir)  # nothing needs converting yet; kept for a uniform loader API
        self.device = resolve_device(device)
        self.limits = limits or Limits()
        self.reader = reader  # None: no text is read from pictures
        self._describer = self._load(parse_spec(spec))
        log.info("captioner %s ready on %s", spec, self.device)

    def _load(self, spec: Spec) -> ImageNetTagger | ImageToText:
        """The describer for an embedded vision model or an image-to-text model."""
        if spec.kind != "embedded":
            return ImageToText(spec, self.device)
        if EMBEDDED[spec.name].role != "vision":
            raise role_error(spec, "vision")
        return ImageNetTagger(spec, self.device)

    def describe(self, path: str | Path) -> Caption:
        """Load the picture at `path` (InputError if unusable) and describe it."""
        img = load_image(path, self.limits)
        start = time.perf_counter()
        text = self._describer(img)
        read = self.reader.read(img) if self.reader is not None else None
        if read is not None and read.lines:
            text = f"{text} {TEXT_HEADING}\n{read.text}"
        ms = (time.perf_counter() - start) * 1000
        log.debug("described %s in %.0f ms", Path(path).name, ms)
        lines, ocr_ms = (len(read.lines), read.ms) if read is not None else (0, 0.0)
        return Caption(text=text, kind=self._describer.kind, model=self.spec, ms=ms, text_lines=lines, ocr_ms=ocr_ms)
