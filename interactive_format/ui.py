"""The Gradio Blocks front end: thin callbacks over ChatEngine, one history format.

`build_demo(engine)` returns Blocks without launching. The conversation lives in the
session's gr.State as our own `Conversation`; `to_messages` is the one place that turns it
into Gradio's messages format.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Iterator

import gradio as gr

from .chat import ChatEngine, TurnSettings
from .dialogue import Conversation, Turn
from .errors import InteractiveFormatError

UPDATE_INTERVAL_S = 0.04  # stream to the browser at most ~25 times a second


def _escape(text: str) -> str:
    """Text of ours (captions, transcripts, errors) shown literally, never as HTML."""
    return html.escape(text, quote=False)


def _cell(text: str) -> str:
    """A reply squeezed into one markdown table cell."""
    text = _escape(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 400 else text[:400] + "…"


def _num(x: float | None) -> str:
    return "–" if x is None or x == float("-inf") else f"{x:.3f}"


def candidates_table(turn: Turn) -> str:
    """Markdown table of a reply's candidates, best first, the shown one marked."""
    order = turn.meta.get("ranked") or range(len(turn.candidates))
    rows = ["| | score | D | J | reply |", "|---|---|---|---|---|"]
    for rank, i in enumerate(order, 1):
        c = turn.candidates[i]
        mark = "▶" if i == turn.chosen else str(rank)
        rows.append(f"| {mark} | {_num(c.score)} | {_num(c.d)} | {_num(c.j)} | {_cell(c.text) or '*(empty)*'} |")
    return "\n".join(rows)


def _user_messages(turn: Turn) -> list[dict]:
    out = []
    for a in turn.attachments:
        out.append({"role": "user", "content": {"path": a.path}})
        if a.text:
            if a.kind == "image":
                label = "Picture tags" if a.meta.get("kind") == "tags" else "Picture caption"
            else:
                label = f"Transcript ({a.meta.get('language', '?')})"
            out.append({"role": "user", "content": f"*{label}:* {_escape(a.text)}"})
    if turn.text:
        out.append({"role": "user", "content": turn.text})
    return out


def _assistant_messages(turn: Turn, ranking_note: str, pending: bool) -> list[dict]:
    out = []
    if turn.notice:
        out.append({"role": "assistant", "content": f"ℹ️ {_escape(turn.notice)}"})
    if turn.error:
        return out + [{"role": "assistant", "content": f"⚠️ {_escape(turn.error)}"}]
    out.append({"role": "assistant", "content": turn.reply or "…"})
    if len(turn.candidates) > 1 or (turn.candidates and not pending):
        n = len(turn.candidates)
        title = f"Sampling {n} candidates…" if pending else f"{n} candidate(s), ranked"
        meta = {"title": title, "status": "pending" if pending else "done"}
        body = candidates_table(turn) if not pending else "\n\n".join(f"{i + 1}. {_cell(c.text)}" for i, c in enumerate(turn.candidates))
        out.append({"role": "assistant", "content": f"{body}\n\n*{ranking_note}*", "metadata": meta})
    return out


def to_messages(conversation: Conversation, ranking_note: str = "", pending: bool = False) -> list[dict]:
    """The conversation in Gradio's messages format (pending: the last reply is streaming)."""
    out: list[dict] = []
    last = len(conversation.turns) - 1
    for i, turn in enumerate(conversation.turns):
        if turn.role == "user":
            out += _user_messages(turn)
            if turn.error:
                out.append({"role": "assistant", "content": f"⚠️ {_escape(turn.error)}"})
        else:
            out += _assistant_messages(turn, ranking_note, pending and i == last)
    return out


def turn_result(conversation: Conversation) -> dict:
    """The API's answer for the last turn: reply, candidates with scores, caption/transcript."""
    user = next(t for t in reversed(conversation.turns) if t.role == "user")
    reply = conversation.turns[-1] if conversation.turns[-1].role == "assistant" else None
    error = user.error or (reply.error if reply else None)
    if error:
        raise InteractiveFormatError(error)
    order = reply.meta.get("ranked", [])
    return {
        "reply": reply.reply,
        "chosen": reply.chosen,
        "candidates": [
            {"text": c.text, "score": c.score, "d": c.d, "j": c.j, "finished": c.finished, "rank": order.index(i) + 1}
            for i, c in enumerate(reply.candidates)
        ],
        "transcript": next((a.text for a in user.attachments if a.kind == "audio"), None),
        "caption": next((a.text for a in user.attachments if a.kind == "image"), None),
        "notice": reply.notice,
        "meta": {k: v for k, v in reply.meta.items() if k != "ranked"},
    }


