"""The page's layout: `build_demo(engine, store, flows)` returns the Gradio Blocks, not launched.

Each `_...` function below lays out one part of the page and returns its components as a frozen
group; the callbacks (callbacks.py) update them through `View` and `FlowView`, whose outputs are
looked up here by field name, so no output list is typed twice. The JSON/MCP API is api.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..engine.admission import bound_gradio_queue
from ..config import ASSETS
from .callbacks import OPEN_KEY, STORAGE_KEY, ChatUI, FlowView, View, chat_ui
from ..engine.chat import ChatEngine, TurnSettings
from ..engine.engines import FlowSet
from ..flows import MAX_QUICK_REPLIES, Flow
from ..engine.history import Store  # only its type: the page reaches the store through History
from .i18n import labels, localize, placeholder_key, translations
from ..knobs import KNOBS, Knob
from .rendering import box_options, escape, header, models_line
from .talk import TALK_JS, TALK_STATUS, speech_note

PRIVATE = {"api_visibility": "private"}  # page events: not part of the API
# The page load's inputs as the browser has them, with its language (as Gradio's own i18n reads it).
BROWSER_LANGUAGE_JS = "(user, open, language) => [user, open, navigator.language || '']"
TURN = {**PRIVATE, "concurrency_id": "turn"}  # events that run a turn share the turn concurrency limit


@dataclass(frozen=True)
class Sidebar:
    flow: gr.Dropdown  # the flow menu
    new_chat: gr.Button
    chats: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    export_chat: gr.Button
    export_all: gr.Button
    export_pairs: gr.Button
    export_file: gr.File
    import_chats: gr.UploadButton


@dataclass(frozen=True)
class ChatArea:
    chatbot: gr.Chatbot
    candidate_bar: gr.Group
    previous_candidate: gr.Button
    next_candidate: gr.Button
    pick: gr.Button
    regenerate: gr.Button
    candidate: gr.Markdown
    candidate_list: gr.Markdown  # every candidate of the last reply, in an accordion under the browsed one
    branch_bar: gr.Row
    branch: gr.Dropdown
    older_version: gr.Button
    newer_version: gr.Button
    quick_replies: tuple[gr.Button, ...]
    box: gr.MultimodalTextbox
    examples: gr.Dataset
    stop: gr.Button
    retry: gr.Button
    status: gr.Markdown


@dataclass(frozen=True)
class Settings:
    candidates: gr.Slider
    temperature: gr.Slider
    max_tokens: gr.Slider
    lam: gr.Slider
    ranking_note: gr.Markdown
    models: gr.Markdown

    @property
    def knobs(self) -> list[gr.Slider]:
        """The sliders a turn reads, in TurnSettings' order."""
        return [self.candidates, self.temperature, self.max_tokens, self.lam]


@dataclass(frozen=True)
class Speech:
    speak: gr.Checkbox  # the speaker toggle
    audio: gr.Audio  # the spoken reply, streamed sentence by sentence
    talk_bar: gr.Row  # talk mode: its button and state line (shown in flows that take voice)
    talk: gr.Button  # starts and stops talk mode (in the page: assets/talk.js)
    talk_status: gr.HTML  # what talk mode is doing (talk.js writes it; the page load sets its language)
    talk_data: gr.Textbox  # hidden: the page's recording (a base64 WAV)
    talk_id: gr.Textbox  # hidden: which round the page sent
    talk_send: gr.Button  # hidden: the page clicks it to send the recording
    talk_cancel: gr.Button  # hidden: the page clicks it to stop the reply and its speech (barge-in, Stop)
    talk_turn_done: gr.Textbox  # hidden: the round whose turn has ended
    talk_spoken_done: gr.Textbox  # hidden: the round whose reply has been spoken


