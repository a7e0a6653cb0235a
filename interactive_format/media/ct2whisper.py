"""Convert a CTranslate2 Whisper model (model.bin + config.json) into an openai-whisper checkpoint.

The model.bin layout (binary versions 4-6, see CTranslate2's models/model.cc and
specs/model_spec.py): uint32 version, string spec name, uint32 spec revision, uint32 variable
count, then per variable: string name, uint8 rank, uint32 dims, uint8 dtype id, uint32 byte
count, raw little-endian data; then uint32 alias count and (alias, target) string pairs.
Strings are a uint16 length (including a trailing NUL) followed by the bytes.

CTranslate2 fuses attention projections (self-attention q|k|v in `linear_0`, cross-attention
k|v in `linear_1`); they are split here. Whisper's key projection has no bias: CTranslate2
stores zeros there, and a key bias only shifts every logit of a query equally, so dropping it
is exact. Float16 weights stay float16; int8/int16 weights are dequantized to float32.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = range(4, 7)
# Order of CTranslate2's DataType enum (include/ctranslate2/types.h); 5 is bfloat16.
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),
}
BFLOAT16 = 5
WHISPER_HEAD_DIM = 64  # used only when a model does not store its head counts


class CT2FormatError(ValueError):
    """The file is not a readable CTranslate2 Whisper model."""


@dataclass(frozen=True)
class CT2Model:
    """The contents of a model.bin: spec name, revision and variables (aliases resolved)."""

    spec: str
    revision: int
    version: int
    variables: dict[str, np.ndarray]


class _Reader:
    """Sequential little-endian reads from a byte buffer, with bounds checks."""

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.buf = memoryview(buf)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        """The next `n` bytes."""
        if self.pos + n > len(self.buf):
            raise CT2FormatError(f"model.bin is truncated (needed {n} bytes at offset {self.pos})")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, fmt: str) -> int:
        """One unsigned integer in struct format `fmt` ('B', 'H' or 'I')."""
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        """A uint16-length-prefixed, NUL-terminated UTF-8 string."""
        raw = bytes(self.take(self.uint("H")))
        return raw.split(b"\0", 1)[0].decode("utf-8")


def _variable(r: _Reader) -> tuple[str, np.ndarray]:
    """Read one variable record."""
    name = r.string()
    shape = tuple(r.uint("I") for _ in range(r.uint("B")))
    type_id, nbytes = r.uint("B"), r.uint("I")
    if type_id not in DTYPES:
        raise CT2FormatError(f"variable {name} has unknown dtype id {type_id}")
    dtype = DTYPES[type_id]
    if nbytes != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise CT2FormatError(f"variable {name}: {nbytes} bytes do not match shape {shape}")
    array = np.frombuffer(r.take(nbytes), dtype=dtype).reshape(shape)
    if type_id == BFLOAT16:  # bfloat16 is the top half of a float32: widen losslessly
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return name, array


def read_model_bin(parts: list[Path]) -> CT2Model:
    """Parse a model.bin given as one file or as pieces to concatenate in order."""
    sizes = [p.stat().st_size for p in parts]
    buf = bytearray(sum(sizes))
    view, offset = memoryview(buf), 0
    for part, size in zip(parts, sizes):
        with open(part, "rb") as f:
            if f.readinto(view[offset : offset + size]) != size:
                raise CT2FormatError(f"could not read all of {part}")
        offset += size
    return parse_model_bin(buf)


def parse_model_bin(buf: bytes | bytearray | memoryview) -> CT2Model:
    """Parse the bytes of a model.bin."""
    r = _Reader(buf)
    version = r.uint("I")
    if version not in SUPPORTED_VERSIONS:
        raise CT2FormatError(f"unsupported CTranslate2 binary version {version} (expected 4-6)")
    spec, revision = r.string(), r.uint("I")
    variables = dict(_variable(r) for _ in range(r.uint("I")))
    for _ in range(r.uint("I")):
        alias, target = r.string(), r.string()
        if target in variables:
            variables[alias] = variables[target]
    if r.pos != len(r.buf):
        raise CT2FormatError(f"{len(r.buf) - r.pos} unexpected bytes after the aliases")
    return CT2Model(spec, revision, version, variables)


def _dequantized(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Replace int8/int16 weights that have a `<name>_scale` by float32 values."""
    out = {k: v for k, v in variables.items() if not k.endswith("_scale")}
    for name, value in out.items():
        scale = variables.get(name + "_scale")
        if scale is not None and value.dtype.kind == "i":
            scale = scale.astype(np.float32)
            out[name] = value.astype(np.float32) / (scale[:, None] if scale.ndim else scale)
    return out