class ChatUI:
    """Callbacks are methods that delegate to the engine, so tests can call them directly."""

    def __init__(self, engine: ChatEngine) -> None:
        self.engine = engine
        self._stops: dict[str, threading.Event] = {}

    def respond(self, message: dict | None, conversation: Conversation, n, temperature, max_new_tokens, lam, request: gr.Request | None = None) -> Iterator[tuple]:
        """Stream one turn into the chat; the input box is locked until it ends."""
        message = message or {}
        settings = TurnSettings(n, temperature, max_new_tokens, lam)
        stop = threading.Event()
        key = request.session_hash if request is not None else None
        self._stops[key] = stop
        note = self.engine.ranking_note
        locked = gr.MultimodalTextbox(value=None, interactive=False)
        try:
            last = 0.0
            for status in self.engine.respond(conversation, message.get("text"), message.get("files"), settings, stop):
                now = time.monotonic()
                if status.startswith("Sampling") and now - last < UPDATE_INTERVAL_S:
                    continue
                last = now
                yield to_messages(conversation, note, pending=status.startswith("Sampling")), locked, conversation, status
        except InteractiveFormatError as e:  # an empty submission: nothing was added
            gr.Warning(str(e))
        finally:
            self._stops.pop(key, None)
        yield to_messages(conversation, note), gr.MultimodalTextbox(value=None, interactive=True), conversation, "Ready"

    def stop(self, request: gr.Request | None = None) -> None:
        """Ask this session's running turn to end after the current token."""
        event = self._stops.get(request.session_hash if request is not None else None)
        if event is not None:
            event.set()

    def clear(self) -> tuple:
        return [], gr.MultimodalTextbox(value=None, interactive=True), self.engine.new_conversation(), "Ready"

    def api_chat(self, message: str, image: str | None, audio: str | None, candidates: float, temperature: float, max_new_tokens: float) -> dict:
        """One stateless turn: text plus optional picture/voice file -> reply and ranked candidates."""
        conversation = self.engine.new_conversation()
        files = [f for f in (image, audio) if f]
        defaults = self.engine.default_settings()
        settings = TurnSettings(candidates or defaults.num_candidates, temperature or defaults.temperature, max_new_tokens or defaults.max_new_tokens, defaults.lam)
        try:
            for _ in self.engine.respond(conversation, message, files, settings):
                pass
            return turn_result(conversation)
        except InteractiveFormatError as e:
            raise gr.Error(str(e), print_exception=False) from None


def build_demo(engine: ChatEngine) -> gr.Blocks:
    """The app's Blocks (not launched)."""
    ui = ChatUI(engine)
    config = engine.config
    g = engine.default_settings()
    has_d = engine.reranker.uses_discriminator
    with gr.Blocks(title=config.server.title) as demo:
        gr.Markdown(
            f"## {_escape(config.server.title)}\n"
            "Type, send a picture, or speak. Each reply is chosen from several sampled candidates."
        )
        conversation = gr.State(engine.new_conversation())
        with gr.Row():
            with gr.Column(scale=4):
                chatbot = gr.Chatbot(label="Conversation", height=560, buttons=["copy"], elem_id="chatbot")
                box = gr.MultimodalTextbox(
                    placeholder="Type a message, attach a picture, or record your voice…",
                    file_types=["image", "audio"],
                    file_count="multiple",
                    sources=["upload", "microphone"],
                    show_label=False,
                    elem_id="input-box",
                )
                with gr.Row():
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
                    clear_btn = gr.Button("Clear conversation", elem_id="clear-btn")
                status = gr.Markdown("Ready", elem_id="status")
            with gr.Column(scale=1, min_width=260):
                with gr.Accordion("Settings", open=True):
                    n = gr.Slider(1, 8, value=g.num_candidates, step=1, label="Candidates per reply")
                    temperature = gr.Slider(0.1, 1.5, value=g.temperature, step=0.05, label="Temperature")
                    max_tokens = gr.Slider(16, 512, value=g.max_new_tokens, step=16, label="Max new tokens")
                    lam = gr.Slider(0, 1, value=g.lam, step=0.05, label="λ (discriminator weight)", interactive=has_d,
                                    info=None if has_d else "Inactive: no trained discriminator yet")
                gr.Markdown(f"*{_escape(engine.ranking_note)}*", elem_id="ranking-note")
                m = config.models
                gr.Markdown(f"Models: chat `{m.llm}` · speech `{m.asr}` · pictures `{m.captioner}`")
        outputs = [chatbot, box, conversation, status]
        box.submit(ui.respond, [box, conversation, n, temperature, max_tokens, lam], outputs, api_visibility="private",
                   concurrency_id="turn")
        stop_btn.click(ui.stop, None, None, queue=False, api_visibility="private")
        clear_btn.click(ui.clear, None, outputs, api_visibility="private")
        chatbot.clear(ui.clear, None, outputs, api_visibility="private")  # the chat's own trash icon
        with gr.Column(visible=False):
            api_inputs = [
                gr.Textbox(label="message"),
                gr.File(label="image", type="filepath"),
                gr.File(label="audio", type="filepath"),
                gr.Number(label="candidates", value=g.num_candidates),
                gr.Number(label="temperature", value=g.temperature),
                gr.Number(label="max_new_tokens", value=g.max_new_tokens),
            ]
            api_out = gr.JSON(label="result")
            api_btn = gr.Button("api")
        api_btn.click(ui.api_chat, api_inputs, api_out, api_name="chat", concurrency_id="turn")
    demo.queue(default_concurrency_limit=config.server.concurrency_limit, max_size=config.server.max_queue)
    return demo
