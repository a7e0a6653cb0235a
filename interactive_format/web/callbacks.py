"""The page's callbacks: thin methods over ChatEngine and History, so tests call them directly.

Each browser session holds a `Chat` (our own `Conversation` plus its store ids) in gr.State;
`rendering.render` turns it into Gradio's messages. Who is asking: the Hugging Face user when
the Space has OAuth and they are signed in, else a random id the browser keeps in its local
storage (gr.BrowserState), never read from a visible input (`api.owner_of`). `ChatUI._attempt`
is the one owner and error boundary: a user-facing error is shown as a warning, never raised.
All persistence goes through `History`; `ui.build_demo` lays the page out and wires it here.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, NamedTuple, TypeVar

import gradio as gr

from ..engine.admission import Admission
from ..engine.chat import ChatEngine, TurnSettings
from ..engine.engines import FlowSet
from ..engine.history import Chat, History, Store  # Store only as a type: every call goes through History
from ..engine.ratelimit import RateLimiter
from ..errors import InteractiveFormatError
from ..flows import MAX_QUICK_REPLIES
from .api import USER_ID, ChatAPI, owner_of, queued_since
from .exports import ChatFiles
from .i18n import labels, localize, placeholder_key, tr, ui_language
from .rendering import (
    box_options,
    branch_label,
    candidate_info,
    candidates_panel,
    chat_title,
    edit_target,
    escape,
    failed_reply,
    header,
    models_line,
    ranked,
    render,
    to_messages,
)
from .talk import TALK_STATUS, LiveTurn, SpokenReplies, speech_note
from .zerogpu import on_gpu, turn_steps

UPDATE_INTERVAL_S = 0.04  # stream to the browser at most ~25 times a second
STORAGE_KEY = "interactive_format_user"  # where the browser keeps its id
OPEN_KEY = "interactive_format_open"  # where the browser keeps the conversation it has open (reopened on reload)
RATING_LABELS = {"like": "Like", "dislike": "Dislike"}  # the store's kinds as Gradio's feedback options
T = TypeVar("T")


def warn(error: Exception | str, lang: str = "en") -> None:
    """A user-facing error on the page, in the page's language: a Gradio warning, its text shown literally."""
    gr.Warning(escape(localize(str(error), lang)))


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
    candidate_list: Any  # all candidates of the last reply, best first, and why the shown one won
    pick: Any  # "Use this reply"
    branch_bar: Any  # shown when a message of this branch has other versions
    branch: Any  # which edited message the arrows switch
    retry: Any  # shown when the last reply failed (model error, timeout)
    open_chat: Any  # the conversation the browser has open (kept in its local storage: a reload reopens it)


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
    speak: Any  # the speaker toggle: on in a flow with voice_replies (when this server can speak)
    talk_bar: Any  # talk mode: offered in flows that take voice
    talk_status: Any  # talk mode's state line, in the tab's language

    def outputs(self) -> tuple:
        """Flat, one value per output component."""
        return (*self[:3], *self.quick_replies, *self[4:])