@dataclass(frozen=True)
class Page:
    user_id: gr.BrowserState
    open_chat: gr.BrowserState  # the conversation this browser has open: a reload reopens it
    chat: gr.State
    header: gr.Markdown
    sidebar: Sidebar
    area: ChatArea
    settings: Settings
    speech: Speech

    def outputs(self, names: tuple[str, ...]) -> list:
        """The components for `names` (a View's or FlowView's fields), flattened (quick replies: each button)."""
        parts: dict[str, Any] = {
            "user_id": self.user_id, "open_chat": self.open_chat, "chat": self.chat, "header": self.header
        }
        for group in (self.sidebar, self.area, self.settings, self.speech):
            parts.update({f.name: getattr(group, f.name) for f in dataclasses.fields(group)})
        found = [parts[name] for name in names]
        return [c for part in found for c in (part if isinstance(part, tuple) else (part,))]

    @property
    def view(self) -> list:
        return self.outputs(View._fields)

    @property
    def flow_view(self) -> list:
        return self.outputs(FlowView._fields)


# What runs at page load: the phone layout (assets/page.js) and talk mode's loop (assets/talk.js).
PAGE_JS = f"() => {{ ({(ASSETS / 'page.js').read_text(encoding='utf-8')})(); ({TALK_JS})(); }}"
# Runs in the page's <head>, before the app: Gradio's own status words in Chinese on a Chinese page.
HEAD = f"<script>{(ASSETS / 'gradio_zh.js').read_text(encoding='utf-8')}</script>"
# The page's own style: a notice's or an error's bubble (rendering.NOTE_MARK / ERROR_MARK) takes no like or dislike,
# and the chat's trash icon goes (it emptied the view, not the chat: "New chat" in the sidebar starts one).
CSS = """
#chatbot .message-row:has(.if-note) + .message-buttons, #chatbot .message-row:has(.if-error) + .message-buttons
  { display: none; }
#chatbot .top-panel { display: none; }
"""


def launch_options(flow: Flow) -> dict:
    """What `launch` needs besides the address: the start flow's theme, the UI's translations, talk mode's loop, the
    page's style and head."""
    return {"theme": flow.theme, "i18n": translations(), "js": PAGE_JS, "css": CSS, "head": HEAD}


class FlowBlocks(gr.Blocks):
    """Blocks whose `launch` brings the start flow's theme and the UI's translations (Gradio 6 takes both there)."""

    def __init__(self, flow: Flow, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.launch_defaults = launch_options(flow)

    def launch(self, *args: Any, **kwargs: Any):
        return super().launch(*args, **{**self.launch_defaults, **kwargs})


def build_demo(engine: ChatEngine, store: Store, flows: FlowSet | None = None) -> gr.Blocks:
    """The app's Blocks (not launched); `flows` adds a menu to switch flows (else only the engine's own)."""
    ui = chat_ui(engine, store, flows)
    config, flow = engine.config, engine.config.flow
    t = labels(flow.language)
    age = config.server.upload_max_age_s
    with FlowBlocks(flow, title=flow.title, delete_cache=(min(age, 3600), age)) as demo:
        # The key survives restarts (it lives in the database), so reopened pages find their id again.
        secret = ui.history.secret("browser_state")
        user_id = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=secret)
        open_chat = gr.BrowserState(None, storage_key=OPEN_KEY, secret=secret)
        chat = gr.State(ui.history.new(flow=ui.flows.start))
        sidebar = _sidebar(ui, t, config.server.hf_login)
        top = gr.Markdown(header(flow), elem_id="flow-header")
        with gr.Row():
            with gr.Column(scale=4):
                area = _chat_area(flow, t)
                speech = _speech(engine, t)
            with gr.Column(scale=1, min_width=260):
                settings = _settings(engine, t)
        _api(ui, engine.default_settings())  # wired first: its input names win
        page = Page(user_id, open_chat, chat, top, sidebar, area, settings, speech)
        _wire_flows(demo, ui, page)
        _wire_turns(ui, page)
        _wire_candidates(ui, page)
        _wire_sidebar(ui, page)
        _wire_speech(ui, page, config.server.concurrency_limit)
    demo.queue(default_concurrency_limit=config.server.concurrency_limit, max_size=config.server.max_queue)
    bound_gradio_queue(demo, ui.admission)  # the queue may hold only turns that can finish in time
    return demo


