"""One table of turn knobs: config, flows, the clamp, the sliders and the API docs read the same numbers."""

from __future__ import annotations

import pytest

from interactive_format.web.api import ChatAPI
from interactive_format.engine.chat import TurnSettings
from interactive_format.config import AppConfig, GenerationConfig
from interactive_format.settings.load import load_config
from interactive_format.settings.flow_file import FlowError, load_flow
from interactive_format.knobs import KNOBS
from interactive_format.store.store import Store
from interactive_format.web.ui import build_demo

from ..fakes import fake_engine


def test_the_clamp_is_the_table_s_range_and_default():
    wild = TurnSettings(num_candidates=999, temperature=-3, max_new_tokens=float("nan"), lam="much").clamped()
    assert wild == TurnSettings(
        num_candidates=int(KNOBS["num_candidates"].high),
        temperature=KNOBS["temperature"].low,
        max_new_tokens=int(KNOBS["max_new_tokens"].default),
        lam=KNOBS["lam"].default,
    )
    assert TurnSettings() == TurnSettings(**{name: k.default for name, k in KNOBS.items()})


@pytest.mark.parametrize("name", ["num_candidates", "temperature", "max_new_tokens"])
def test_a_config_outside_what_a_turn_accepts_is_refused(name):
    knob = KNOBS[name]
    AppConfig(generation=GenerationConfig(**{name: knob.type(knob.high)}))
    with pytest.raises(ValueError, match=f"generation.{name}"):
        AppConfig(generation=GenerationConfig(**{name: knob.type(knob.high + 1)}))
    env = {"num_candidates": "IF_CANDIDATES", "max_new_tokens": "IF_MAX_NEW_TOKENS"}.get(name)
    if env:  # the environment goes through the same check
        with pytest.raises(ValueError, match=f"generation.{name}"):
            load_config(environ={env: str(knob.type(knob.high + 1))})


def test_a_flow_s_candidates_are_the_slider_s_range(tmp_path):
    knob = KNOBS["num_candidates"]
    path = tmp_path / "f.toml"
    path.write_text(f'title = "T"\npersona = "P"\ncandidates = {int(knob.ui_high)}\n')
    assert load_flow(path).candidates == knob.ui_high
    path.write_text(f'title = "T"\npersona = "P"\ncandidates = {int(knob.ui_high) + 1}\n')
    with pytest.raises(FlowError, match=f"from {knob.ui_low:g} to {knob.ui_high:g}"):
        load_flow(path)


def test_the_sliders_and_the_api_docs_read_the_table(tmp_path):
    demo = build_demo(fake_engine(), Store(tmp_path / "c.db"))
    sliders = [c["props"] for c in demo.config["components"] if c["type"] == "slider"]
    shown = [(p["minimum"], p["maximum"], p["step"]) for p in sliders]  # the settings panel, in TurnSettings' order
    assert shown == [(k.ui_low, k.ui_high, k.ui_step) for k in KNOBS.values()]
    doc = ChatAPI.generate_and_rank.__doc__
    assert all(f"({k.range_text})" in doc for name, k in KNOBS.items() if name != "lam")
