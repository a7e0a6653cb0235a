"""bench/rerank's held-out prompts: sampled with the app's current system prompts, disjoint from bench/quality."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from interactive_format.config import GenerationConfig
from interactive_format.flows import FLOWS_DIR
from interactive_format.settings.flow_file import load_flow

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _sample_module():
    spec = importlib.util.spec_from_file_location("rerank_sample", BENCH / "rerank" / "sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_samples_use_the_apps_own_system_prompts_now():
    prompts = json.loads((BENCH / "rerank" / "prompts.json").read_text())
    systems = _sample_module().system_texts(prompts)
    assert systems["default"] == GenerationConfig().system_prompt
    assert systems["customer"] == load_flow(FLOWS_DIR / "customer-service.toml").persona
    assert systems["home"] == load_flow(FLOWS_DIR / "smart-home.toml").persona
    assert {q["system"] for q in prompts["prompts"]} <= set(systems)


def test_the_held_out_prompts_are_disjoint_from_the_quality_bench():
    prompts = json.loads((BENCH / "rerank" / "prompts.json").read_text())["prompts"]
    quality = json.loads((BENCH / "quality" / "prompts.json").read_text())
    quality = quality["prompts"] if isinstance(quality, dict) else quality
    seen = {str(q.get("text", "")).strip().lower() for q in quality}
    assert not [q["id"] for q in prompts if q["text"].strip().lower() in seen]
    assert len({q["id"] for q in prompts}) == len(prompts) == 80
    assert sum(q["lang"] == "zh" for q in prompts) == 40