# --- the parts of the page --------------------------------------------------------------------


def _sidebar(ui: ChatUI, t, hf_login: bool) -> Sidebar:
    """Flows, conversations, the open conversation's title, export and import."""
    with gr.Sidebar(label=t("conversations"), elem_id="sidebar"):
        if hf_login:  # signed in, your chats belong to your Hugging Face account
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
    return Sidebar(
        flow_menu, new_btn, chats, title, rename_btn, delete_btn, export_btn, export_all_btn, pairs_btn,
        export_file, import_btn,
    )  # fmt: skip


def _chat_area(flow: Flow, t) -> ChatArea:
    """The conversation, its candidate and branch bars, quick replies, the input box and examples."""
    chatbot = gr.Chatbot(
        label=t("conversation"),
        height=560,
        buttons=["copy"],
        elem_id="chatbot",
        editable="user",
        allow_tags=False,
        group_consecutive_messages=False,  # one message per bubble: edits and likes name one message
        placeholder=escape(flow.welcome) or None,
    )
    with gr.Group(visible=False, elem_id="candidate-bar") as candidate_bar:
        with gr.Row():
            prev_btn = gr.Button("‹", size="sm", scale=0, min_width=48, elem_id="cand-prev")
            next_btn = gr.Button("›", size="sm", scale=0, min_width=48, elem_id="cand-next")
            pick_btn = gr.Button(t("use_reply"), size="sm", scale=0, interactive=False, elem_id="cand-pick")
            regen_btn = gr.Button(t("regenerate"), size="sm", scale=0, elem_id="regen-btn")
        candidate = gr.Markdown(elem_id="cand-info")
        with gr.Accordion(t("all_candidates"), open=False, elem_id="cand-all"):
            candidate_list = gr.Markdown(elem_id="cand-list")
    with gr.Row(visible=False, elem_id="branch-bar") as branch_bar:
        branch = gr.Dropdown([], label=t("edited_message"), scale=4, elem_id="branch-turn")
        branch_prev = gr.Button(t("older_version"), size="sm", scale=1, elem_id="branch-prev")
        branch_next = gr.Button(t("newer_version"), size="sm", scale=1, elem_id="branch-next")
    with gr.Row(elem_id="quick-replies"):
        replies = list(flow.quick_replies) + [""] * (MAX_QUICK_REPLIES - len(flow.quick_replies))
        quick = tuple(
            gr.Button(text or " ", size="sm", visible=bool(text), elem_id=f"quick-{k}")
            for k, text in enumerate(replies)
        )
    box = gr.MultimodalTextbox(
        placeholder=t(placeholder_key(flow.modalities)),
        file_count="multiple",
        label=t("message"),  # for screen readers (else Gradio names it "MultimodalTextbox")
        show_label=False,
        interactive=False,  # until the page load has identified the user
        elem_id="input-box",
        **box_options(flow),
    )
    examples = gr.Dataset(
        components=[gr.Textbox(visible=False)],
        samples=[[e] for e in flow.examples],
        label=t("examples"),
        visible=bool(flow.examples),
        elem_id="examples",
    )
    with gr.Row():
        stop_btn = gr.Button(t("stop"), variant="stop", interactive=False, elem_id="stop-btn")  # live during a turn
        retry_btn = gr.Button(t("retry"), visible=False, elem_id="retry-btn")
    status = gr.Markdown(localize("Ready", flow.language), elem_id="status")  # "auto": the page load sets it
    return ChatArea(
        chatbot, candidate_bar, prev_btn, next_btn, pick_btn, regen_btn, candidate, candidate_list, branch_bar,
        branch, branch_prev, branch_next, quick, box, examples, stop_btn, retry_btn, status,
    )  # fmt: skip


