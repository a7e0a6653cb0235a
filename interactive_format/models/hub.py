"""Models loaded by Hugging Face `from_pretrained`: a spec's directory or hub id, a GGUF converted once for
transformers, and the chat model loaded; the one message for a model that cannot be fetched."""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from pathlib import Path

from ..errors import ModelLoadError
from .cache import cached, source_key
from .gguf_file import gguf_path
from .specs import EMBEDDED, INSTALL_HINT, embedded_files, parse_spec, path_error


def hub_error(spec: str, error: Exception, example: str = "embedded:smollm2-135m") -> ModelLoadError:
    """The message for a spec that is neither embedded nor a readable local path."""
    detail = str(error).splitlines()[0].rstrip(".") if str(error) else ""
    return ModelLoadError(
        f"Could not load model '{spec}' ({error.__class__.__name__}: {detail}). "
        "If it is a Hugging Face id, this machine needs network access to the hub, or pass the path "
        f"of a local copy instead; or use an embedded model such as {example}."
    )


def pretrained_source(spec_text: str, role: str) -> str:
    """A directory or hub id for `from_pretrained`, for models shipped ready to load."""
    spec = parse_spec(spec_text)
    if spec.kind != "embedded":
        return spec.name
    if EMBEDDED[spec.name].role != role:
        raise ModelLoadError(f"'{spec.text}' is not a {role} model.")
    return str(embedded_files(spec)[0])


_CONVERTING = threading.Lock()  # `_parsed_once` patches the gguf module: one conversion at a time


@contextmanager
def _parsed_once():
    """transformers parses a GGUF file three times (config, tokenizer, weights: its 49k-151k token vocabulary in
    Python, ~9 s each for SmolLM2's here) and rebuilds gguf's tensor-name map for every submodule (397 times):
    for the duration, a path is parsed once and the map built once per architecture. The files it writes are
    the same byte for byte (tests/models/test_models.py); a SmolLM2 conversion took 42 s, now 18 s."""
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], object] = {}

    def read_once(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = reader(path, mode)
        return readers[key]

    with _CONVERTING:
        gguf.GGUFReader, gguf.get_tensor_name_map = read_once, functools.lru_cache(maxsize=None)(name_map)
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint into a transformers safetensors directory at `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model carries its quantizer; saving needs it gone (weights are dequantized).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def convert_for(spec_text: str, gguf: Path, out: Path) -> None:
    """`convert_gguf`, with its failures turned into a ModelLoadError naming the spec and the file."""
    try:
        convert_gguf(gguf, out)
    except ModelLoadError:
        raise
    except Exception as e:  # unreadable file, unsupported architecture or tokenizer, disk full
        first = str(e).splitlines()[0].rstrip(".") if str(e) else ""
        raise ModelLoadError(
            f"Model '{spec_text}': could not convert {gguf} ({e.__class__.__name__}: {first}). "
            "Use a GGUF of an architecture transformers supports, or an embedded model; "
            f"for an embedded model reinstall with: {INSTALL_HINT}"
        ) from e


def llm_path(spec_text: str, cache_dir: Path) -> str:
    """A directory or hub id that `from_pretrained` can load for this spec."""
    spec = parse_spec(spec_text)
    if spec.kind == "openai":
        raise ModelLoadError(f"'{spec.text}' is a model server; this needs local weights (embedded, id or path).")
    if spec.kind != "embedded":
        path = Path(spec.name)
        if spec.kind == "path" and not path.exists():
            raise path_error(spec)
        if spec.kind == "path" and path.is_file() and path.suffix == ".gguf":
            key = f"gguf-{path.stem}-{source_key([path])}"
            return str(cached(cache_dir / key, lambda out: convert_for(spec.text, path, out)))
        return spec.name
    gguf = gguf_path(spec_text, cache_dir)
    target = cache_dir / f"{spec.name}-{source_key([gguf])}"
    return str(cached(target, lambda out: convert_for(spec.text, gguf, out)))


def load_causal_lm(spec_text: str, cache_dir: Path, device: str, dtype=None):
    """Load (model, tokenizer) for a chat spec onto `device`, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = llm_path(spec_text, cache_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as e:
        raise hub_error(spec_text, e) from e
    return model.to(device).eval(), tokenizer
