"""The Gradio Blocks front end: thin callbacks over ChatEngine and History, one history format.

`build_demo(engine, store)` returns Blocks without launching. Each browser session holds a
`Chat` (our own `Conversation` plus its store ids) in gr.State; `render` is the one place that
turns it into Gradio's messages format, and remembers which turn each message came from so
likes and edits find their turn.

Who is asking: the Hugging Face user when the Space has OAuth and they are signed in, else a
random id the browser keeps in its local storage (gr.BrowserState). It is never read from a
visible input; API callers pass their own random `user_id`, which only reaches their own
conversations.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
from gradio.data_classes import FileData

from .admission import Admission, bound_gradio_queue
from .chat import ChatEngine, TurnSettings
from .dialogue import Conversation, Turn
from .errors import InputError, InteractiveFormatError
from .flows import MAX_QUICK_REPLIES, Flow, FlowSet
from .history import Chat, History
from .i18n import labels, placeholder_key, translations
from .ratelimit import RateLimiter
from .speaker import Utterance, follow, wav_bytes
from .store import Store
from .store import _json as strict_json  # non-finite scores (an empty reply's) become null
from .zerogpu import on_gpu, turn_steps

LIVE_WAIT_S = 10.0  # how long a spoken reply waits for its turn's event to start (both come from one click)
UPDATE_INTERVAL_S = 0.04  # stream to the browser at most ~25 times a second
USER_ID = re.compile(r"[0-9a-f]{32}")  # a browser's id: uuid4().hex
STORAGE_KEY = "interactive_format_user"  # where the browser keeps its id
RATING_LABELS = {"like": "Like", "dislike": "Dislike"}  # the store's kinds as Gradio's feedback options

Origin = tuple[int, str, int | None]  # the (turn index, part, attachment index) a chat message shows


# A markdown link or reference definition whose target is not http(s) or mailto (javascript:, data:, ...).
UNSAFE_LINK = re.compile(r"\]\((?!\s*(?:https?://|mailto:))")
LINK_DEFINITION = re.compile(r"^( {0,3}\[[^\]\n]*\]):", re.MULTILINE)


def _escape(text: str) -> str:
    """Text from users, models or files shown literally, never as HTML (markdown still works, but
    links only to http(s) and mailto: anything else stays plain text)."""
    text = UNSAFE_LINK.sub(r"]\\(", html.escape(text, quote=False))
    return LINK_DEFINITION.sub(r"\1\\:", text)


def _unescape(shown: str) -> str:
    """The text a user edited back from its escaped form (text typed as-is stays as typed)."""
    plain = html.unescape(shown).replace("]\\(", "](")
    plain = re.sub(r"^( {0,3}\[[^\]\n]*\])\\:", r"\1:", plain, flags=re.MULTILINE)
    return plain if _escape(plain) == shown else shown


def _cell(text: str) -> str:
    """A reply squeezed into one markdown table cell."""
    text = _escape(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 400 else text[:400] + "…"


def _num(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _ranked(turn: Turn) -> list[int]:
    order = turn.meta.get("ranked") or []
    return order if sorted(order) == list(range(len(turn.candidates))) else list(range(len(turn.candidates)))


def candidates_table(turn: Turn) -> str:
    """Markdown table of a reply's candidates, best first, the shown one marked."""
    rows = ["| | score | D | J | reply |", "|---|---|---|---|---|"]
    for rank, i in enumerate(_ranked(turn), 1):
        c = turn.candidates[i]
        mark = "▶" if i == turn.chosen else str(rank)
        rows.append(f"| {mark} | {_num(c.score)} | {_num(c.d)} | {_num(c.j)} | {_cell(c.text) or '*(empty)*'} |")
    return "\n".join(rows)


def _caption_label(kind: str, meta: dict, number: int | None = None) -> str:
    if kind == "image":
        picture = f"Picture {number}" if number else "Picture"
        label = f"{picture} tags" if meta.get("kind") == "tags" else f"{picture} caption"
        return label + " and text" if meta.get("text_lines") else label
    return f"Transcript ({meta.get('language', '?')})"


def _user_messages(turn: Turn, i: int) -> list[tuple[dict, Origin]]:
    out: list[tuple[dict, Origin]] = []
    for k, a in enumerate(turn.attachments):
        if a.path and Path(a.path).is_file():  # imported chats (and cleaned-up uploads) keep only the text
            out.append(({"role": "user", "content": {"path": a.path}}, (i, "file", k)))
        if a.text:
            label = _caption_label(a.kind, a.meta, turn.picture_number(k))
            out.append(({"role": "user", "content": f"*{label}:* {_escape(a.text)}"}, (i, "caption", k)))
    if turn.text:
        out.append(({"role": "user", "content": _escape(turn.text)}, (i, "text", None)))
    if turn.error:
        out.append(({"role": "assistant", "content": f"⚠️ {_escape(turn.error)}"}, (i, "error", None)))
    return out


def _assistant_messages(turn: Turn, i: int, ranking_note: str, pending: bool) -> list[tuple[dict, Origin]]:
    out: list[tuple[dict, Origin]] = []
    if turn.notice:
        out.append(({"role": "assistant", "content": f"ℹ️ {_escape(turn.notice)}"}, (i, "notice", None)))
    if turn.error:
        return out + [({"role": "assistant", "content": f"⚠️ {_escape(turn.error)}"}, (i, "error", None))]
    out.append(({"role": "assistant", "content": _escape(turn.reply) or "…"}, (i, "reply", None)))
    if len(turn.candidates) > 1 or (turn.candidates and not pending):
        n = len(turn.candidates)
        title = f"Sampling {n} candidates…" if pending else f"{n} candidate(s), ranked"
        meta = {"title": title, "status": "pending" if pending else "done"}
        body = (
            candidates_table(turn)
            if not pending
            else "\n\n".join(f"{k + 1}. {_cell(c.text)}" for k, c in enumerate(turn.candidates))
        )
        out.append(
            (
                {"role": "assistant", "content": f"{body}\n\n*{_escape(ranking_note)}*", "metadata": meta},
                (i, "candidates", None),
            )
        )
    return out


def render(conversation: Conversation, ranking_note: str = "", pending: bool = False) -> list[tuple[dict, Origin]]:
    """Each chat message in Gradio's messages format with the turn it shows (pending: the last reply streams)."""
    out: list[tuple[dict, Origin]] = []
    last = len(conversation.turns) - 1
    for i, turn in enumerate(conversation.turns):
        if turn.role == "user":
            out += _user_messages(turn, i)
        else:
            out += _assistant_messages(turn, i, ranking_note, pending and i == last)
    return out


