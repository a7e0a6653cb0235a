"""Flows: every shipped flow answers through the real engine; broken files name key and line; UI switching."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interactive_format.web.callbacks import chat_ui
from interactive_format.config import GenerationConfig
from interactive_format.settings.load import flow_configs, load_config, parse_args
from interactive_format.engine.engines import FlowSet, build_engine
from interactive_format.settings.flow_file import FlowError, key_line, load_flow
from interactive_format.flows import shipped_flows
from interactive_format.store.store import Store
from interactive_format.web.ui import build_demo

from ..conftest import TEST_ENV

ROOT = Path(__file__).resolve().parents[2]
USER = "0123456789abcdef0123456789abcdef"
FRENCH = re.compile(r"\b(le|la|les|est|vous|je|une|des|et|pour|avec|dans)\b", re.IGNORECASE)


def flow_environ(cache_dir: Path) -> dict[str, str]:
    """The test session's models and short replies, the way a deployment sets them."""
    return {"IF_CACHE_DIR": str(cache_dir), "IF_DEVICE": "cpu", "IF_MAX_NEW_TOKENS": "24", **TEST_ENV}


@pytest.fixture(scope="module")
def flows(cache_dir, models, engine) -> FlowSet:
    """Every shipped flow, engines sharing the session's loaded models (the playground is the start flow)."""
    environ = flow_environ(cache_dir)
    start = build_engine(load_config(environ=environ), models)
    return FlowSet.serving(start, flow_configs(start.config, environ=environ), models)


def test_four_scenarios_ship():
    names = {p.stem for p in shipped_flows()}
    assert {"customer-service", "travel-assistant", "smart-home", "playground"} <= names


def test_the_default_persona_and_every_shipped_one_ask_for_short_answers():
    """Replies cut at the token limit were most of the default model's defects (bench/quality/README.md)."""
    personas = [GenerationConfig().system_prompt, *(load_flow(p).persona for p in shipped_flows())]
    for persona in filter(None, personas):
        assert re.search(r"at most|一两句|简短", persona), persona


def test_the_smart_home_persona_is_the_one_the_quality_bench_read():
    """With only a language rule, Qwen2.5-Coder-1.5B answered Chinese commands with their English translation;
    the shipped persona says what to do and not to translate, and bench/quality measured exactly this text."""
    measured = json.loads((ROOT / "bench" / "quality" / "prompts.json").read_text())["systems_short_v3"]
    persona = load_flow(ROOT / "assets" / "flows" / "smart-home.toml").persona
    assert persona == measured["home"] and "不要翻译" in persona
    assert GenerationConfig().system_prompt == measured["default"]


def test_the_smart_home_flow_tells_the_user_it_controls_no_real_devices():
    """Its replies confirm commands as done ("客厅的灯已经打开了"); the page must not let that pass for the truth."""
    assert "没有连接真实设备" in load_flow(ROOT / "assets" / "flows" / "smart-home.toml").description


@pytest.mark.parametrize("path", shipped_flows(), ids=lambda p: p.stem)
def test_every_shipped_flow_loads_and_answers_a_turn(path, flows, engine):
    flow = load_flow(path)
    turn_engine = flows.engine(flow.name)
    assert turn_engine.generator is engine.generator  # same specs: the weights are shared, not loaded again
    assert turn_engine.config.flow == flow and turn_engine.config.server.title == flow.title
    if flow.persona:
        assert turn_engine.config.generation.system_prompt == flow.persona
    conversation = turn_engine.new_conversation()
    prompt = (flow.examples or ("Hello! What can you do?",))[0]
    statuses = list(turn_engine.respond(conversation, prompt))
    reply = conversation.turns[-1]
    print(f"{flow.name}: {prompt!r} -> {reply.reply!r}")
    assert statuses[-1] == "Done" and reply.error is None and reply.reply.strip()
    assert len(reply.candidates) == (flow.candidates or turn_engine.config.generation.num_candidates)
    assert conversation.system_prompt == turn_engine.config.generation.system_prompt
    if flow.language == "en":  # short personas keep SmolLM2-135M out of French
        assert len(FRENCH.findall(reply.reply)) <= 1, reply.reply


