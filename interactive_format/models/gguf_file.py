"""A chat model's GGUF file: an embedded model's parts joined once, and requantized once where its spec asks."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ModelLoadError
from .cache import cached, file_sha256, join_checked
from .specs import EMBEDDED, Spec, embedded_files, parse_spec, path_error

log = logging.getLogger(__name__)


def gguf_path(spec_text: str, cache_dir: Path) -> Path | None:
    """The GGUF file of a chat spec (embedded, or a local .gguf path); None for other specs.

    An embedded model shipped in parts is joined once into `cache_dir` (atomically, size and sha256 checked).
    """
    spec = parse_spec(spec_text)
    if spec.kind == "path":
        path = Path(spec.name)
        if not path.exists():
            raise path_error(spec)
        return path if path.is_file() and path.suffix == ".gguf" else None
    if spec.kind != "embedded":
        return None
    model = EMBEDDED[spec.name]
    if model.role != "llm":
        raise ModelLoadError(f"'{spec.text}' is not a chat model; use embedded:smollm2-135m or a Hugging Face id.")
    files = embedded_files(spec)
    if not model.sha256:
        return files[0]
    # the joined file is named after the first spec of these parts (the one as shipped), so variants share it
    base = next(name for name, m in EMBEDDED.items() if m.sha256 == model.sha256)
    joined = cached(cache_dir / f"{base}-{model.sha256[:16]}.gguf", lambda out: join_checked(spec, files, out))
    if not model.quant:
        return joined
    target = cache_dir / f"{base}-{model.sha256[:16]}-{model.quant.lower()}.gguf"
    return cached(target, lambda out: _requantize_checked(spec, joined, out))


def requantize_gguf(source: Path, out: Path, qtype: str) -> None:
    """Write `source` with its weight matrices requantized to the ggml type `qtype` (e.g. "Q4_0", "Q8_0").

    Every metadata key (tokenizer, chat template, hyper-parameters) is copied unchanged; 1-D tensors (norms,
    biases) and F32/F16 tensors stay as they are, and so does the token embedding when the model has its own
    output matrix (it is only looked up, never multiplied). `gguf`'s numpy quantizers are llama.cpp's
    reference ones. One tensor at a time is held in float32.
    """
    import gguf
    import numpy as np
    from gguf.quants import dequantize, quant_shape_to_byte_shape, quantize

    target = gguf.GGMLQuantizationType[qtype]
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(out, arch=reader.fields["general.architecture"].contents(), endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):  # written by GGUFWriter
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    names = {t.name for t in reader.tensors}
    keep = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16}
    plan = []
    for t in reader.tensors:
        shape = tuple(int(x) for x in reversed(t.shape))  # rows first, as numpy holds them
        lookup_only = t.name == "token_embd.weight" and "output.weight" in names
        qt = t.tensor_type if t.tensor_type in keep or len(shape) < 2 or lookup_only else target
        if qt == t.tensor_type:
            writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, raw_dtype=t.tensor_type)
        else:
            byte_shape = quant_shape_to_byte_shape(shape, qt)
            writer.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=qt)
        plan.append((t, shape, qt))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t, shape, qt in plan:
        data = t.data if qt == t.tensor_type else quantize(dequantize(t.data, t.tensor_type).reshape(shape), qt)
        writer.write_tensor_data(data)
    writer.close()


def _requantize_checked(spec: Spec, joined: Path, out: Path) -> None:
    """`requantize_gguf` for an embedded model, then the result's size and sha256: one clear line when either fails."""
    import time

    model = EMBEDDED[spec.name]
    started = time.perf_counter()
    try:
        requantize_gguf(joined, out, model.quant)
    except Exception as e:  # unreadable source, unsupported tensor type, disk full
        raise ModelLoadError(
            f"Model '{spec.text}': could not convert {joined.name} to {model.quant} ({e.__class__.__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); delete {joined} and reinstall with: {model.install}"
        ) from e
    size = out.stat().st_size
    if model.quant_sha256 and (size, sha256 := file_sha256(out)) != (model.quant_size, model.quant_sha256):
        raise ModelLoadError(
            f"Model '{spec.text}': its {model.quant} conversion is {size:,} bytes (sha256 {sha256[:12]}…), "
            f"not the expected {model.quant_size:,} bytes (sha256 {model.quant_sha256[:12]}…); the `gguf` package "
            f"differs from requirements.lock: reinstall with pip install --require-hashes -r requirements.lock"
        )
    log.info("converted %s to %s in %.1f s", spec.text, model.quant, time.perf_counter() - started)
