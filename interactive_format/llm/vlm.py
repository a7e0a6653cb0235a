"""A vision-language chat model: the picture itself goes into the prompt, not a caption of it.

`--llm` naming a transformers image-text-to-text model (a Hugging Face id or a local folder with a
processor and a chat template: Qwen2-VL / Qwen2.5-VL, SmolVLM / Idefics3, LLaVA, …) loads a
`VisionLanguageGenerator`. The engine then builds messages whose user content lists the pictures
(`Conversation.messages(pictures=True)`); a picture whose file is gone (an imported chat, store
nothing) falls back to its caption. N candidates are sampled in one `generate` call with J from the
model's own distribution; the reply arrives whole (no token streaming on this path).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import torch

from ..config import Limits
from ..errors import ModelLoadError
from .generator import generation_error, visible_text
from .sampling import Deadline, Draft, Sample, SamplingParams

log = logging.getLogger(__name__)


def is_vision_language(source: str) -> bool:
    """Whether the model folder / cached hub id `source` is an image-text-to-text model with a chat template."""
    try:
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        config = AutoConfig.from_pretrained(source)
    except Exception:  # not a transformers folder, or a hub id that is not reachable: the text loaders say why
        return False
    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and hasattr(config, "vision_config")


class _Stop:
    """Stopping criterion: the user pressed stop, or the turn's time is up."""

    def __init__(self, stop: threading.Event, deadline: float | None) -> None:
        self.stop, self.deadline = stop, deadline

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        over = self.stop.is_set() or (self.deadline is not None and time.monotonic() > self.deadline)
        return torch.full((input_ids.shape[0],), over, dtype=torch.bool, device=input_ids.device)


class VisionLanguageGenerator:
    """A transformers image-text-to-text model behind the Generator protocol; it sees the pictures."""

    sees_pictures = True

    def __init__(self, model, processor, name: str = "vlm", limits: Limits | None = None) -> None:
        self.model, self.processor, self.name = model, processor, name
        self.tokenizer = processor.tokenizer
        self.device = next(model.parameters()).device
        self.limits = limits or Limits()
        self._lock = threading.Lock()  # one generate at a time on this model
        ids = model.generation_config.eos_token_id
        self.eos_ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)

    @classmethod
    def from_spec(cls, spec: str, device: str = "cpu", dtype: str = "auto", limits: Limits | None = None):
        """Load the model and its processor (a local folder, or a hub id in the local cache / online)."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from ..models.specs import parse_spec

        source = parse_spec(spec).name
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        try:
            processor = AutoProcessor.from_pretrained(source)
            model = AutoModelForImageTextToText.from_pretrained(source, dtype=getattr(torch, dtype))
        except (OSError, ValueError, KeyError, ImportError) as e:
            why = f"{e.__class__.__name__}: {e}"
            raise ModelLoadError(f"Could not load the vision-language model '{spec}' ({why})") from e
        if not getattr(processor, "chat_template", None):
            raise ModelLoadError(f"The vision-language model '{spec}' has no chat template in its processor.")
        log.info("vision-language model %s ready on %s", spec, device)
        return cls(model.to(device).eval(), processor, name=spec, limits=limits)

    def _inputs(self, messages: list[dict]):
        """Processor inputs: the chat template rendered with an image slot per picture, and the pictures."""
        from ..media.vision import load_image

        pictures, shaped = [], []
        for m in messages:
            content = m["content"]
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            parts = []
            for part in content:
                if part.get("type") == "image":
                    pictures.append(load_image(part["path"], self.limits))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": part["text"]})
            shaped.append({"role": m["role"], "content": parts})
        prompt = self.processor.apply_chat_template(shaped, add_generation_prompt=True, tokenize=False)
        return self.processor(text=prompt, images=pictures or None, return_tensors="pt").to(self.device)

    def count_tokens(self, messages: list[dict]) -> int:
        return int(self._inputs(messages)["input_ids"].shape[1])

    @torch.inference_mode()
    def _generate(self, messages: list[dict], params: SamplingParams, stop: threading.Event, seed: int) -> list[Draft]:
        inputs = self._inputs(messages)
        width = inputs["input_ids"].shape[1]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        sampling = dict(temperature=1.0, top_p=1.0, top_k=1) if params.greedy else dict(
            temperature=params.temperature, top_p=params.top_p, top_k=0
        )
        deadline = None if params.timeout_s is None else time.monotonic() + params.timeout_s
        with self._lock:
            torch.manual_seed(seed)
            out = self.model.generate(
                **inputs, do_sample=True, **sampling, max_new_tokens=params.max_new_tokens,
                num_return_sequences=params.n, pad_token_id=pad, output_logits=True, return_dict_in_generate=True,
                stopping_criteria=[_Stop(stop, deadline)], disable_compile=True,
            )  # fmt: skip
        new = out.sequences[:, width:]
        logprobs = torch.stack(out.logits, 1).float().log_softmax(-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        drafts = []
        for row, lp in zip(new.tolist(), logprobs.tolist()):
            end = next((i for i, t in enumerate(row) if t in self.eos_ids), len(row))
            tokens = row[:end]
            drafts.append(Draft(visible_text(self.tokenizer, tokens), tokens, float(sum(lp[:end])), end < len(row)))
        return drafts

    def stream(self, messages: list[dict], params: SamplingParams, stop: threading.Event) -> Iterator[Sample]:
        """The N candidates, whole, as one done Sample (GenerationError on failure or timeout)."""
        import queue

        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        results: queue.Queue = queue.Queue()

        def run() -> None:
            try:
                results.put(self._generate(messages, params, stop, seed))
            except BaseException as e:  # handed to the caller's thread
                results.put(e)

        threading.Thread(target=run, name="vlm-generate", daemon=True).start()
        try:
            outcome = Deadline(None if params.timeout_s is None else params.timeout_s + 5).get(results)
            stopped = stop.is_set()  # the user pressed stop while it ran
        finally:
            stop.set()  # ends the generate call if the caller went away or the time ran out
        if isinstance(outcome, BaseException):
            from ..errors import InteractiveFormatError

            if isinstance(outcome, InteractiveFormatError):  # a picture that cannot be read any more
                raise outcome
            raise generation_error(outcome) from outcome
        yield Sample(outcome, seed, done=True, stopped=stopped)
