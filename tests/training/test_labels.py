"""The reply-quality labels: read whole, joined with their pools, a bad row refused with file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interactive_format.training.labels import LABELS_DIR, ROOT, LabelError, read_all, read_labels

RERANK = "bench/rerank/samples-test-t0.7.json"
QUALITY = "bench/quality/replies-test-short.json"


@pytest.fixture
def project(tmp_path) -> Path:
    """A project root with one pool of each format: two prompts, three candidates each."""
    for folder in ("bench/rerank", "bench/quality"):
        (tmp_path / folder).mkdir(parents=True)
    cands = [{"text": f"reply {k}", "j": -0.5 - k, "finished": k != 2, "tokens": 3 + k} for k in range(3)]
    rows = [{"id": "zh-1", "lang": "zh", "system": "default", "text": "你好", "candidates": cands},
            {"id": "en-1", "lang": "en", "system": "home", "text": "Lights on", "candidates": cands}]  # fmt: skip
    systems = {"default": "Be brief.", "home": "You run a home."}
    (tmp_path / RERANK).write_text(json.dumps({"model": "embedded:m", "systems": systems, "rows": rows}))
    (tmp_path / "bench/quality/prompts.json").write_text(json.dumps({"systems_short": systems}))
    pool = {"model": "embedded:m", "systems": "systems_short", "replies": rows}
    (tmp_path / QUALITY).write_text(json.dumps(pool))
    return tmp_path


def row(source: str = RERANK, k: int = 0, prompt: str = "zh-1", **changes) -> dict:
    lang, persona, user = ("zh", "default", "你好") if prompt == "zh-1" else ("en", "home", "Lights on")
    base = {"source": source, "id": prompt, "lang": lang, "persona": persona, "user": user, "candidate": k,
            "model": "embedded:m", "text": f"reply {k}", "label": 3, "judge_best": False,
            "judge_note_for_prompt": "fine"}  # fmt: skip
    return {**base, **changes}


def write(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def test_a_labels_file_of_either_pool_format_joins_its_pool_in_sample_order(project, tmp_path):
    rows = [row(k=2, label=1), row(k=0, label=5), row(QUALITY, k=1, prompt="en-1", label=4)]
    prompts = read_labels(write(tmp_path / "l.jsonl", rows), project)
    zh, en = prompts
    assert (zh.source, zh.indices, zh.labels, zh.tokens) == (RERANK, [0, 2], [5, 1], [3, 5])
    assert [(c.text, c.j, c.finished) for c in zh.candidates] == [("reply 0", -0.5, True), ("reply 2", -2.5, False)]
    assert zh.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]
    assert zh.context == "user: 你好"
    assert (en.source, en.system, en.labels) == (QUALITY, "You run a home.", [4])  # the persona set's text
    assert not hasattr(en, "judge_best") and not hasattr(en, "judge_note_for_prompt")  # never a feature


@pytest.mark.parametrize(
    "bad, field, problem",
    [
        ({"label": 6}, "label", "must be 1 to 5 (got 6)"),
        ({"label": 0}, "label", "must be 1 to 5"),
        ({"label": "3"}, "label", "must be an integer"),
        ({"label": True}, "label", "must be an integer"),
        ({"source": "bench/rerank/nope.json"}, "source", "is not a pool file of the project"),
        ({"source": "README.md"}, "source", "is not a pool file of the project"),
        ({"source": "bench/rerank/../../README.md"}, "source", "is not a pool file"),
        ({"candidate": 3}, "candidate", "3 is out of range: prompt 'zh-1' has 3 candidates"),
        ({"candidate": -1}, "candidate", "out of range"),
        ({"text": "reply 0, edited"}, "text", "does not match candidate 0 of prompt 'zh-1'"),
        ({"id": "zh-9"}, "id", "no prompt 'zh-9'"),
        ({"model": "embedded:other"}, "model", "but bench/rerank/samples-test-t0.7.json has 'embedded:m'"),
        ({"lang": "fr"}, "lang", "must be one of zh, en"),
        ({"user": "hello"}, "user", "does not match prompt 'zh-1'"),
        ({"persona": "home"}, "persona", "is 'home', but"),
    ],
)
def test_a_bad_row_is_refused_naming_the_file_line_and_field(project, tmp_path, bad, field, problem):
    path = write(tmp_path / "l.jsonl", [row(k=1), row(**bad)])
    with pytest.raises(LabelError) as e:
        read_labels(path, project)
    assert str(e.value).startswith(f"{path}, line 2, '{field}': "), str(e.value)
    assert problem in str(e.value)


def test_a_missing_field_a_duplicate_and_a_line_that_is_not_json_are_refused(project, tmp_path):
    missing = row()
    del missing["judge_best"]
    for rows, message in [
        ([missing], "line 1, 'judge_best': is missing"),
        ([row(), row(label=1)], "line 2, 'candidate': candidate 0 of prompt 'zh-1' is labelled twice"),
        ([row(), "{not json"], "line 2: not JSON"),
        (["[1, 2]"], "line 1: must be a JSON object"),
    ]:
        with pytest.raises(LabelError, match=message):
            read_labels(write(tmp_path / "l.jsonl", rows), project)
    with pytest.raises(LabelError, match="cannot be read"):
        read_labels(tmp_path / "absent.jsonl", project)


def test_the_project_labels_load_whole():
    prompts = read_all()
    assert LABELS_DIR == ROOT / "bench" / "labels"
    assert sum(len(p.labels) for p in prompts) == 800 and len(prompts) == 132
    pools = {p.source for p in prompts}
    assert pools == {
        "bench/rerank/samples-qwen2.5-coder-0.5b-t0.7-s14.json",
        "bench/quality/replies-qwen2.5-coder-0.5b-short-v3.json",
        "bench/quality/replies-qwen2.5-coder-1.5b-short-v3.json",
    }
    rerank = [p for p in prompts if "rerank" in p.source]
    assert all(p.indices == list(range(8)) for p in rerank)
    zh = [y for p in rerank if p.lang == "zh" for y in p.labels]
    assert round(sum(zh) / len(zh), 2) == 2.12  # the README's mean
