"""The app for programs: the `chat` endpoint over plain HTTP (the README's curl steps) and the MCP tool (`--mcp`)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest


@pytest.fixture(scope="module")
def mcp_app(engine, serve):
    """The app on the embedded models, launched as `python app.py --mcp` does; yields its URL."""
    from interactive_format.store import Store
    from interactive_format.ui import build_demo

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
