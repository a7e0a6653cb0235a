"""The vision path: a tiny random-weight LLaVA built here gets the picture itself, not its caption."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from interactive_format.llm.backends import load_generator
from interactive_format.engine.chat import ChatEngine
from interactive_format.config import AppConfig, GenerationConfig, ModelsConfig
from interactive_format.dialogue import Attachment, Conversation, Turn, context_text
from interactive_format.ranking.ranking import Reranker
from interactive_format.llm.sampling import SamplingParams
from interactive_format.media.vision import UNCLEAR, Captioner
from interactive_format.llm.vlm import VisionLanguageGenerator, is_vision_language

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "user", "assistant", "system", ":", "a", "red", "picture",
         "what", "is", "this", "?", "hello", "Picture", "1", "2"]
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for p in m['content'] %}{% if p['type'] == 'image' %}<image> {% else %}{{ p['text'] }} {% endif %}{% endfor %}"
    "{% endif %}</s> {% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
)


def build_tiny_llava(out: Path) -> None:
    """A random LLaVA (CLIP vision tower 32 px, 1-layer Llama) with a word-level tokenizer and a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    vocab.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=vocab, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        additional_special_tokens=["<image>"],
    )  # fmt: skip
    tiny = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    vision = CLIPVisionConfig(image_size=32, patch_size=16, projection_dim=16, **tiny)
    text = LlamaConfig(vocab_size=len(WORDS), num_key_value_heads=1, max_position_embeddings=256,
                       bos_token_id=1, eos_token_id=2, pad_token_id=0, **tiny)  # fmt: skip
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=WORDS.index("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)  # fmt: skip
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = 2, 0
    model.save_pretrained(out)
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(
        image_processor=images, tokenizer=tokenizer, patch_size=16, vision_feature_select_strategy="default",
        chat_template=TEMPLATE, image_token="<image>", num_additional_image_tokens=1,
    ).save_pretrained(out)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-llava")
    build_tiny_llava(out)
    return out


@pytest.fixture(scope="module")
def vlm(tiny_vlm_dir) -> VisionLanguageGenerator:
    generator = load_generator(ModelsConfig(llm=str(tiny_vlm_dir), device="cpu"), "cpu")
    assert isinstance(generator, VisionLanguageGenerator) and generator.sees_pictures
    return generator


class VisionCalls:
    """Counts the pictures that reach the vision tower (a forward hook)."""

    def __init__(self, generator: VisionLanguageGenerator) -> None:
        self.pictures = 0
        tower = next(m for name, m in generator.model.named_modules() if name.endswith("vision_tower"))
        self.handle = tower.register_forward_hook(self._seen)

    def _seen(self, module, args, kwargs_or_output, *rest) -> None:
        pixels = args[0] if args else None
        self.pictures += int(pixels.shape[0]) if isinstance(pixels, torch.Tensor) else 1


@pytest.fixture
def red(tmp_path) -> Path:
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (220, 20, 20)).save(path)
    return path


def test_vision_language_models_are_told_apart(tiny_vlm_dir, tmp_path):
    assert is_vision_language(str(tiny_vlm_dir))
    assert not is_vision_language(str(tmp_path))  # no config at all
    assert not is_vision_language("nobody-here/no-such-model-xyz")  # offline hub id: left to the text loaders


def test_the_picture_itself_reaches_the_model(vlm, red):
    calls = VisionCalls(vlm)
    messages = [{"role": "user", "content": [{"type": "image", "path": str(red)}, {"type": "text", "text": "what is this ?"}]}]
    text_only = [{"role": "user", "content": "what is this ?"}]
    assert vlm.count_tokens(messages) == vlm.count_tokens(text_only) + 4  # (32 / 16)² patch tokens
    samples = list(vlm.stream(messages, SamplingParams(n=3, max_new_tokens=6, seed=1), threading.Event()))
    assert len(samples) == 1 and samples[0].done and len(samples[0].drafts) == 3
    assert calls.pictures >= 1
    for d in samples[0].drafts:
        assert d.token_ids and d.mean_logprob < 0 and "<image>" not in d.text


def test_a_picture_turn_sends_the_picture_not_the_caption(vlm, cache_dir, red):
    captioner = Captioner("embedded:imagenet-tags", cache_dir)
    config = AppConfig(generation=GenerationConfig(num_candidates=2, max_new_tokens=6, turn_timeout_s=60))
    engine = ChatEngine(config, vlm, None, captioner, Reranker(None, 0.5))
    seen: list[list[dict]] = []
    count = vlm.count_tokens
    vlm.count_tokens = lambda messages: (seen.append(messages), count(messages))[1]
    calls = VisionCalls(vlm)
    try:
        conversation = engine.new_conversation()
        list(engine.respond(conversation, "what is this ?", [str(red)]))
    finally:
        del vlm.count_tokens
    user, reply = conversation.turns
    assert user.attachments[0].text.startswith(f"{UNCLEAR} Main colours: red")  # the tags, still shown to the user
    assert reply.error is None and len(reply.candidates) == 2 and calls.pictures >= 1
    parts = seen[-1][-1]["content"]
    assert parts == [{"type": "image", "path": str(red)}, {"type": "text", "text": "what is this ?"}]


def test_several_pictures_are_labelled_and_a_gone_file_falls_back_to_its_caption(red, tmp_path):
    gone = tmp_path / "deleted.png"
    turn = Turn("user", "what is this ?", [Attachment("image", str(red), "red tags"), Attachment("image", str(gone), "blue tags")])
    parts = Conversation("hello", [turn]).messages(pictures=True)[-1]["content"]
    assert parts == [
        {"type": "text", "text": "Picture 1:"},
        {"type": "image", "path": str(red)},
        {"type": "text", "text": "[Picture 2: blue tags]"},
        {"type": "text", "text": "what is this ?"},
    ]
    assert context_text([{"role": "user", "content": parts}]) == "user: Picture 1: [picture] [Picture 2: blue tags] what is this ?"
    alone = Turn("user", "and this?", [Attachment("image", str(gone), "blue tags")])
    assert Conversation("", [alone]).messages(pictures=True)[-1]["content"] == "[The user sent a picture. blue tags]\nand this?"
