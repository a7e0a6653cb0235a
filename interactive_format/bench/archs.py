"""Published model shapes with random weights: speed measurements without any weight package.

`random_generator("qwen2.5-0.5b")` builds the real architecture (the config values below are
copied from the models' published config.json files) with random weights, so a machine that
cannot receive our weight packages still measures the speed of the real shapes. The tokenizer
is the embedded SmolLM2 one when its package is installed, else a byte-level one built here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

ARCHS: dict[str, dict] = {
    "smollm2-135m": dict(  # HuggingFaceTB/SmolLM2-135M-Instruct
        model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
        rms_norm_eps=1e-5, tie_word_embeddings=True,
    ),
    "qwen2.5-0.5b": dict(  # Qwen/Qwen2.5-0.5B-Instruct (494M parameters)
        model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True,
    ),
    "tiny": dict(  # for tests: seconds, not minutes
        model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=49152, max_position_embeddings=4096, rope_theta=10000.0,
        rms_norm_eps=1e-5, tie_word_embeddings=True,
    ),
}  # fmt: skip

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer():
    """A byte-level tokenizer (256 byte tokens + ChatML specials) for when no real one is installed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core)
    tokenizer.add_special_tokens(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "additional_special_tokens": ["<|im_start|>"]}
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def bench_tokenizer(cache_dir: Path | None = None):
    """The embedded SmolLM2 tokenizer when its package is installed, else `byte_tokenizer()`."""
    from transformers import AutoTokenizer

    from ..config import default_cache_dir
    from ..errors import ModelLoadError
    from ..models.hub import llm_path

    try:
        return AutoTokenizer.from_pretrained(llm_path("embedded:smollm2-135m", cache_dir or default_cache_dir()))
    except ModelLoadError as e:
        log.info("using a byte-level tokenizer (%s)", e)
        return byte_tokenizer()


def random_model(arch: str, vocab_size: int, dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0):
    """The named architecture with random weights (vocabulary at least `vocab_size`), in eval mode."""
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = dict(ARCHS[arch])
    model_type = shape.pop("model_type")
    shape["vocab_size"] = max(shape["vocab_size"], vocab_size)
    config = AutoConfig.for_model(model_type, **shape)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def random_generator(arch: str, device: str = "cpu", dtype: torch.dtype = torch.float32, tokenizer=None, options=None):
    """A TransformersGenerator on `arch` with random weights."""
    from ..llm.generator import TransformersGenerator

    tokenizer = tokenizer if tokenizer is not None else bench_tokenizer()
    model = random_model(arch, len(tokenizer), dtype, device)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return TransformersGenerator(model, tokenizer, name=f"random:{arch}", options=options)