def _speech(engine: ChatEngine, t) -> Speech:
    """The speaker toggle (on from the start in a flow with voice_replies), the spoken reply's player, talk mode."""
    note = speech_note(engine)
    available = not note
    info = localize(note, engine.config.flow.language) or None  # "auto": the page load sets it
    with gr.Row(elem_id="speech-row"):
        speak = gr.Checkbox(
            available and engine.config.flow.voice_replies, label=t("speak_replies"), interactive=available,
            info=info, elem_id="speak-toggle", scale=1,
        )  # fmt: skip
        audio = gr.Audio(
            label=t("spoken_reply"), streaming=True, autoplay=True, interactive=False, elem_id="reply-audio", scale=3
        )
    with gr.Row(elem_id="talk-bar", visible="voice" in engine.config.flow.modalities) as talk_bar:
        talk = gr.Button(t("talk_mode"), size="sm", scale=0, min_width=160, elem_id="talk-btn")
        language = engine.config.flow.language  # "auto": the page load writes it in the browser's
        off = TALK_STATUS.format(language=language, text=escape(localize("Talk mode is off.", language)))
        talk_status = gr.HTML(off, elem_id="talk-status-box")
    hidden = {"visible": "hidden", "interactive": True}
    talk_data = gr.Textbox(elem_id="talk-data", **hidden)
    talk_id = gr.Textbox(elem_id="talk-id", **hidden)
    talk_send = gr.Button("send", elem_id="talk-send", visible="hidden")
    talk_cancel = gr.Button("cancel", elem_id="talk-cancel", visible="hidden")
    turn_done = gr.Textbox(elem_id="talk-turn-done", **hidden)
    spoken_done = gr.Textbox(elem_id="talk-spoken-done", **hidden)
    return Speech(
        speak, audio, talk_bar, talk, talk_status, talk_data, talk_id, talk_send, talk_cancel, turn_done, spoken_done
    )


def lam_inactive(reranker) -> str | None:
    """Why the λ slider does nothing (a TEXTS key), or None: λ weighs D only in the seed's λ·D + (1−λ)·J."""
    if reranker.uses_lam:
        return None
    return "no_discriminator" if reranker.discriminator is None else "lam_fitted"


def _settings(engine: ChatEngine, t) -> Settings:
    """The turn's sliders, how replies are ranked and which models run."""
    g, why_not = engine.default_settings(), lam_inactive(engine.reranker)
    with gr.Accordion(t("settings"), open=True):
        n = _slider(KNOBS["num_candidates"], g.num_candidates, t("candidates"))
        temperature = _slider(KNOBS["temperature"], g.temperature, t("temperature"))
        max_tokens = _slider(KNOBS["max_new_tokens"], g.max_new_tokens, t("max_tokens"), elem_id="max-tokens")
        lam = _slider(KNOBS["lam"], g.lam, t("lam"), interactive=not why_not, info=why_not and t(why_not))
    ranking_note = gr.Markdown(f"*{escape(engine.ranking_note)}*", elem_id="ranking-note")
    models = gr.Markdown(models_line(engine), elem_id="models")
    return Settings(n, temperature, max_tokens, lam, ranking_note, models)


def _slider(knob: Knob, value: float, label: str, **kwargs: Any) -> gr.Slider:
    """The knob's slider, its range widened to include the configured default (else Gradio refuses every turn)."""
    low, high = min(knob.ui_low, value), max(knob.ui_high, value)
    return gr.Slider(low, high, value=value, step=knob.ui_step, label=label, **kwargs)


# --- events -----------------------------------------------------------------------------------


