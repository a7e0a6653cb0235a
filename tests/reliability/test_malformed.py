"""≥ 200 malformed inputs against the served app: each is refused with a clear reason, the server keeps answering."""

from __future__ import annotations

import json
import re
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from .conftest import new_user, reply
from .corpus import Case, malformed_cases

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability"
GENERIC = "has raised an exception"  # gradio's text for an error the app did not explain


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Case]:
    return malformed_cases(tmp_path_factory.mktemp("malformed"))


def send(client: Client, case: Case) -> str:
    """The refusal's message ('' if the input was accepted)."""
    file = handle_file(str(case.file)) if case.file is not None else None
    try:
        reply(client, new_user(), case.text, image=file if case.slot == "image" else None,
              audio=file if case.slot == "audio" else None)  # fmt: skip
    except AppError as e:
        return str(e)
    return ""


def clear(message: str, case: Case) -> bool:
    """A refusal a person can act on: our reason, short, one line of printable text."""
    printable = all(unicodedata.category(c)[0] != "C" for c in message)
    return (
        bool(re.search(case.expect, message, re.IGNORECASE))
        and GENERIC not in message
        and printable
        and len(message) < 600
    )


@pytest.mark.slow
def test_every_malformed_input_is_refused_clearly_and_the_server_keeps_answering(rel_server, rel_client, cases):
    assert len(cases) >= 200
    first = reply(rel_client, new_user(), "Say hello.")
    assert first["reply"].strip()
    clients = [Client(rel_server, verbose=False) for _ in range(3)]
    started = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        messages = list(pool.map(lambda ic: send(clients[ic[0] % len(clients)], ic[1]), enumerate(cases)))
    seconds = time.perf_counter() - started
    unclear = [(c.label, m) for c, m in zip(cases, messages, strict=True) if not clear(m, c)]
    after = reply(rel_client, new_user(), "Are you still there?")
    assert after["reply"].strip()  # still answering, and answering well
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    summary = {"tried": len(cases), "handled": len(cases) - len(unclear), "seconds": round(seconds, 1),
               "by_kind": {k: sum(c.kind == k for c in cases) for k in ("image", "audio", "text", "name")},
               "examples": {c.label: m for c, m in list(zip(cases, messages))[::25]}}  # fmt: skip
    (ARTIFACTS / "malformed.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    print(f"\nmalformed inputs: {summary['tried']} tried, {summary['handled']} refused clearly in {seconds:.1f} s")
    assert unclear == []


def test_a_conversation_keeps_every_turn_through_bad_inputs(rel_client, cases):
    user = new_user()
    cid = reply(rel_client, user, "Name a colour.")["conversation_id"]
    bad = [c for c in cases if c.kind in ("image", "audio", "text")][::30]
    for case in bad:
        file = handle_file(str(case.file)) if case.file is not None else None
        with pytest.raises(AppError):
            reply(rel_client, user, case.text, cid, image=file if case.slot == "image" else None,
                  audio=file if case.slot == "audio" else None)  # fmt: skip
    assert reply(rel_client, user, "And another colour?", cid)["reply"].strip()
    saved = rel_client.predict(conversation_id=cid, user_id=user, api_name="/conversation")
    messages = saved["conversations"][0]["messages"]
    assert [m["role"] for m in messages][:2] == ["user", "assistant"] and len(messages) == 2 + len(bad) + 2
    assert messages[-2]["content"] == "And another colour?" and messages[-1]["content"].strip()