def to_messages(conversation: Conversation, ranking_note: str = "", pending: bool = False) -> list[dict]:
    """The conversation in Gradio's messages format."""
    return [message for message, _ in render(conversation, ranking_note, pending)]


def candidate_info(turn: Turn, browse: int | None) -> str:
    """The candidate being browsed: its place in the ranking, scores, whether it is shown, and its text."""
    order = _ranked(turn)
    idx = turn.chosen if browse is None else browse
    c = turn.candidates[idx]
    shown = "shown" if idx == turn.chosen else "not shown: *Use this reply* continues with it"
    return (
        f"**Candidate {order.index(idx) + 1}/{len(order)}** · score {_num(c.score)} · D {_num(c.d)} · "
        f"J {_num(c.j)} · {shown}\n\n{_escape(c.text) or '*(empty)*'}"
    )


def turn_result(conversation: Conversation) -> dict:
    """The API's answer for the last turn: reply, candidates with scores, caption/transcript."""
    user = next(t for t in reversed(conversation.turns) if t.role == "user")
    reply = conversation.turns[-1] if conversation.turns[-1].role == "assistant" else None
    error = user.error or (reply.error if reply else None)
    if error:
        raise InteractiveFormatError(error)
    order = _ranked(reply)
    return {
        "reply": reply.reply,
        "chosen": reply.chosen,
        "candidates": [
            {"text": c.text, "score": c.score, "d": c.d, "j": c.j, "finished": c.finished, "rank": order.index(i) + 1}
            for i, c in enumerate(reply.candidates)
        ],
        "transcript": next((a.text for a in user.attachments if a.kind == "audio"), None),
        "caption": next((a.text for a in user.attachments if a.kind == "image"), None),
        "captions": [a.text for a in user.attachments if a.kind == "image"],  # every picture's, in order
        "notice": reply.notice,
        "meta": {k: v for k, v in reply.meta.items() if k != "ranked"},
    }


def owner_of(user_id: str | None, profile: gr.OAuthProfile | None = None) -> str:
    """The store owner of a request: the signed-in Hugging Face user, else the browser's random id."""
    if profile is not None:
        return f"hf:{profile.username}"
    if isinstance(user_id, str) and USER_ID.fullmatch(user_id):
        return f"browser:{user_id}"
    raise InputError("Unknown user: reload the page (API callers: user_id is 32 hex digits, e.g. uuid4().hex).")


class View(NamedTuple):
    """What most callbacks update, in the order of build_demo's outputs (gr.skip(): unchanged)."""

    chatbot: Any
    box: Any
    chat: Chat
    status: Any
    chats: Any  # the sidebar's list of conversations
    title: Any  # the rename box
    candidate_bar: Any  # shown when the last reply can be browsed
    candidate: Any  # the browsed candidate
    pick: Any  # "Use this reply"
    branch_bar: Any  # shown when a message of this branch has other versions
    branch: Any  # which edited message the arrows switch
    retry: Any  # shown when the last reply failed (model error, timeout)


class FlowView(NamedTuple):
    """What a flow changes on the page, in the order of build_demo's flow outputs."""

    header: Any  # title and description
    chatbot: Any  # its welcome message, shown while the chat is empty
    examples: Any
    quick_replies: tuple  # MAX_QUICK_REPLIES buttons
    box: Any  # which uploads and sources the input box offers
    candidates: Any  # the settings' sliders
    lam: Any
    models: Any
    ranking_note: Any
    flow: Any  # the flow menu

    def outputs(self) -> tuple:
        """Flat, one value per output component."""
        return (*self[:3], *self.quick_replies, *self[4:])


def _header(flow: Flow) -> str:
    return f"## {_escape(flow.title)}\n{_escape(flow.description)}"


def _models_line(engine: ChatEngine) -> str:
    m = engine.config.models
    reader = getattr(engine.captioner, "reader", None)  # None: text in pictures is off (or not installed)
    text = f" + text `{reader.name}`" if reader is not None else ""
    return f"Models: chat `{m.llm}` · speech `{m.asr}` · pictures `{m.captioner}`{text}"


def _box_options(flow: Flow) -> dict:
    """The input box's file types and sources for the flow's modalities (text only: no uploads)."""
    types = [kind for kind, modality in (("image", "image"), ("audio", "voice")) if modality in flow.modalities]
    sources = (["upload"] if types else []) + (["microphone"] if "voice" in flow.modalities else [])
    return {"file_types": types, "sources": sources}


class LiveTurn:
    """A running turn, as the spoken reply follows it: the shown reply once sampling has begun."""

    def __init__(self, chat: Chat) -> None:
        self.chat, self.status, self.done = chat, "", threading.Event()

    def shown(self) -> str:
        """The reply being streamed ("" before its first token, e.g. while a voice message is transcribed)."""
        if not (self.status.startswith("Sampling") or self.status == "Done"):  # not a refused or failed turn
            return ""
        reply = self.chat.last_reply()
        turn = self.chat.conversation.turns[reply] if reply is not None else None
        return turn.reply if turn is not None and not turn.error else ""