def _api(ui: ChatUI, g: TurnSettings) -> None:
    """The API's endpoints (api.py), on inputs that are not shown."""
    with gr.Column(visible=False):
        message = gr.Textbox(label="message")
        image = gr.File(label="image", type="filepath")
        audio = gr.File(label="audio", type="filepath")
        files = gr.File(label="files", type="filepath", file_count="multiple")  # any registered kind (readers.py)
        candidates = gr.Number(label="candidates", value=g.num_candidates)
        temperature = gr.Number(label="temperature", value=g.temperature)
        max_tokens = gr.Number(label="max_new_tokens", value=g.max_new_tokens)
        conversation_id = gr.Textbox(label="conversation_id")
        candidate = gr.Number(label="candidate", precision=0)
        user = gr.Textbox(label="user_id")
        out = gr.JSON(label="result")
        buttons = [gr.Button(name) for name in ("chat", "reply", "pick", "conversations", "conversation")]
    sampling = [message, image, audio, candidates, temperature, max_tokens]
    api = ui.api
    buttons[0].click(api.chat, sampling, out, api_name="chat", concurrency_id="turn")
    # The same turn with the reply spoken (a WAV under "audio"): its own name, since plain-HTTP callers of
    # "chat" send exactly its six inputs and Gradio refuses a call with fewer inputs than the endpoint has.
    gr.Button("chat_spoken", visible=False).click(
        api.chat_spoken, sampling, out, api_name="chat_spoken", concurrency_id="turn"
    )
    buttons[1].click(api.reply, [conversation_id, *sampling, user], out, api_name="reply", concurrency_id="turn")
    # Files of any registered input kind in one parameter (a new reader needs no new endpoint); `chat` and
    # `reply` keep their picture and voice parameters for existing callers.
    by_kind = [message, files, candidates, temperature, max_tokens]
    gr.Button("chat_files", visible=False).click(
        api.chat_files, by_kind, out, api_name="chat_files", concurrency_id="turn"
    )
    gr.Button("reply_files", visible=False).click(
        api.reply_files, [conversation_id, *by_kind, user], out, api_name="reply_files", concurrency_id="turn"
    )
    buttons[2].click(api.pick, [conversation_id, candidate, user], out, api_name="pick")
    buttons[3].click(api.conversations, [user], out, api_name="conversations")
    buttons[4].click(api.conversation, [conversation_id, user], out, api_name="conversation")
    gr.api(api.generate_and_rank, api_name="generate_and_rank", concurrency_id="turn")  # also the MCP tool


def _wire_flows(demo: gr.Blocks, ui: ChatUI, page: Page) -> None:
    """Page load (the user's id, the flow of `?flow=`) and the flow menu."""
    user_id, chat, view, flow_parts = page.user_id, page.chat, page.view, page.flow_view
    language = gr.Textbox(visible="hidden", elem_id="browser-language")  # what the browser reads (Gradio's i18n too)
    demo.load(
        ui.load, [user_id, page.open_chat, language], [user_id, *view], js=BROWSER_LANGUAGE_JS, **PRIVATE
    ).then(ui.show_flow, [chat], flow_parts, **PRIVATE)
    menu = page.sidebar.flow
    menu.input(ui.switch_flow, [menu, chat, user_id], view, **TURN).then(ui.show_flow, [chat], flow_parts, **PRIVATE)


def _stoppable(stop: gr.Button, trigger, fn, inputs, outputs) -> None:
    """`trigger` runs the turn `fn`; the Stop button is live from the trigger until the turn has ended (or failed)."""
    trigger(lambda: gr.Button(interactive=True), None, stop, queue=False, show_progress="hidden", **PRIVATE)
    turn = trigger(fn, inputs, outputs, **TURN)
    turn.then(lambda: gr.Button(interactive=False), None, stop, queue=False, show_progress="hidden", **PRIVATE)


def _wire_turns(ui: ChatUI, page: Page) -> None:
    """Sending, quick replies, examples, regenerating, retrying, editing and stopping."""
    a, chat, user_id, view = page.area, page.chat, page.user_id, page.view
    knobs = page.settings.knobs
    _stoppable(a.stop, a.box.submit, ui.respond, [a.box, chat, *knobs, user_id], view)
    for button in a.quick_replies:
        _stoppable(a.stop, button.click, ui.respond, [button, chat, *knobs, user_id], view)  # sends its text
    a.examples.click(ui.example, [a.examples], [a.box], **PRIVATE)
    _stoppable(a.stop, a.regenerate.click, ui.regenerate, [chat, *knobs, user_id], view)
    _stoppable(a.stop, a.retry.click, ui.regenerate, [chat, *knobs, user_id], view)
    _stoppable(a.stop, a.chatbot.edit, ui.edit, [chat, *knobs, user_id], view)
    a.stop.click(ui.stop, None, None, queue=False, **PRIVATE)