def test_a_flow_refuses_what_it_does_not_take(flows, media):
    shop = flows.engine("customer-service")  # text and pictures, no voice
    conversation = shop.new_conversation()
    list(shop.respond(conversation, "Here is my voice note", [str(media["question"])]))
    assert "does not take voice messages" in conversation.turns[-1].error
    list(shop.respond(conversation, "What is this?", [str(media["coffee"])]))  # the history goes on
    assert conversation.turns[-1].reply.strip() and len(conversation.turns) == 3


BROKEN = {
    "bad value": ('title = "Shop"\n# a comment\npersona = "Be kind."\n\ncandidates = "four"\n', 5, "candidates"),
    "unknown key": ('title = "Shop"\ntitel = "Shop"\n', 2, "titel"),
    "bad model": ('title = "Shop"\n\n[models]\nllm = "embedded:smollm3"\n', 4, "models.llm"),
    "bad modality": ('title = "Shop"\nmodalities = [\n  "text",\n  "smell",\n]\n', 2, "modalities"),
    "bad theme": ('title = "Shop"\ntheme = "sofft"\n', 2, "theme"),
    "empty title": ('"title" = ""\n', 1, "title"),
    "bad speech language": ('title = "Shop"\nspeech_languages = ["zh", "fr"]\n', 2, "speech_languages"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_broken_flow_names_the_key_and_the_line(case, tmp_path):
    text, line, key = BROKEN[case]
    path = tmp_path / "shop.toml"
    path.write_text(text)
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}, '{key}': "), message
    assert "did you mean 'title'" in message if key == "titel" else True


def test_speech_languages_default_to_what_the_app_serves_and_a_flow_may_narrow_them(tmp_path):
    """Not derived from the UI `language`: the Chinese smart-home flow's examples include an English command."""
    assert all(load_flow(p).speech_languages == ("zh", "en") for p in shipped_flows())
    path = tmp_path / "kiosk.toml"
    path.write_text('title = "Kiosk"\nlanguage = "zh"\nspeech_languages = ["zh"]\n')
    assert load_flow(path).speech_languages == ("zh",)
    for value, problem in (('[]', 'must be a list of "zh" and/or "en"'), ('"zh"', "must be a list"),
                           ('["zh", "zh"]', "names a language twice")):  # fmt: skip
        path.write_text(f"speech_languages = {value}\n")
        with pytest.raises(FlowError, match=re.escape(problem)):
            load_flow(path)


def test_a_toml_syntax_error_keeps_its_line(tmp_path):
    path = tmp_path / "shop.toml"
    path.write_text('title = "Shop"\npersona = "Be kind.\n')
    with pytest.raises(FlowError, match=r"not valid TOML: .*line 2"):
        load_flow(path)


def test_key_line_finds_tables_dotted_and_quoted_keys():
    source = 'title = "x"\n[models]\n "llm" = "a"\n\n[other]\nllm = "b"\n'
    assert key_line(source, "models.llm") == 3 and key_line(source, "other.llm") == 6
    assert key_line('models.asr = "x"\n', "models.asr") == 1 and key_line(source, "persona") is None


def test_a_bad_flow_stops_the_start_with_one_line(cache_dir, tmp_path):
    path = tmp_path / "shop.toml"
    path.write_text('title = "Shop"\ncandidates = 99\n')
    env = {**os.environ, "IF_CACHE_DIR": str(cache_dir), "IF_DB": str(tmp_path / "chats.db"), "IF_FLOW": str(path)}
    run = subprocess.run(
        [sys.executable, "app.py"], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"{path}, line 2, 'candidates': must be a whole number from 1 to 8 (got 99)" in run.stderr


def test_flag_env_and_flow_precedence():
    path = {p.stem: p for p in shipped_flows()}
    config = load_config(environ={"IF_FLOW": str(path["travel-assistant"]), "IF_CANDIDATES": "2"})
    assert config.flow.name == "travel-assistant" and config.generation.num_candidates == 2  # env beats the flow
    flags = parse_args(["--flow", str(path["smart-home"]), "--lam", "0.25"])
    config = load_config(environ={"IF_FLOW": str(path["travel-assistant"])}, flags=flags)
    assert config.flow.name == "smart-home" and config.generation.lam == 0.25  # the flag beats IF_FLOW
    assert config.server.title == "智能家居助手" and config.generation.num_candidates == 3
    with pytest.raises(FlowError, match="Cannot read flow file missing.toml"):
        load_config(environ={}, flags=parse_args(["--flow", "missing.toml"]))
    assert load_config(environ={}).flow.name == "playground"


def test_switching_flows_in_the_ui_keeps_models_and_changes_the_chat(flows, tmp_path):
    store = Store(tmp_path / "chats.db")
    ui = chat_ui(flows.engine(flows.start), store, flows)
    view = ui.switch_flow("travel-assistant", ui.history.new(), USER)
    chat = view.chat
    assert chat.flow == "travel-assistant" and "travel assistant" in chat.conversation.system_prompt
    page = ui.flow_view(chat)
    assert (
        "Travel assistant" in page.header and page.candidates == 4 and page.box["sources"] == ["upload", "microphone"]
    )
    assert [b.value for b in page.quick_replies if b.visible] == list(flows.flow("travel-assistant").quick_replies)
    views = list(ui.respond("Make it cheaper", chat, 2, 0.7, 24, 0.5, USER))
    assert any(v.status.startswith("Sampling") for v in views[:-1])  # it streamed
    final = views[-1].chat
    assert final.conversation.turns[0].text == "Make it cheaper" and final.conversation.turns[-1].reply.strip()
    assert store.load(f"browser:{USER}", final.id).system_prompt == chat.conversation.system_prompt
    assert ui.new_chat(final, USER).chat.flow == "travel-assistant"  # a new chat stays in the flow
    shop = ui.switch_flow("customer-service", final, USER).chat
    assert ui.flow_view(shop).box["sources"] == ["upload"] and ui.flow_view(shop).box["file_types"] == ["image"]
    store.close()


def test_a_chinese_flow_fixes_the_ui_language(flows, tmp_path):
    store = Store(tmp_path / "chats.db")
    home = flows.engine("smart-home")
    demo = build_demo(home, store, flows)
    labels = {c.get("props", {}).get("label") for c in demo.config["components"]}
    values = [c.get("props", {}).get("value") for c in demo.config["components"]]
    assert {"对话", "场景", "设置", "每次回复的候选数"} <= labels and "新对话" in values
    assert demo.launch_defaults["theme"] == "citrus" and demo.launch_defaults["i18n"].translations_dict["zh-CN"]
    store.close()


def test_switching_flows_sets_the_speaker_toggle_and_offers_talk_mode_where_voice_is_taken(flows, tmp_path):
    if flows.engine("smart-home").speaker is None:
        pytest.skip("no speaker on this machine (espeak-ng or the Kokoro packages missing)")
    store = Store(tmp_path / "chats.db")
    ui = chat_ui(flows.engine(flows.start), store, flows)
    home = ui.switch_flow("smart-home", ui.history.new(), USER).chat
    assert ui.flow_view(home).speak.value is True  # voice_replies = true: the toggle turns on
    travel = ui.switch_flow("travel-assistant", home, USER).chat
    assert ui.flow_view(travel).speak.value is False  # and off again in a flow that does not speak
    assert ui.flow_view(travel).talk_bar["visible"] is True  # it takes voice: talk mode is offered
    shop = ui.switch_flow("customer-service", travel, USER).chat
    assert ui.flow_view(shop).talk_bar["visible"] is False  # pictures and text only: no talk mode
    store.close()
