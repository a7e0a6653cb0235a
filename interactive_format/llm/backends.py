"""The backend factory: which engine runs the configured chat model, and loading it.

A new backend implements `sampling.Generator` in a module of its own and gets one branch here.
"""

from __future__ import annotations

from .sampling import Generator


def backend_for(models, device: str) -> str:
    """ "openai", "llamacpp" or "transformers": the engine that runs the configured chat model (a ModelsConfig)."""
    from ..models.gguf_file import gguf_path
    from ..models.specs import parse_spec

    spec = parse_spec(models.llm)
    if spec.kind == "openai":
        return "openai"
    if models.llm_backend != "auto":
        return models.llm_backend
    if not device.startswith("cpu") or spec.kind not in ("embedded", "path"):
        return "transformers"
    return "llamacpp" if gguf_path(models.llm, models.cache_dir) is not None else "transformers"


def load_generator(models, device: str) -> Generator:
    """The configured chat model (a ModelsConfig): a server for `openai:URL` specs, llama.cpp for GGUF on CPU,
    else local transformers weights."""
    from ..models.specs import parse_spec

    backend = backend_for(models, device)
    if backend == "llamacpp":
        from ..models.device import llm_pinned_cpus, llm_threads
        from .llamacpp import LlamaCppGenerator, LlamaCppOptions

        threads = llm_threads(models.llm_threads)
        options = LlamaCppOptions(threads=threads, batch_threads=threads, cpus=llm_pinned_cpus(threads))
        return LlamaCppGenerator.from_spec(models.llm, models.cache_dir, options)
    spec = parse_spec(models.llm)
    if spec.kind == "openai":
        from .openai_backend import OpenAICompatibleGenerator

        options = server_options(models, spec.name)
        scorer = None  # J for a server without log-probs
        if models.llm_scorer:
            from .generator import TransformersGenerator

            scorer = TransformersGenerator.from_spec(models.llm_scorer, models.cache_dir, device)
        return OpenAICompatibleGenerator.connect(options, scorer)
    if spec.kind in ("path", "hub"):
        from .vlm import VisionLanguageGenerator, is_vision_language

        if is_vision_language(spec.name):  # an image-text-to-text model: it sees the pictures themselves
            return VisionLanguageGenerator.from_spec(models.llm, device, models.dtype)
    from .generator import TransformersGenerator

    return TransformersGenerator.from_spec(models.llm, models.cache_dir, device, models.dtype)


def server_options(models, url: str):
    """The ServerOptions of a ModelsConfig whose chat model is the server at `url`."""
    from .openai_backend import ServerOptions

    return ServerOptions(url, models.llm_model, models.llm_api_key, models.llm_timeout, logprobs=models.llm_logprobs)


def check_server(models) -> None:
    """An `openai:URL` chat model's server, asked for its models before anything else loads: one that is down,
    answers an error or is not OpenAI-compatible is told in a second (ModelLoadError), not after torch and
    Gradio have loaded. Other specs pass (`specs.check_specs` checks what can be told of them offline)."""
    from ..models.specs import parse_spec

    spec = parse_spec(models.llm)
    if spec.kind != "openai":
        return
    from .openai_backend import OpenAICompatibleGenerator

    OpenAICompatibleGenerator.connect(server_options(models, spec.name)).close()