def _wire_candidates(ui: ChatUI, page: Page) -> None:
    """Likes, browsing and picking candidates, switching between versions of an edited message."""
    a, chat, user_id, view = page.area, page.chat, page.user_id, page.view
    a.chatbot.like(ui.like, [chat, user_id], None, **PRIVATE)
    a.previous_candidate.click(ui.previous_candidate, [chat], [chat, a.candidate, a.pick], **PRIVATE)
    a.next_candidate.click(ui.next_candidate, [chat], [chat, a.candidate, a.pick], **PRIVATE)
    a.pick.click(ui.pick, [chat, user_id], view, **PRIVATE).then(
        ui.speak_shown, [chat, page.speech.speak], page.speech.audio, **PRIVATE
    )  # the picked candidate is spoken (with the speaker on)
    a.older_version.click(ui.older_version, [chat, a.branch, user_id], view, **PRIVATE)
    a.newer_version.click(ui.newer_version, [chat, a.branch, user_id], view, **PRIVATE)


def _wire_sidebar(ui: ChatUI, page: Page) -> None:
    """New chat, opening, renaming and deleting conversations, export and import."""
    s, chat, user_id, view = page.sidebar, page.chat, page.user_id, page.view
    s.new_chat.click(ui.new_chat, [chat, user_id], view, **PRIVATE)
    s.chats.input(ui.open, [s.chats, chat, user_id], view, **PRIVATE)
    s.rename.click(ui.rename, [chat, s.title, user_id], view, **PRIVATE)
    s.title.submit(ui.rename, [chat, s.title, user_id], view, **PRIVATE)
    s.delete.click(ui.delete, [chat, user_id], view, **PRIVATE)
    s.export_chat.click(ui.export_chat, [chat, user_id], s.export_file, **PRIVATE)
    s.export_all.click(ui.export_all, [user_id], s.export_file, **PRIVATE)
    s.export_pairs.click(ui.export_pairs, [user_id], s.export_file, **PRIVATE)
    s.import_chats.upload(ui.import_chats, [s.import_chats, chat, user_id], view, **PRIVATE)


def _wire_speech(ui: ChatUI, page: Page, concurrency: int) -> None:
    """Each event that runs a turn also starts its spoken reply, which follows the turn as it streams; talk mode's
    utterance is a voice turn, and the page hears back (the round's id) when its turn and its speech are done."""
    a, chat, s = page.area, page.chat, page.speech
    speech = {**PRIVATE, "concurrency_id": "speech", "concurrency_limit": concurrency}
    triggers = [a.box.submit, *(b.click for b in a.quick_replies), a.regenerate.click, a.retry.click, a.chatbot.edit]
    spoken = [trigger(ui.speak_live, [chat, s.speak], s.audio, **speech) for trigger in triggers]
    s.talk.click(None, None, None, js="() => window.ifTalk && window.ifTalk.toggle()", **PRIVATE)
    knobs = page.settings.knobs
    # "multiple": an utterance spoken over the last reply (barge-in) is sent while that reply's events still end.
    send = {"trigger_mode": "multiple"}
    # Talk mode has its own stop (its button, and barge-in); the page's Stop stays out of its events (wired in, the
    # barge-in round's reply was sometimes never answered in the browser test).
    s.talk_send.click(ui.talk, [s.talk_data, chat, *knobs, page.user_id], page.view, **TURN, **send).then(
        ui.talk_done, [s.talk_id], s.talk_turn_done, **PRIVATE
    )
    talk_speech = s.talk_send.click(ui.speak_talk, [chat], s.audio, **speech, **send)
    talk_speech.then(ui.talk_done, [s.talk_id], s.talk_spoken_done, **PRIVATE)
    # Barge-in and Stop: the turn ends after its current token (and is saved), its speech is cancelled.
    s.talk_cancel.click(ui.stop, None, None, cancels=[talk_speech, *spoken], queue=False, **PRIVATE)