def _count_layers(variables: dict[str, np.ndarray], scope: str) -> int:
    """Number of `scope/layer_N/` blocks."""
    found = {int(m.group(1)) for k in variables if (m := re.match(rf"{scope}/layer_(\d+)/", k))}
    if found != set(range(len(found))):
        raise CT2FormatError(f"{scope} layers are not numbered 0..N-1")
    return len(found)


def _heads(variables: dict[str, np.ndarray], scope: str, n_state: int) -> int:
    """Attention head count stored by the spec, else Whisper's 64-wide heads."""
    value = variables.get(f"{scope}/num_heads")
    return int(value) if value is not None else n_state // WHISPER_HEAD_DIM


def dimensions(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """openai-whisper ModelDimensions fields, derived from tensor shapes."""
    conv1 = variables["encoder/conv1/weight"]
    audio_pos = variables["encoder/position_encodings/encodings"]
    text_pos = variables["decoder/position_encodings/encodings"]
    n_audio_state, n_text_state = conv1.shape[0], text_pos.shape[1]
    return {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(audio_pos.shape[0]),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": _heads(variables, "encoder", n_audio_state),
        "n_audio_layer": _count_layers(variables, "encoder"),
        "n_vocab": int(variables["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(text_pos.shape[0]),
        "n_text_state": int(n_text_state),
        "n_text_head": _heads(variables, "decoder", n_text_state),
        "n_text_layer": _count_layers(variables, "decoder"),
    }


def _linear(out: dict[str, np.ndarray], dst: str, v: dict[str, np.ndarray], src: str, bias: bool = True) -> None:
    """Copy a CT2 linear (weight, bias) to a whisper Linear."""
    out[f"{dst}.weight"] = v[f"{src}/weight"]
    if bias:
        out[f"{dst}.bias"] = v[f"{src}/bias"]


def _norm(out: dict[str, np.ndarray], dst: str, v: dict[str, np.ndarray], src: str) -> None:
    """Copy a CT2 layer norm (gamma, beta) to a whisper LayerNorm."""
    out[f"{dst}.weight"] = v[f"{src}/gamma"]
    out[f"{dst}.bias"] = v[f"{src}/beta"]


def _split(out: dict[str, np.ndarray], dst: str, names: tuple[str, ...], v: dict[str, np.ndarray], src: str) -> None:
    """Split a fused CT2 linear into equal parts `names` (a "key" part gets no bias)."""
    weights = np.split(v[f"{src}/weight"], len(names), axis=0)
    biases = np.split(v[f"{src}/bias"], len(names), axis=0)
    for name, w, b in zip(names, weights, biases):
        out[f"{dst}.{name}.weight"] = w
        if name != "key":
            out[f"{dst}.{name}.bias"] = b


def _block(out: dict[str, np.ndarray], dst: str, v: dict[str, np.ndarray], src: str, cross: bool) -> None:
    """Map one encoder or decoder layer."""
    _norm(out, f"{dst}.attn_ln", v, f"{src}/self_attention/layer_norm")
    _split(out, f"{dst}.attn", ("query", "key", "value"), v, f"{src}/self_attention/linear_0")
    _linear(out, f"{dst}.attn.out", v, f"{src}/self_attention/linear_1")
    if cross:
        _norm(out, f"{dst}.cross_attn_ln", v, f"{src}/attention/layer_norm")
        _linear(out, f"{dst}.cross_attn.query", v, f"{src}/attention/linear_0")
        _split(out, f"{dst}.cross_attn", ("key", "value"), v, f"{src}/attention/linear_1")
        _linear(out, f"{dst}.cross_attn.out", v, f"{src}/attention/linear_2")
    _norm(out, f"{dst}.mlp_ln", v, f"{src}/ffn/layer_norm")
    _linear(out, f"{dst}.mlp.0", v, f"{src}/ffn/linear_0")
    _linear(out, f"{dst}.mlp.2", v, f"{src}/ffn/linear_1")


def whisper_state_dict(variables: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, np.ndarray]:
    """openai-whisper state-dict arrays from CT2 variables."""
    v, out = variables, {}
    for conv in ("conv1", "conv2"):
        _linear(out, f"encoder.{conv}", v, f"encoder/{conv}")
    out["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(dims["n_audio_layer"]):
        _block(out, f"encoder.blocks.{i}", v, f"encoder/layer_{i}", cross=False)
    _norm(out, "encoder.ln_post", v, "encoder/layer_norm")
    out["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(dims["n_text_layer"]):
        _block(out, f"decoder.blocks.{i}", v, f"decoder/layer_{i}", cross=True)
    _norm(out, "decoder.ln", v, "decoder/layer_norm")
    return out


def alignment_heads_dump(pairs: list[list[int]], dims: dict[str, int]) -> str | None:
    """The gzip+base85 bool mask `Whisper.set_alignment_heads` expects, or None if unusable."""
    mask = np.zeros((dims["n_text_layer"], dims["n_text_head"]), dtype=bool)
    for pair in pairs:
        layer, head = (int(x) for x in pair)
        if not (0 <= layer < mask.shape[0] and 0 <= head < mask.shape[1]):
            log.warning("ignoring alignment heads: (%d, %d) is outside the model", layer, head)
            return None
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes())).decode("ascii") if mask.any() else None


def _check_tied_projection(variables: dict[str, np.ndarray]) -> None:
    """Whisper ties the output projection to the embeddings; refuse a model that does not."""
    proj = variables.get("decoder/projection/weight")
    if proj is not None and proj is not variables["decoder/embeddings/weight"]:
        if not np.array_equal(proj, variables["decoder/embeddings/weight"]):
            raise CT2FormatError("the output projection differs from the token embeddings")


def checkpoint_from_ct2(parts: list[Path], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """An openai-whisper checkpoint dict (dims, model_state_dict, alignment_heads) from model.bin parts."""
    import torch

    model = read_model_bin(parts)
    if model.spec != "WhisperSpec":
        raise CT2FormatError(f"this is a CTranslate2 '{model.spec}' model, not a Whisper model")
    variables = _dequantized(model.variables)
    _check_tied_projection(variables)
    try:
        dims = dimensions(variables)
        arrays = whisper_state_dict(variables, dims)
    except KeyError as e:
        raise CT2FormatError(f"unsupported Whisper layout: variable {e.args[0]} is missing") from e
    state = {k: torch.from_numpy(np.ascontiguousarray(a).copy()) for k, a in arrays.items()}
    checkpoint: dict[str, Any] = {"dims": dims, "model_state_dict": state}
    heads = alignment_heads_dump((config or {}).get("alignment_heads") or [], dims)
    if heads:
        checkpoint["alignment_heads"] = heads
    return checkpoint


def convert(parts: list[Path], config_json: Path | None, out: Path) -> None:
    """Write the openai-whisper checkpoint for a CT2 model to `out` (torch.save)."""
    import torch

    config = json.loads(config_json.read_text(encoding="utf-8")) if config_json else None
    checkpoint = checkpoint_from_ct2(parts, config)
    torch.save(checkpoint, out)
    log.info("converted %s into %s (%s)", parts[0].parent, out, checkpoint["dims"])


__all__ = [
    "CT2FormatError",
    "CT2Model",
    "alignment_heads_dump",
    "checkpoint_from_ct2",
    "convert",
    "dimensions",
    "parse_model_bin",
    "read_model_bin",
    "whisper_state_dict",
]
