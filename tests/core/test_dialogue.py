"""History, prompt building and the token budget; the reranker's arithmetic; config loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from interactive_format.config import AppConfig
from interactive_format.settings.load import load_config, parse_args
from interactive_format.dialogue import Attachment, Candidate, Conversation, Turn, context_text, fit_to_budget
from interactive_format.ranking.ranking import Reranker

from ..fakes import FixedD


def words(messages):
    return sum(len(m["content"].split()) for m in messages)


def test_llm_sees_captions_and_transcripts_as_text_and_skips_failed_turns():
    conv = Conversation("sys")
    conv.turns += [
        Turn("user", "what is this?", [Attachment("image", "/tmp/a.png", "A photo that looks like: espresso", {"kind": "tags"})]),
        Turn("assistant", candidates=[Candidate("A coffee.", -1.0), Candidate("Tea.", -2.0)], chosen=0),
        Turn("user", "", [Attachment("audio", "/tmp/b.wav", "How hot is it?")]),
        Turn("assistant", error="model crashed"),
        Turn("user", "x" * 10, error="too long"),
        Turn("user", "hello"),
    ]
    msgs = conv.messages()
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "user"]
    assert "espresso" in msgs[1]["content"] and "what is this?" in msgs[1]["content"]
    assert msgs[2]["content"] == "A coffee."
    assert msgs[3]["content"] == "How hot is it?"
    assert "model crashed" not in str(msgs) and "xxxxxxxxxx" not in str(msgs)


def test_budget_drops_oldest_pairs_and_keeps_system_prompt():
    msgs = [{"role": "system", "content": "s"}]
    for i in range(5):
        msgs += [{"role": "user", "content": f"u{i} a b c"}, {"role": "assistant", "content": f"a{i} a b c"}]
    msgs.append({"role": "user", "content": "last question"})
    fitted, dropped = fit_to_budget(msgs, words, budget=15)
    assert fitted[0]["role"] == "system" and fitted[1]["role"] == "user"
    assert fitted[-1]["content"] == "last question"
    assert dropped % 2 == 0 and dropped > 0 and words(fitted) <= 15
    assert fit_to_budget(msgs, words, budget=1000) == (msgs, 0)
    with pytest.raises(ValueError):
        fit_to_budget([{"role": "user", "content": "a b c d e"}], words, budget=3)


def test_reranker_likelihood_only_and_empty_replies_last():
    cands = [Candidate("ok", -1.5), Candidate("", -0.1), Candidate("better", -0.5)]
    order = Reranker(None).rank("ctx", cands)
    assert order == [2, 0, 1] and cands[2].score == -0.5 and cands[1].score == float("-inf")


def test_reranker_mixes_d_and_j_with_lambda():
    cands = [Candidate("human-like", -2.0), Candidate("likely", -0.5)]
    d = FixedD({"human-like": 0.9, "likely": 0.1})
    assert Reranker(d, lam=1.0).rank("c", cands) == [0, 1]
    assert Reranker(d, lam=0.0).rank("c", cands) == [1, 0]
    Reranker(d, lam=0.5).rank("c", cands)
    assert cands[0].score == pytest.approx(0.5 * 0.9 + 0.5 * -2.0)


def test_without_j_the_reranker_orders_by_d_alone():
    nan = float("nan")  # a server that sends no log-probs
    cands = [Candidate("plain", nan), Candidate("human-like", nan), Candidate("", float("-inf"))]
    assert Reranker(FixedD({"plain": 0.2, "human-like": 0.7}), lam=0.3).rank("c", cands) == [1, 0, 2]
    assert cands[1].score == 0.7
    fresh = [Candidate("", float("-inf")), Candidate("plain", nan), Candidate("human-like", nan)]
    assert Reranker(None).rank("c", fresh) == [1, 2, 0]  # neither J nor D: the server's order, empty last


def test_server_backend_settings_from_env_and_flags():
    env = {"IF_LLM": "openai:http://127.0.0.1:8000/v1", "IF_LLM_MODEL": "m", "IF_LLM_API_KEY": "sk-secret"}
    config = load_config(environ={**env, "IF_MCP": "1"})
    assert (config.models.llm_model, config.models.llm_api_key, config.server.mcp) == ("m", "sk-secret", True)
    assert "sk-secret" not in repr(config)
    assert load_config(environ={"IF_LLM_LOGPROBS": "false"}).models.llm_logprobs is False
    assert load_config(environ={}, flags=parse_args(["--mcp", "--llm-model", "x"])).server.mcp is True
    assert load_config(environ={}, flags=parse_args([])).server.mcp is False
    with pytest.raises(ValueError, match="models.llm_timeout"):
        load_config(environ={"IF_LLM_TIMEOUT": "0"})


def test_context_text_leaves_out_the_system_prompt():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert context_text(msgs) == "user: hi\nassistant: yo"


def test_config_precedence_file_env_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[generation]\nnum_candidates = 6\nlam = 0.25\n[server]\nport = 9000\n')
    config = load_config(path, environ={"IF_PORT": "9100", "IF_LLM": "my/model"}, flags=parse_args(["--candidates", "3"]))
    assert config.generation.num_candidates == 3 and config.generation.lam == 0.25
    assert config.server.port == 9100 and config.models.llm == "my/model"


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[generation]\nnum_candidates = 0\n", "generation.num_candidates"),
        ("[generation]\ncandidates = 2\n", "generation.candidates"),
        ("[nope]\nx = 1\n", "[nope]"),
        ('[generation]\ntemperature = "hot"\n', "generation.temperature"),
    ],
)
def test_bad_config_names_the_field(tmp_path, toml, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        load_config(path, environ={})


def test_defaults_are_valid():
    assert AppConfig().generation.num_candidates == 4


def test_spaces_gradio_server_variables_are_honoured_and_if_vars_win():
    config = load_config(environ={"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"})
    assert (config.server.host, config.server.port) == ("0.0.0.0", 7861)
    config = load_config(environ={"GRADIO_SERVER_NAME": "0.0.0.0", "IF_HOST": "127.0.0.2"})
    assert config.server.host == "127.0.0.2"


def test_database_path_from_file_env_and_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert load_config(environ={}).storage.db_path == tmp_path / "data" / "interactive_format" / "chats.db"
    path = tmp_path / "c.toml"
    path.write_text('[storage]\ndb_path = "~/chats-from-file.db"\n')
    assert load_config(path, environ={}).storage.db_path == Path("~/chats-from-file.db").expanduser()
    assert load_config(path, environ={"IF_DB": str(tmp_path / "env.db")}).storage.db_path == tmp_path / "env.db"
    flags = parse_args(["--db", str(tmp_path / "flag.db")])
    assert load_config(path, environ={"IF_DB": "x.db"}, flags=flags).storage.db_path == tmp_path / "flag.db"


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("off", False), ("0", False)])
def test_boolean_settings_from_the_environment(value, expected):
    assert load_config(environ={"IF_HF_LOGIN": value}).server.hf_login is expected


def test_a_bad_boolean_names_the_field():
    with pytest.raises(ValueError, match="server.hf_login"):
        load_config(environ={"IF_HF_LOGIN": "maybe"})