class ChatUI(SpokenReplies, ChatFiles):
    """Callbacks are methods that delegate to the engine and the history, so tests can call them directly.

    Its parts are made outside and passed in (`chat_ui` makes them from the config); the spoken-reply and
    talk-mode callbacks come from `talk.SpokenReplies`."""

    def __init__(self, api: ChatAPI, flows: FlowSet | None = None) -> None:
        self.api = api  # the page shares the API's start-flow engine, history, rate limit and admission
        self.engine, self.history = api.engine, api.history  # History: the UI's only way to the store
        self.limiter, self.admission = api.limiter, api.admission
        self.flows = flows or FlowSet.single(api.engine)
        self._stops: dict[str | None, threading.Event] = {}
        self._live: dict[str | None, LiveTurn] = {}  # each session's running turn, for speaking it (speak_live)
        self._steps = on_gpu(turn_steps)  # on a ZeroGPU Space the engine's part of a turn holds the GPU
        self._label = labels(api.engine.config.flow.language)  # the UI's language is the start flow's

    def _engine(self, chat: Chat) -> ChatEngine:
        """The engine of the chat's flow."""
        return self.flows.engine(chat.flow)

    def _new(self, flow: str | None, language: str = "en") -> Chat:
        """An empty chat in `flow`, with that flow's persona, in the tab's language."""
        name = self.flows.known(flow)
        return self.history.new(self.flows.engine(name).config.generation.system_prompt, name, language)

    # --- views ---------------------------------------------------------------------------

    def view(self, chat: Chat, owner: str, status: str = "Ready", box: Any = None) -> View:
        """Everything shown for `chat` (box: the input box's update; None leaves it as it is)."""
        lang = chat.language
        reply = chat.last_reply()
        # The panel shows the last turn's candidates: after a refused message it has none to show.
        turn = chat.conversation.turns[reply] if reply == len(chat.conversation.turns) - 1 else None
        branches = self.history.branches(owner, chat) if chat.id else []
        choices = [(branch_label(chat, b), b.index) for b in branches]
        chats = self.history.conversations(owner)
        title = next((chat_title(c.title, lang) for c in chats if c.id == chat.id), "") if chat.id else ""
        return View(
            chatbot=gr.update(value=to_messages(chat.conversation, lang), feedback_value=self._ratings(chat, owner)),
            box=gr.skip() if box is None else box,
            chat=chat,
            status=localize(status, lang),
            chats=gr.Radio(choices=[(chat_title(c.title, lang), c.id) for c in chats], value=chat.id),
            title=title,
            candidate_bar=gr.update(visible=turn is not None),
            candidate=candidate_info(turn, chat.browse, lang) if turn is not None else "",
            candidate_list=candidates_panel(turn, self._engine(chat).ranking_note, lang) if turn is not None else "",
            pick=gr.Button(interactive=turn is not None and chat.browse not in (None, turn.chosen)),
            branch_bar=gr.update(visible=bool(branches)),
            branch=gr.Dropdown(choices=choices, value=choices[-1][1] if choices else None),
            retry=gr.update(visible=failed_reply(chat) is not None),
            open_chat=chat.id,
        )

    def _ratings(self, chat: Chat, owner: str) -> list[str | None]:
        """The like/dislike shown on each assistant message (Gradio counts them in order), from the store."""
        marks = {i: RATING_LABELS[kind] for i, kind in self.history.ratings(owner, chat).items()}
        return [
            marks.get(i) if part == "reply" else None
            for message, (i, part, _) in render(chat.conversation, chat.language)
            if message["role"] == "assistant"
        ]

    def _streaming(self, chat: Chat, status: str) -> View:
        locked = gr.MultimodalTextbox(value=None, interactive=False)
        skip = gr.skip()
        messages = to_messages(chat.conversation, chat.language)
        hidden = gr.update(visible=False)  # no browsing, picking or switching while a reply streams
        status = localize(status, chat.language)
        return View(messages, locked, chat, status, skip, skip, hidden, skip, skip, skip, hidden, skip, hidden, skip)

    def _unchanged(self, chat: Chat, status: str = "Ready") -> View:
        skip = gr.skip()
        return View(skip, skip, chat, localize(status, chat.language), *[skip] * (len(View._fields) - 4))

    # --- identity and the sidebar ----------------------------------------------------------

    def load(
        self,
        user_id: str | None,
        open_id: str | None = None,
        browser_language: str | None = None,
        request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple:
        """Page load: give a new browser its random id, list its conversations, and reopen the conversation it had
        open (a reload keeps the chat), else start a new chat.

        The chat is in the flow named by the page's `?flow=NAME`, else the start flow; its language is the flow's,
        or with "auto" the browser's.
        """
        if profile is None and not (isinstance(user_id, str) and USER_ID.fullmatch(user_id)):
            user_id = uuid.uuid4().hex
        owner = owner_of(user_id, profile)
        ready = gr.MultimodalTextbox(interactive=True)  # typing starts once the user is known
        asked = request.query_params.get("flow") if request is not None else None
        lang = ui_language(self.flows.flow(self.flows.known(asked)).language, browser_language)
        try:
            chat = self._new(asked, lang)
        except InteractiveFormatError as e:  # that flow's models cannot load: the start flow instead
            warn(e, lang)
            chat = self._new(None, lang)
        if isinstance(open_id, str) and open_id and not asked:
            chat = self._reopened(owner, open_id, chat)
        return (user_id, *self.view(chat, owner, box=ready))

    def _reopened(self, owner: str, cid: str, fresh: Chat) -> Chat:
        """The conversation `cid` of `owner` in `fresh`'s flow and language, or `fresh` when it is gone."""
        try:
            chat = self.history.open(owner, cid)
        except InteractiveFormatError:  # deleted meanwhile, or another user's: a new chat
            return fresh
        chat.flow, chat.language = fresh.flow, fresh.language
        return chat

    def new_chat(self, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None) -> View:
        """A fresh chat in the same flow."""
        return self.view(
            self._new(chat.flow, chat.language),
            owner_of(user_id, profile),
            box=gr.MultimodalTextbox(value=None, interactive=True),
        )

    def switch_flow(
        self, name: str | None, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None
    ) -> View:
        """Start a new chat in another flow (its models load the first time it is used; then it is instant)."""

        def run(owner: str) -> View:
            flow = self.flows.flow(self.flows.known(name))
            fresh = self._new(name, ui_language(flow.language, chat.language))
            return self.view(fresh, owner, status="Ready", box=gr.MultimodalTextbox(value=None, interactive=True))

        return self._guarded(chat, run, user_id, profile)

    def flow_view(self, chat: Chat) -> FlowView:
        """The page as the chat's flow wants it: header, welcome, examples, buttons, uploads, settings."""
        name, lang = self.flows.known(chat.flow), chat.language
        flow, engine = self.flows.flow(name).in_language(lang), self.flows.engine(name)
        replies = list(flow.quick_replies) + [""] * (MAX_QUICK_REPLIES - len(flow.quick_replies))
        menu = [(self.flows.flow(n).in_language(lang).title, n) for n in self.flows.names]
        return FlowView(
            header=header(flow, lang),
            chatbot=gr.update(placeholder=escape(flow.welcome) or None),
            examples=gr.Dataset(samples=[[e] for e in flow.examples], visible=bool(flow.examples)),
            quick_replies=tuple(gr.Button(value=text or " ", visible=bool(text)) for text in replies),
            box=gr.update(placeholder=tr(placeholder_key(flow.modalities), lang), **box_options(flow)),
            candidates=engine.default_settings().num_candidates,
            lam=engine.default_settings().lam,
            models=models_line(engine, lang),
            ranking_note=f"*{escape(localize(engine.ranking_note, lang))}*",
            flow=gr.Dropdown(choices=menu, value=name),
            speak=gr.Checkbox(
                value=not speech_note(engine) and flow.voice_replies,
                interactive=not speech_note(engine),
                info=self.speech_note(chat),
            ),
            talk_bar=gr.update(visible="voice" in flow.modalities),
            talk_status=TALK_STATUS.format(language=lang, text=escape(localize("Talk mode is off.", lang))),
        )

    def speech_note(self, chat: Chat) -> str | None:
        """Why the speaker toggle is off on this server (in the tab's language), None when it can speak."""
        return localize(speech_note(self._engine(chat)), chat.language) or None

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
            opened.flow, opened.language = chat.flow, chat.language
            return self.view(opened, owner)

        return self._guarded(chat, run, user_id, profile)

    def rename(self, chat: Chat, title: str, user_id: str | None, profile: gr.OAuthProfile | None = None) -> View:
        def run(owner: str) -> View:
            self.history.rename(owner, chat, title)
            return self.view(chat, owner)

        return self._guarded(chat, run, user_id, profile)

    def delete(self, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None) -> View:
        def run(owner: str) -> View:
            self.history.delete(owner, chat)
            fresh = self._new(chat.flow, chat.language)
            return self.view(fresh, owner, box=gr.MultimodalTextbox(value=None, interactive=True))

        return self._guarded(chat, run, user_id, profile)

    def _guarded(
        self, chat: Chat, run: Callable[[str], View], user_id: str | None, profile: gr.OAuthProfile | None
    ) -> View:
        """run(owner), or the unchanged view with the reason shown as a warning."""
        return self._attempt(run, user_id, profile, lambda: self._unchanged(chat), chat.language)

    @staticmethod
    def _attempt(
        run: Callable[[str], T],
        user_id: str | None,
        profile: gr.OAuthProfile | None,
        fallback: Callable[[], T],
        lang: str = "en",
    ) -> T:
        """The page's one owner and error boundary: run(owner) for whoever asks; a user-facing error
        (an unknown user included) is shown as a warning in `lang` and `fallback()` is returned instead."""
        try:
            return run(owner_of(user_id, profile))
        except InteractiveFormatError as e:
            warn(e, lang)
            return fallback()

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
        engine = self._engine(chat)
        run = partial(
            engine.respond, chat.conversation, message.get("text"), message.get("files"), settings, watched=True
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
        index = failed_reply(chat) if index is None else index
        run = partial(self._engine(chat).regenerate, chat.conversation, settings, watched=True)
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
        owner = self._attempt(lambda owner: owner, user_id, profile, lambda: None, chat.language)
        if owner is None:
            yield self._unchanged(chat)
            return
        try:
            index, text, attachment_texts = edit_target(chat.conversation, data.index, data.value, chat.language)
            self.history.edit(owner, chat, index, text, attachment_texts)
        except InteractiveFormatError as e:
            warn(e, chat.language)
            yield self.view(chat, owner)  # puts the message back as it was
            return
        run = partial(self._engine(chat).rerun, chat.conversation, settings, watched=True)
        yield from self._turn(run, chat, user_id, request, profile)

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

        joined = queued_since()

        def admit(owner: str) -> tuple[str, Any]:
            self.limiter.check(owner)
            return owner, self.admission.slot(joined)  # released in the `finally` below

        admitted = self._attempt(admit, user_id, profile, lambda: None, chat.language)
        if admitted is None:
            yield self._unchanged(chat)
            return
        owner, slot = admitted
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
            warn(e, chat.language)
        finally:
            live.done.set()
            slot.release()
            self._stops.pop(key, None)
            self.history.save(owner, chat, changed)
            self.api.drop_uploads(chat.conversation)
        yield self.view(chat, owner, box=gr.MultimodalTextbox(value=None, interactive=True))

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
        order = ranked(turn)
        current = turn.chosen if chat.browse is None else chat.browse
        chat.browse = order[(order.index(current) + step) % len(order)]
        info = candidate_info(turn, chat.browse, chat.language)
        return chat, info, gr.Button(interactive=chat.browse != turn.chosen)

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
        feedback = partial(self.history.feedback, chat=chat, index=index, kind=kind)
        self._attempt(lambda owner: feedback(owner), user_id, profile, lambda: None, chat.language)

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


def chat_ui(engine: ChatEngine, store: Store, flows: FlowSet | None = None) -> ChatUI:
    """The page's callbacks over the start flow's `engine` and `store`, with the history, rate limit, admission
    and API its config asks for."""
    config = engine.config
    history = History(store, config.generation.system_prompt)
    limiter = RateLimiter(config.server.rate_limit)
    server = config.server  # waiting turns are bounded by expected wait, not by queue length alone
    admission = Admission(server.concurrency_limit, config.generation.turn_timeout_s, server.max_queue)
    return ChatUI(ChatAPI(engine, history, limiter, admission, config.storage.persist), flows)
