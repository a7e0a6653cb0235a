"""The app for programs: the `chat` endpoint over plain HTTP (the README's curl steps) and the MCP tool (`--mcp`)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest


@pytest.fixture(scope="module")
def mcp_app(engine, serve):
    """The app on the embedded models, launched as `python app.py --mcp` does; yields its URL."""
    from interactive_format.store.store import Store
    from interactive_format.web.ui import build_demo

    store = Store(":memory:")
    with serve(build_demo(engine, store), mcp_server=True) as url:
        yield url
    store.close()


def call(url: str, endpoint: str, data: list) -> tuple[str, object]:
    """Gradio's two-step HTTP protocol: POST the inputs for an event id, then GET its server-sent events."""
    posted = httpx.post(f"{url}/gradio_api/call/{endpoint}", json={"data": data}, timeout=30)
    posted.raise_for_status()
    answer = httpx.get(f"{url}/gradio_api/call/{endpoint}/{posted.json()['event_id']}", timeout=120)
    events = [block.splitlines() for block in answer.text.strip().split("\n\n")]
    event, payload = events[-1]  # the last event: "complete" or "error"
    return event.removeprefix("event: "), json.loads(payload.removeprefix("data: "))


def test_chat_over_plain_http(mcp_app):
    event, data = call(mcp_app, "chat", ["Hello! What is a good name for a cat?", None, None, 2, 0.7, 16])
    assert event == "complete"
    (result,) = data
    assert result["reply"].strip() and len(result["candidates"]) == 2
    assert {c["rank"] for c in result["candidates"]} == {1, 2}

    event, data = call(mcp_app, "chat", ["", None, None, 2, 0.7, 16])
    assert event == "error" and data["error"] == "Type a message, attach a picture or record your voice first."


def test_picture_over_plain_http(mcp_app, media):
    with open(media["coffee"], "rb") as f:
        uploaded = httpx.post(f"{mcp_app}/gradio_api/upload", files={"files": ("coffee.png", f)}, timeout=30)
    picture = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}
    event, data = call(mcp_app, "chat", ["What is this?", picture, None, 1, 0.7, 8])
    assert event == "complete" and data[0]["caption"] and data[0]["reply"].strip()


async def _mcp_session(url: str, work):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with (
        streamablehttp_client(f"{url}/gradio_api/mcp/") as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await work(session)


def test_mcp_tool_is_listed_and_callable(mcp_app):
    pytest.importorskip("mcp", reason="pip install -r requirements.txt (mcp)")

    async def work(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        result = await session.call_tool(
            "generate_and_rank", {"message": "Say hello.", "candidates": 3, "max_new_tokens": 12}
        )
        refused = await session.call_tool("generate_and_rank", {"message": "   "})
        return tools, result, refused

    tools, result, refused = asyncio.run(_mcp_session(mcp_app, work))
    tool = tools["generate_and_rank"]
    assert (
        tool.description.startswith("Sample several replies to one message")
        and "Returns: JSON text" in tool.description
    )
    properties = tool.inputSchema["properties"]
    assert properties["message"]["type"] == "string" and properties["candidates"]["type"] == "integer"
    assert "How many replies" in properties["candidates"]["description"]

    assert not result.isError
    ranked = json.loads(result.content[0].text)
    assert len(ranked["candidates"]) == 3
    best = min(ranked["candidates"], key=lambda c: c["rank"])
    fewest = min(len(c["defects"]) for c in ranked["candidates"])  # the reranker: fewest defects, then the score
    peers = [c["score"] or -1e9 for c in ranked["candidates"] if len(c["defects"]) == fewest]
    assert best["text"] == ranked["reply"] and len(best["defects"]) == fewest and best["score"] == max(peers)
    assert all(0 < c["d"] < 1 and c["j"] < 0 for c in ranked["candidates"] if c["text"].strip())

    assert refused.isError and "Type a message" in refused.content[0].text


MEMO_READER = '''
from pathlib import Path

from interactive_format.inputs.reading import Reader, Reading, ReadingMeta


class MemoReader(Reader):
    """A kind that exists only in this file: plain-text memos (.memo), read as they are."""

    kind, modality, noun, format_name = "memo", "memos", "memos", "memo"
    status, title, hint, types = "Reading your memo…", "Memo", ("attach a memo", "添加备忘"), (".memo",)

    def prompt(self, text, number):
        return f"[The user attached a memo: {text}]"

    def read(self, path, stages):
        return Reading(Path(path).read_text(encoding="utf-8"), ReadingMeta(model="plain text", ms=0))
'''


def test_a_new_input_kind_reaches_the_prompt_through_the_api_files_parameter(tmp_path, monkeypatch):
    """A reader written in a module of its own plus one registry line: the API's `files` takes it, upload to
    prompt, with no new endpoint; `chat`'s old file parameters still take any kind too."""
    import dataclasses
    import importlib
    import sys
    import uuid

    from gradio_client import Client, handle_file

    from interactive_format.flows import Flow
    from interactive_format.inputs.readers import READERS
    from interactive_format.store.store import Store
    from interactive_format.web.ui import build_demo

    from ..conftest import served
    from ..fakes import fake_engine

    (tmp_path / "memo_reader.py").write_text(MEMO_READER, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("memo_reader")
    monkeypatch.setitem(READERS, "memo", module.MemoReader())  # the registry line
    monkeypatch.delitem(sys.modules, "memo_reader")
    engine = fake_engine()
    engine.config = dataclasses.replace(engine.config, flow=Flow(modalities=("text", "memos")))
    memo = tmp_path / "shopping.memo"
    memo.write_text("milk, eggs", encoding="utf-8")
    store = Store(tmp_path / "c.db")
    try:
        with served(build_demo(engine, store)) as url:
            client = Client(url, verbose=False)
            result = client.predict("what do I buy?", [handle_file(str(memo))], 3, 0.7, 16, api_name="/chat_files")
            assert result["reply"] and not result.get("error")
            assert engine.generator.prompts[-1][-1]["content"] == "[The user attached a memo: milk, eggs]\nwhat do I buy?"
            stored = client.predict("", "and now?", [handle_file(str(memo))], 3, 0.7, 16, uuid.uuid4().hex,
                                    api_name="/reply_files")  # fmt: skip
            assert stored["conversation_id"] and "milk, eggs" in engine.generator.prompts[-1][-1]["content"]
            old = client.predict("and this?", handle_file(str(memo)), None, 3, 0.7, 16, api_name="/chat")
            assert old["reply"] and engine.generator.prompts[-1][-1]["content"].endswith("milk, eggs]\nand this?")
    finally:
        store.close()