class ChatUI:
    """Callbacks are methods that delegate to the engine and the history, so tests can call them directly."""

    def __init__(self, engine: ChatEngine, store: Store, flows: FlowSet | None = None) -> None:
        self.engine = engine  # the start flow's; the API uses it
        self.flows = flows or FlowSet.single(engine)
        self.store = store
        self.history = History(store, engine.config.generation.system_prompt)
        self.limiter = RateLimiter(engine.config.server.rate_limit)
        server = engine.config.server  # waiting turns are bounded by expected wait, not by queue length alone
        self.admission = Admission(server.concurrency_limit, engine.config.generation.turn_timeout_s, server.max_queue)
        self.keep_uploads = engine.config.storage.persist
        self._stops: dict[str | None, threading.Event] = {}
        self._live: dict[str | None, LiveTurn] = {}  # each session's running turn, for speaking it (speak_live)
        self._steps = on_gpu(turn_steps)  # on a ZeroGPU Space the engine's part of a turn holds the GPU
        self._label = labels(engine.config.flow.language)  # the UI's language is the start flow's

    def _engine(self, chat: Chat) -> ChatEngine:
        """The engine of the chat's flow."""
        return self.flows.engine(chat.flow)

    def _new(self, flow: str | None) -> Chat:
        """An empty chat in `flow`, with that flow's persona."""
        name = self.flows.known(flow)
        return self.history.new(self.flows.engine(name).config.generation.system_prompt, name)

    # --- views ---------------------------------------------------------------------------

    def view(self, chat: Chat, owner: str, status: str = "Ready", box: Any = None) -> View:
        """Everything shown for `chat` (box: the input box's update; None leaves it as it is)."""
        reply = chat.last_reply()
        turn = chat.conversation.turns[reply] if reply is not None else None
        branches = self.history.branches(owner, chat) if chat.id else []
        choices = [(self._branch_label(chat, b), b.index) for b in branches]
        chats = self.store.list(owner)
        title = next((c.title for c in chats if c.id == chat.id), "")
        return View(
            chatbot=gr.update(
                value=to_messages(chat.conversation, self._engine(chat).ranking_note),
                feedback_value=self._ratings(chat, owner),
            ),
            box=gr.skip() if box is None else box,
            chat=chat,
            status=status,
            chats=gr.Radio(choices=[(c.title, c.id) for c in chats], value=chat.id),
            title=title,
            candidate_bar=gr.update(visible=turn is not None),
            candidate=candidate_info(turn, chat.browse) if turn is not None else "",
            pick=gr.Button(interactive=turn is not None and chat.browse not in (None, turn.chosen)),
            branch_bar=gr.update(visible=bool(branches)),
            branch=gr.Dropdown(choices=choices, value=choices[-1][1] if choices else None),
            retry=gr.update(visible=_failed_reply(chat) is not None),
        )

    def _ratings(self, chat: Chat, owner: str) -> list[str | None]:
        """The like/dislike shown on each assistant message (Gradio counts them in order), from the store."""
        saved = self.store.ratings(owner, chat.turn_ids) if chat.id else {}
        marks = {i: RATING_LABELS[saved[tid]] for i, tid in enumerate(chat.turn_ids) if tid in saved}
        return [
            marks.get(i) if part == "reply" else None
            for message, (i, part, _) in render(chat.conversation)
            if message["role"] == "assistant"
        ]

    @staticmethod
    def _branch_label(chat: Chat, b) -> str:
        turn = chat.conversation.turns[b.index]
        text = " ".join(turn.text.split()) or "(picture or voice)"
        text = text if len(text) <= 40 else text[:39] + "…"
        return f"{b.position + 1}/{b.count}: “{text}”"

    def _streaming(self, chat: Chat, status: str) -> View:
        locked = gr.MultimodalTextbox(value=None, interactive=False)
        skip = gr.skip()
        messages = to_messages(
            chat.conversation, self._engine(chat).ranking_note, pending=status.startswith("Sampling")
        )
        hidden = gr.update(visible=False)  # no browsing, picking or switching while a reply streams
        return View(messages, locked, chat, status, skip, skip, hidden, skip, skip, hidden, skip, hidden)

    def _unchanged(self, chat: Chat, status: str = "Ready") -> View:
        skip = gr.skip()
        return View(skip, skip, chat, status, skip, skip, skip, skip, skip, skip, skip, skip)

    # --- identity and the sidebar ----------------------------------------------------------

    def load(
        self, user_id: str | None, request: gr.Request | None = None, profile: gr.OAuthProfile | None = None
    ) -> tuple:
        """Page load: give a new browser its random id, list its conversations, start a new chat.

        The chat is in the flow named by the page's `?flow=NAME`, else the start flow.
        """
        if profile is None and not (isinstance(user_id, str) and USER_ID.fullmatch(user_id)):
            user_id = uuid.uuid4().hex
        ready = gr.MultimodalTextbox(interactive=True)  # typing starts once the user is known
        asked = request.query_params.get("flow") if request is not None else None
        try:
            chat = self._new(asked)
        except InteractiveFormatError as e:  # that flow's models cannot load: the start flow instead
            gr.Warning(_escape(str(e)))
            chat = self._new(None)
        return (user_id, *self.view(chat, owner_of(user_id, profile), box=ready))

    def new_chat(self, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None) -> View:
        """A fresh chat in the same flow."""
        return self.view(
            self._new(chat.flow), owner_of(user_id, profile), box=gr.MultimodalTextbox(value=None, interactive=True)
        )

    def switch_flow(
        self, name: str | None, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None
    ) -> View:
        """Start a new chat in another flow (its models load the first time it is used; then it is instant)."""

        def run(owner: str) -> View:
            fresh = self._new(name)
            return self.view(fresh, owner, status="Ready", box=gr.MultimodalTextbox(value=None, interactive=True))

        return self._guarded(chat, run, user_id, profile)

    def flow_view(self, chat: Chat) -> FlowView:
        """The page as the chat's flow wants it: header, welcome, examples, buttons, uploads, settings."""
        name = self.flows.known(chat.flow)
        flow, engine = self.flows.flow(name), self.flows.engine(name)
        replies = list(flow.quick_replies) + [""] * (MAX_QUICK_REPLIES - len(flow.quick_replies))
        return FlowView(
            header=_header(flow),
            chatbot=gr.update(placeholder=_escape(flow.welcome) or None),
            examples=gr.Dataset(samples=[[e] for e in flow.examples], visible=bool(flow.examples)),
            quick_replies=tuple(gr.Button(value=text or " ", visible=bool(text)) for text in replies),
            box=gr.update(placeholder=self._label(placeholder_key(flow.modalities)), **_box_options(flow)),
            candidates=engine.default_settings().num_candidates,
            lam=engine.default_settings().lam,
            models=_models_line(engine),
            ranking_note=f"*{_escape(engine.ranking_note)}*",
            flow=name,
        )

    def show_flow(self, chat: Chat) -> tuple:
        """flow_view as the flat tuple Gradio expects."""
        return self.flow_view(chat).outputs()

    def example(self, sample: list | None) -> Any:
        """A clicked example goes into the input box (to edit or send)."""
        text = sample[0] if sample else ""
        return gr.MultimodalTextbox(value={"text": text, "files": []})

    def open(self, cid: str | None, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None) -> View:
        """Show one of the user's conversations (chosen in the sidebar), answered in the current flow."""

        def run(owner: str) -> View:
            opened = self.history.open(owner, cid or "")
            opened.flow = chat.flow
            return self.view(opened, owner)

        return self._guarded(chat, run, user_id, profile)

    def rename(self, chat: Chat, title: str, user_id: str | None, profile: gr.OAuthProfile | None = None) -> View:
        def run(owner: str) -> View:
            if chat.id is None:
                raise InputError("Send a message first; an empty chat is not saved.")
            self.store.rename(owner, chat.id, title)
            return self.view(chat, owner)

        return self._guarded(chat, run, user_id, profile)

    def delete(self, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None) -> View:
        def run(owner: str) -> View:
            if chat.id is not None:
                self.store.delete(owner, chat.id)
            return self.view(self._new(chat.flow), owner, box=gr.MultimodalTextbox(value=None, interactive=True))

        return self._guarded(chat, run, user_id, profile)

    def _guarded(
        self, chat: Chat, run: Callable[[str], View], user_id: str | None, profile: gr.OAuthProfile | None
    ) -> View:
        """run(owner), or the unchanged view with the reason shown as a warning."""
        try:
            return run(owner_of(user_id, profile))
        except InteractiveFormatError as e:
            gr.Warning(_escape(str(e)))
            return self._unchanged(chat)

    # --- turns -------------------------------------------------------------------------------

    def respond(
        self,
        message: dict | str | None,
        chat: Chat,
        n,
        temperature,
        max_new_tokens,
        lam,
        user_id: str | None,
        request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> Iterator[View]:
        """Stream one turn into the chat; the input box is locked until it ends, then the turn is saved.

        `message` is the input box's value, or the text of a quick-reply button.
        """
        message = {"text": message} if isinstance(message, str) else message or {}
        settings = TurnSettings(n, temperature, max_new_tokens, lam)
        run = partial(
            self._engine(chat).respond, chat.conversation, message.get("text"), message.get("files"), settings
        )
        yield from self._turn(run, chat, user_id, request, profile)

    def regenerate(
        self,
        chat: Chat,
        n,
        temperature,
        max_new_tokens,
        lam,
        user_id: str | None,
        request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> Iterator[View]:
        """More candidates for the last reply (the earlier ones stay browsable), or a retry of a failed one."""
        settings = TurnSettings(n, temperature, max_new_tokens, lam)
        index = chat.last_reply()
        index = _failed_reply(chat) if index is None else index
        run = partial(self._engine(chat).regenerate, chat.conversation, settings)
        yield from self._turn(run, chat, user_id, request, profile, changed=index)

    def edit(
        self,
        chat: Chat,
        n,
        temperature,
        max_new_tokens,
        lam,
        user_id: str | None,
        data: gr.EditData,
        request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> Iterator[View]:
        """The user edited one of their messages (or a caption/transcript): branch there and answer again."""
        if data.value == getattr(data, "previous_value", None):  # Gradio also reports untouched messages
            yield View(*[gr.skip()] * len(View._fields))
            return
        settings = TurnSettings(n, temperature, max_new_tokens, lam)
        try:
            owner = owner_of(user_id, profile)
        except InputError as e:
            gr.Warning(_escape(str(e)))
            yield self._unchanged(chat)
            return
        try:
            index, text, attachment_texts = self._edit_target(chat, data.index, data.value)
            self.history.edit(owner, chat, index, text, attachment_texts)
        except InteractiveFormatError as e:
            gr.Warning(_escape(str(e)))
            yield self.view(chat, owner)  # puts the message back as it was
            return
        run = partial(self._engine(chat).rerun, chat.conversation, settings)
        yield from self._turn(run, chat, user_id, request, profile)

    def _edit_target(self, chat: Chat, index: Any, value: Any) -> tuple[int, str, dict[int, str] | None]:
        """(user turn index, new text, new attachment texts) for an edit of chat message `index`."""
        origins = [origin for _, origin in render(chat.conversation)]
        if not isinstance(index, int) or not 0 <= index < len(origins) or not isinstance(value, str):
            raise InputError("That message is no longer there; please reload the conversation.")
        i, part, k = origins[index]
        turn = chat.conversation.turns[i]
        if part == "text":
            text, attachment_texts = _unescape(value).strip(), None
        elif part == "caption":
            a = turn.attachments[k]
            label = f"*{_caption_label(a.kind, a.meta, turn.picture_number(k))}:* "
            text, attachment_texts = turn.text, {k: _unescape(value.removeprefix(label)).strip()}
        else:
            raise InputError("Only your messages, picture captions and transcripts can be edited.")
        if not text and not turn.attachments:
            raise InputError("An edited message cannot be empty.")
        return i, text, attachment_texts

    def _turn(
        self,
        run: Callable[[threading.Event], Iterator[str]],
        chat: Chat,
        user_id: str | None,
        request: gr.Request | None,
        profile: gr.OAuthProfile | None,
        changed: int | None = None,
    ) -> Iterator[View]:
        """Stream the engine's steps, save what the turn left (also when stopped or cut off), show the result."""
        try:
            owner = owner_of(user_id, profile)
        except InputError as e:
            gr.Warning(_escape(str(e)))
            yield self._unchanged(chat)
            return
        try:
            self.limiter.check(owner)
            slot = self.admission.slot()  # released in the `finally` below
        except InputError as e:
            gr.Warning(_escape(str(e)))
            yield self._unchanged(chat)
            return
        stop = threading.Event()
        key = request.session_hash if request is not None else None
        self._stops[key] = stop
        live = self._live[key] = LiveTurn(chat)
        chat.browse = None
        try:
            last = 0.0
            for status, conversation in self._steps(run, chat.conversation, stop):
                chat.conversation = conversation  # the same object, unless a ZeroGPU worker sent a copy
                live.status = status
                if status.startswith("Sampling") and time.monotonic() - last < UPDATE_INTERVAL_S:
                    continue
                yield self._streaming(chat, status)
                # Counted from when the consumer asked for more (Gradio, once it sent the last update), so a
                # delay in building or sending one update never lets the next one follow it sooner.
                last = time.monotonic()
        except InteractiveFormatError as e:  # an empty submission, or nothing to regenerate
            gr.Warning(_escape(str(e)))
        finally:
            live.done.set()
            slot.release()
            self._stops.pop(key, None)
            self.history.save(owner, chat, changed)
            self._drop_uploads(chat.conversation)
        yield self.view(chat, owner, box=gr.MultimodalTextbox(value=None, interactive=True))

    def _drop_uploads(self, conversation: Conversation) -> None:
        """With storage off, delete the last message's uploaded files once they have been read."""
        if self.keep_uploads:
            return
        user = next((t for t in reversed(conversation.turns) if t.role == "user"), None)
        for a in user.attachments if user else []:
            remove_upload(a.path)

    def stop(self, request: gr.Request | None = None) -> None:
        """Ask this session's running turn to end after the current token."""
        event = self._stops.get(request.session_hash if request is not None else None)
        if event is not None:
            event.set()

    # --- candidates and feedback -------------------------------------------------------------

    def browse(self, chat: Chat, step: int) -> tuple:
        """Look at the next (+1) or previous (−1) candidate of the last reply, best first."""
        reply = chat.last_reply()
        if reply is None:
            return chat, gr.skip(), gr.skip()
        turn = chat.conversation.turns[reply]
        order = _ranked(turn)
        current = turn.chosen if chat.browse is None else chat.browse
        chat.browse = order[(order.index(current) + step) % len(order)]
        return chat, candidate_info(turn, chat.browse), gr.Button(interactive=chat.browse != turn.chosen)

    def previous_candidate(self, chat: Chat) -> tuple:
        return self.browse(chat, -1)

    def next_candidate(self, chat: Chat) -> tuple:
        return self.browse(chat, +1)

    def pick(self, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None) -> View:
        """Make the browsed candidate the shown reply; logged as (chosen, rejected) pairs."""

        def run(owner: str) -> View:
            reply = chat.last_reply()
            if reply is not None and chat.browse is not None:
                self.history.pick(owner, chat, reply, chat.browse)
            chat.browse = None
            return self.view(chat, owner)

        return self._guarded(chat, run, user_id, profile)

    def like(self, chat: Chat, user_id: str | None, data: gr.LikeData, profile: gr.OAuthProfile | None = None) -> None:
        """A thumbs up/down on a reply is logged for the shown candidate; clicking it again takes it back."""
        origins = [origin for _, origin in render(chat.conversation)]
        kind = (
            {True: "like", False: "dislike", "": "clear"}.get(data.liked)
            if isinstance(data.liked, (bool, str))
            else None
        )
        if kind is None or not isinstance(data.index, int) or not 0 <= data.index < len(origins):
            return
        index = origins[data.index][0]
        turn = chat.conversation.turns[index]
        if turn.role != "assistant" or not turn.candidates:
            return
        try:
            self.history.feedback(owner_of(user_id, profile), chat, index, kind)
        except InteractiveFormatError as e:
            gr.Warning(_escape(str(e)))

    def switch_branch(
        self, chat: Chat, index: int | None, step: int, user_id: str | None, profile: gr.OAuthProfile | None = None
    ) -> View:
        """Show another version of an edited message (and the newest turns after it)."""

        def run(owner: str) -> View:
            if index is not None:
                self.history.switch(owner, chat, int(index), step)
            return self.view(chat, owner)

        return self._guarded(chat, run, user_id, profile)

    def older_version(
        self, chat: Chat, index: int | None, user_id: str | None, profile: gr.OAuthProfile | None = None
    ) -> View:
        return self.switch_branch(chat, index, -1, user_id, profile)

    def newer_version(
        self, chat: Chat, index: int | None, user_id: str | None, profile: gr.OAuthProfile | None = None
    ) -> View:
        return self.switch_branch(chat, index, +1, user_id, profile)

    # --- export and import -------------------------------------------------------------------

    def export_chat(self, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None) -> str | None:
        """This conversation as a JSON file (the format is in store.py's docstring)."""
        if chat.id is None:
            gr.Warning("Send a message first; an empty chat is not saved.")
            return None
        return self._export(
            lambda owner: _json_file(self.store.export(owner, chat.id), f"chat-{chat.id[:8]}.json"), user_id, profile
        )

    def export_all(self, user_id: str | None, profile: gr.OAuthProfile | None = None) -> str | None:
        """All of the user's conversations as one JSON file."""
        return self._export(lambda owner: _json_file(self.store.export(owner), "chats.json"), user_id, profile)

    def export_pairs(self, user_id: str | None, profile: gr.OAuthProfile | None = None) -> str | None:
        """The user's picks as (context, chosen, rejected) JSON lines: extra training data for D."""
        return self._export(
            lambda owner: _text_file(self.store.preferences_jsonl(owner), "preferences.jsonl"), user_id, profile
        )

    def _export(self, run: Callable[[str], str], user_id: str | None, profile: gr.OAuthProfile | None) -> str | None:
        try:
            return run(owner_of(user_id, profile))
        except InteractiveFormatError as e:
            gr.Warning(_escape(str(e)))
            return None

    def import_chats(
        self, path: str | None, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None
    ) -> View:
        """Add the conversations of an export file; the first one is opened. Bad files are refused whole."""

        def run(owner: str) -> View:
            if not path:
                raise InputError("Choose a conversation export (.json) to import.")
            cids = self.store.import_file(owner, path)
            gr.Info(f"Imported {len(cids)} conversation(s).")
            opened = self.history.open(owner, cids[0]) if cids else chat
            opened.flow = chat.flow
            return self.view(opened, owner)

        return self._guarded(chat, run, user_id, profile)

    # --- spoken replies ------------------------------------------------------------------------

    def speak_live(self, chat: Chat, on: bool, request: gr.Request | None = None) -> Iterator[bytes]:
        """With the speaker on: this session's turn (started by the same click), spoken sentence by sentence
        while it streams, as WAV chunks for a streaming gr.Audio. Skipped sentences' notes are shown as toasts."""
        speaker = self._engine(chat).speaker
        if not on or speaker is None:
            return
        key = request.session_hash if request is not None else None
        deadline = time.monotonic() + LIVE_WAIT_S
        while (live := self._live.get(key)) is None or live.chat is not chat:  # the turn's event may start later
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        yield from self._voiced(follow(live.shown, live.done.is_set, speaker))

    def speak_shown(self, chat: Chat, on: bool) -> Iterator[bytes]:
        """With the speaker on: the reply now shown (e.g. the candidate just picked), sentence by sentence."""
        speaker = self._engine(chat).speaker
        reply = chat.last_reply()
        if on and speaker is not None and reply is not None:
            yield from self._voiced(speaker.stream(chat.conversation.turns[reply].reply))

    @staticmethod
    def _voiced(utterances: Iterator[Utterance]) -> Iterator[bytes]:
        notes = []
        for u in utterances:
            if len(u.audio):
                yield wav_bytes(u.audio, u.rate)
            elif u.note and u.note not in notes:
                notes.append(u.note)
                gr.Info(_escape(u.note))

    @staticmethod
    def _spoken_file(engine: ChatEngine, text: str) -> dict:
        """The API's spoken reply: {"audio": a WAV file (or None), "audio_notes": why parts were not spoken}."""
        if engine.speaker is None:
            return {"audio": None, "audio_notes": [engine.speaker_note or "Spoken replies are off on this server."]}
        spoken = engine.speaker.speak(text)
        if not len(spoken.audio):
            return {"audio": None, "audio_notes": list(spoken.notes)}
        from gradio.processing_utils import save_bytes_to_cache
        from gradio.utils import get_upload_folder

        # In Gradio's own cache, which it serves (and cleans up with the uploads: delete_cache).
        path = save_bytes_to_cache(wav_bytes(spoken.audio, spoken.rate), "reply.wav", get_upload_folder())
        audio = FileData(path=path, orig_name="reply.wav", mime_type="audio/wav").model_dump()
        return {"audio": audio, "audio_seconds": round(spoken.seconds, 2), "audio_notes": list(spoken.notes)}

    # --- API -----------------------------------------------------------------------------------

    def api_chat(
        self,
        message: str,
        image: str | None,
        audio: str | None,
        candidates: float,
        temperature: float,
        max_new_tokens: float,
        speak: bool = False,
        request: gr.Request | None = None,
    ) -> dict:
        """One stateless turn: text plus optional picture/voice file -> reply and ranked candidates
        (with `speak`, also the reply spoken: a WAV file under "audio", and "audio_notes")."""
        conversation = self.engine.new_conversation()
        try:
            self.limiter.check(_client_key(request))
            settings = self._settings(candidates, temperature, max_new_tokens)
            with self.admission.turn():
                try:
                    for _ in self.engine.respond(conversation, message, [f for f in (image, audio) if f], settings):
                        pass
                finally:
                    self._drop_uploads(conversation)
            result = turn_result(conversation)
            return {**result, **self._spoken_file(self.engine, result["reply"])} if speak else result
        except InteractiveFormatError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def generate_and_rank(
        self, message: str, candidates: int = 4, temperature: float = 0.7, max_new_tokens: int = 128
    ) -> str:
        """Sample several replies to one message with the chat model and rank them by λ·D + (1−λ)·J.

        Nothing is stored.

        Args:
            message: The message to answer, as plain text.
            candidates: How many replies to sample (1 to 16).
            temperature: Sampling temperature (0.05 to 2); higher gives more varied replies.
            max_new_tokens: The longest reply, in tokens (1 to 1024).
        Returns:
            JSON text: the best reply and every candidate with its text, rank (1 = best) and score
            plus d (the discriminator's P(human)) and j (mean token log-prob).
        """
        return strict_json(self.api_chat(message, None, None, candidates, temperature, max_new_tokens, False))

    def api_reply(
        self,
        conversation_id: str,
        message: str,
        image: str | None,
        audio: str | None,
        candidates: float,
        temperature: float,
        max_new_tokens: float,
        user_id: str,
    ) -> dict:
        """One turn in a stored conversation ("" starts a new one); returns its id with the turn's result."""
        try:
            owner = owner_of(user_id)
            chat = self.history.open(owner, conversation_id) if conversation_id else self.history.new()
            settings = self._settings(candidates, temperature, max_new_tokens)
            self.limiter.check(owner)
            with self.admission.turn():
                try:
                    for _ in self.engine.respond(
                        chat.conversation, message, [f for f in (image, audio) if f], settings
                    ):
                        pass
                finally:
                    self.history.save(owner, chat)
                    self._drop_uploads(chat.conversation)
            return {"conversation_id": chat.id, **turn_result(chat.conversation)}
        except InteractiveFormatError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def api_pick(self, conversation_id: str, candidate: float, user_id: str) -> dict:
        """Show candidate `candidate` (an index) of the conversation's last reply; logged as preference pairs."""
        try:
            owner = owner_of(user_id)
            chat = self.history.open(owner, conversation_id)
            if candidate is None:
                raise InputError("Say which candidate to pick: its index in the reply's candidates.")
            reply = chat.last_reply()
            if reply is None:
                raise InputError("This conversation has no reply to pick from.")
            self.history.pick(owner, chat, reply, int(candidate))
            return {"conversation_id": chat.id, "chosen": int(candidate), "reply": chat.conversation.turns[reply].reply}
        except InteractiveFormatError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def api_conversations(self, user_id: str) -> list[dict]:
        """The caller's conversations, newest first."""
        try:
            return [dataclasses.asdict(info) for info in self.store.list(owner_of(user_id))]
        except InteractiveFormatError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def api_conversation(self, conversation_id: str, user_id: str) -> dict:
        """One of the caller's conversations in the export format; anyone else's is "No such conversation."."""
        try:
            return self.store.export(owner_of(user_id), conversation_id)
        except InteractiveFormatError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def _settings(self, candidates: float, temperature: float, max_new_tokens: float) -> TurnSettings:
        defaults = self.engine.default_settings()
        return TurnSettings(
            candidates or defaults.num_candidates,
            temperature or defaults.temperature,
            max_new_tokens or defaults.max_new_tokens,
            defaults.lam,
        )


def _around(low: float, high: float, value: float) -> tuple[float, float]:
    """A slider's range widened to include the configured default (else Gradio refuses every turn)."""
    return min(low, value), max(high, value)


def _failed_reply(chat: Chat) -> int | None:
    """Index of the last turn if it is a reply that failed or was cut off by the time limit (and can be retried)."""
    turns = chat.conversation.turns
    last = turns[-1] if turns else None
    retry = last is not None and last.role == "assistant" and (last.error or last.meta.get("cut_off"))
    return len(turns) - 1 if retry else None


def _client_key(request: gr.Request | None) -> str:
    """Who is asking, for the rate limit of the stateless API: the client's address."""
    host = getattr(getattr(request, "client", None), "host", None)
    return f"ip:{host or 'unknown'}"


def remove_upload(path: str | None) -> None:
    """Delete an uploaded file, only if it lies in Gradio's upload cache (never anything else)."""
    if not path:
        return
    cache = Path(gr.utils.get_upload_folder()).resolve()
    file = Path(path).resolve()
    if file.is_file() and file.is_relative_to(cache):
        file.unlink(missing_ok=True)
        if file.parent != cache and not any(file.parent.iterdir()):
            file.parent.rmdir()


def _json_file(data: dict, name: str) -> str:
    return _text_file(json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False), name)


def _text_file(text: str, name: str) -> str:
    """`text` written to a fresh temporary folder (Gradio serves it from its own cache)."""
    path = Path(tempfile.mkdtemp(prefix="if-export-")) / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def launch_options(flow: Flow) -> dict:
    """What `launch` needs besides the address: the start flow's theme and the UI's translations."""
    return {"theme": flow.theme, "i18n": translations()}


class FlowBlocks(gr.Blocks):
    """Blocks whose `launch` brings the start flow's theme and the UI's translations (Gradio 6 takes both there)."""

    def __init__(self, flow: Flow, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.launch_defaults = launch_options(flow)

    def launch(self, *args: Any, **kwargs: Any):
        return super().launch(*args, **{**self.launch_defaults, **kwargs})


def speech_controls(engine: ChatEngine, t: Callable[[str], str]) -> tuple[gr.Checkbox, gr.Audio]:
    """The speaker toggle (on from the start in a flow with voice_replies) and the spoken reply's player."""
    available = engine.speaker is not None
    info = None if available else (engine.speaker_note or "Spoken replies are off on this server.")
    with gr.Row(elem_id="speech-row"):
        speak_on = gr.Checkbox(
            available and engine.config.flow.voice_replies, label=t("speak_replies"), interactive=available,
            info=info, elem_id="speak-toggle", scale=1,
        )  # fmt: skip
        reply_audio = gr.Audio(
            label=t("spoken_reply"), streaming=True, autoplay=True, interactive=False, elem_id="reply-audio", scale=3
        )
    return speak_on, reply_audio


def build_demo(engine: ChatEngine, store: Store, flows: FlowSet | None = None) -> gr.Blocks:
    """The app's Blocks (not launched); `flows` adds a menu to switch flows (else only the engine's own)."""
    ui = ChatUI(engine, store, flows)
    config = engine.config
    flow = config.flow
    t = labels(flow.language)
    g = engine.default_settings()
    has_d = engine.reranker.uses_discriminator
    age = config.server.upload_max_age_s
    with FlowBlocks(flow, title=flow.title, delete_cache=(min(age, 3600), age)) as demo:
        # The key survives restarts (it lives in the database), so reopened pages find their id again.
        user_id = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=store.secret("browser_state"))
        chat = gr.State(ui.history.new(flow=ui.flows.start))
        with gr.Sidebar(label=t("conversations"), elem_id="sidebar"):
            if config.server.hf_login:  # signed in, your chats belong to your Hugging Face account
                gr.LoginButton()
            flow_menu = gr.Dropdown(
                [(ui.flows.flow(name).title, name) for name in ui.flows.names],
                value=ui.flows.start,
                label=t("flow"),
                visible=len(ui.flows.names) > 1,
                elem_id="flow-menu",
            )
            new_btn = gr.Button(t("new_chat"), variant="primary", elem_id="new-chat")
            chats = gr.Radio([], label=t("your_conversations"), elem_id="chat-list")
            with gr.Accordion(t("this_conversation"), open=False, elem_id="this-chat"):
                title = gr.Textbox(label=t("title"), max_lines=1, elem_id="chat-title")
                with gr.Row():
                    rename_btn = gr.Button(t("rename"), size="sm", elem_id="rename-btn")
                    delete_btn = gr.Button(t("delete"), size="sm", variant="stop", elem_id="delete-btn")
            with gr.Accordion(t("export_import"), open=False, elem_id="export-import"):
                export_btn = gr.Button(t("export_chat"), size="sm", elem_id="export-chat")
                export_all_btn = gr.Button(t("export_all"), size="sm", elem_id="export-all")
                pairs_btn = gr.Button(t("export_pairs"), size="sm", elem_id="export-pairs")
                export_file = gr.File(label=t("download"), interactive=False, elem_id="export-file")
                import_btn = gr.UploadButton(
                    t("import_chats"), file_types=[".json"], type="filepath", size="sm", elem_id="import-btn"
                )
        header = gr.Markdown(_header(flow), elem_id="flow-header")
        with gr.Row():
            with gr.Column(scale=4):
                chatbot = gr.Chatbot(
                    label=t("conversation"),
                    height=560,
                    buttons=["copy"],
                    elem_id="chatbot",
                    editable="user",
                    allow_tags=False,
                    group_consecutive_messages=False,  # one message per bubble: edits and likes name one message
                    placeholder=_escape(flow.welcome) or None,
                )
                with gr.Group(visible=False, elem_id="candidate-bar") as candidate_bar:
                    with gr.Row():
                        prev_btn = gr.Button("‹", size="sm", scale=0, min_width=48, elem_id="cand-prev")
                        next_btn = gr.Button("›", size="sm", scale=0, min_width=48, elem_id="cand-next")
                        pick_btn = gr.Button(t("use_reply"), size="sm", scale=0, interactive=False, elem_id="cand-pick")
                        regen_btn = gr.Button(t("regenerate"), size="sm", scale=0, elem_id="regen-btn")
                    candidate = gr.Markdown(elem_id="cand-info")
                with gr.Row(visible=False, elem_id="branch-bar") as branch_bar:
                    branch = gr.Dropdown([], label=t("edited_message"), scale=4, elem_id="branch-turn")
                    branch_prev = gr.Button(t("older_version"), size="sm", scale=1, elem_id="branch-prev")
                    branch_next = gr.Button(t("newer_version"), size="sm", scale=1, elem_id="branch-next")
                with gr.Row(elem_id="quick-replies"):
                    quick = [
                        gr.Button(text or " ", size="sm", visible=bool(text), elem_id=f"quick-{k}")
                        for k, text in enumerate(
                            list(flow.quick_replies) + [""] * (MAX_QUICK_REPLIES - len(flow.quick_replies))
                        )
                    ]
                box = gr.MultimodalTextbox(
                    placeholder=t(placeholder_key(flow.modalities)),
                    file_count="multiple",
                    show_label=False,
                    interactive=False,  # until the page load has identified the user
                    elem_id="input-box",
                    **_box_options(flow),
                )
                examples = gr.Dataset(
                    components=[gr.Textbox(visible=False)],
                    samples=[[e] for e in flow.examples],
                    label=t("examples"),
                    visible=bool(flow.examples),
                    elem_id="examples",
                )
                with gr.Row():
                    stop_btn = gr.Button(t("stop"), variant="stop", elem_id="stop-btn")
                    retry_btn = gr.Button(t("retry"), visible=False, elem_id="retry-btn")
                status = gr.Markdown("Ready", elem_id="status")
                speak_on, reply_audio = speech_controls(engine, t)
            with gr.Column(scale=1, min_width=260):
                with gr.Accordion(t("settings"), open=True):
                    n = gr.Slider(*_around(1, 8, g.num_candidates), value=g.num_candidates, step=1,
                                  label=t("candidates"))  # fmt: skip
                    temperature = gr.Slider(*_around(0.1, 1.5, g.temperature), value=g.temperature, step=0.05,
                                            label=t("temperature"))  # fmt: skip
                    max_tokens = gr.Slider(*_around(16, 512, g.max_new_tokens), value=g.max_new_tokens, step=16,
                                           label=t("max_tokens"))  # fmt: skip
                    lam = gr.Slider(
                        0,
                        1,
                        value=g.lam,
                        step=0.05,
                        label=t("lam"),
                        interactive=has_d,
                        info=None if has_d else t("no_discriminator"),
                    )
                ranking_note = gr.Markdown(f"*{_escape(engine.ranking_note)}*", elem_id="ranking-note")
                models = gr.Markdown(_models_line(engine), elem_id="models")

        with gr.Column(visible=False):  # the API's inputs: not shown (wired first: its names win)
            message = gr.Textbox(label="message")
            image = gr.File(label="image", type="filepath")
            audio = gr.File(label="audio", type="filepath")
            candidates = gr.Number(label="candidates", value=g.num_candidates)
            api_temperature = gr.Number(label="temperature", value=g.temperature)
            api_max_tokens = gr.Number(label="max_new_tokens", value=g.max_new_tokens)
            conversation_id = gr.Textbox(label="conversation_id")
            candidate_idx = gr.Number(label="candidate", precision=0)
            api_user = gr.Textbox(label="user_id")
            api_speak = gr.Checkbox(label="speak", value=False)
            api_out = gr.JSON(label="result")
            api_btns = [gr.Button(name) for name in ("chat", "reply", "pick", "conversations", "conversation")]
        sampling = [message, image, audio, candidates, api_temperature, api_max_tokens]
        api_btns[0].click(ui.api_chat, [*sampling, api_speak], api_out, api_name="chat", concurrency_id="turn")
        api_btns[1].click(
            ui.api_reply, [conversation_id, *sampling, api_user], api_out, api_name="reply", concurrency_id="turn"
        )
        api_btns[2].click(ui.api_pick, [conversation_id, candidate_idx, api_user], api_out, api_name="pick")
        api_btns[3].click(ui.api_conversations, [api_user], api_out, api_name="conversations")
        api_btns[4].click(ui.api_conversation, [conversation_id, api_user], api_out, api_name="conversation")
        gr.api(ui.generate_and_rank, api_name="generate_and_rank", concurrency_id="turn")  # also the MCP tool
        view = [chatbot, box, chat, status, chats, title, candidate_bar, candidate, pick_btn, branch_bar, branch]
        view.append(retry_btn)
        flow_parts = [header, chatbot, examples, *quick, box, n, lam, models, ranking_note, flow_menu]
        knobs = [n, temperature, max_tokens, lam]
        private = {"api_visibility": "private"}
        turn = {**private, "concurrency_id": "turn"}
        demo.load(ui.load, [user_id], [user_id, *view], **private).then(ui.show_flow, [chat], flow_parts, **private)
        flow_menu.input(ui.switch_flow, [flow_menu, chat, user_id], view, **turn).then(
            ui.show_flow, [chat], flow_parts, **private
        )
        box.submit(ui.respond, [box, chat, *knobs, user_id], view, **turn)
        for button in quick:
            button.click(ui.respond, [button, chat, *knobs, user_id], view, **turn)  # sends its text
        examples.click(ui.example, [examples], [box], **private)
        regen_btn.click(ui.regenerate, [chat, *knobs, user_id], view, **turn)
        retry_btn.click(ui.regenerate, [chat, *knobs, user_id], view, **turn)
        chatbot.edit(ui.edit, [chat, *knobs, user_id], view, **turn)
        stop_btn.click(ui.stop, None, None, queue=False, **private)
        chatbot.like(ui.like, [chat, user_id], None, **private)
        prev_btn.click(ui.previous_candidate, [chat], [chat, candidate, pick_btn], **private)
        next_btn.click(ui.next_candidate, [chat], [chat, candidate, pick_btn], **private)
        pick_btn.click(ui.pick, [chat, user_id], view, **private).then(
            ui.speak_shown, [chat, speak_on], reply_audio, **private
        )  # the picked candidate is spoken (with the speaker on)
        branch_prev.click(ui.older_version, [chat, branch, user_id], view, **private)
        branch_next.click(ui.newer_version, [chat, branch, user_id], view, **private)
        new_btn.click(ui.new_chat, [chat, user_id], view, **private)
        chatbot.clear(ui.new_chat, [chat, user_id], view, **private)  # the chat's own trash icon: a fresh chat
        chats.input(ui.open, [chats, chat, user_id], view, **private)
        rename_btn.click(ui.rename, [chat, title, user_id], view, **private)
        title.submit(ui.rename, [chat, title, user_id], view, **private)
        delete_btn.click(ui.delete, [chat, user_id], view, **private)
        export_btn.click(ui.export_chat, [chat, user_id], export_file, **private)
        export_all_btn.click(ui.export_all, [user_id], export_file, **private)
        pairs_btn.click(ui.export_pairs, [user_id], export_file, **private)
        import_btn.upload(ui.import_chats, [import_btn, chat, user_id], view, **private)
        speech = {**private, "concurrency_id": "speech", "concurrency_limit": config.server.concurrency_limit}
        for trigger in [box.submit, *(b.click for b in quick), regen_btn.click, retry_btn.click, chatbot.edit]:
            trigger(ui.speak_live, [chat, speak_on], reply_audio, **speech)  # beside the turn the same event starts

    demo.queue(default_concurrency_limit=config.server.concurrency_limit, max_size=config.server.max_queue)
    bound_gradio_queue(demo, ui.admission)  # the queue may hold only turns that can finish in time
    return demo
