"""The page's spoken side: replies spoken while they stream, and talk mode (hands-free voice turns).

Talk mode runs in the browser (`assets/talk.js`, given to `launch(js=...)`): it listens to the
microphone, cuts an utterance at a pause, and sends it as a base64 WAV through a hidden textbox; the
server writes it into Gradio's upload folder and answers it as a voice turn (`SpokenReplies.talk`),
speaks the reply, and tells the page when both are done so it listens again. `ChatUI` inherits these
callbacks; they reach the turn through its `respond`, `_engine` and `_live`.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from ..config import ASSETS, Limits
from ..media.ffmpeg import page_audio_note
from ..errors import InputError
from ..engine.history import Chat
from .i18n import localize
from .rendering import escape
from ..media.speaker import Utterance, follow, wav_bytes
from ..uploads import sniff

LIVE_WAIT_S = 10.0  # how long a spoken reply waits for its turn's event to start (both come from one click)
TALK_JS = (ASSETS / "talk.js").read_text(encoding="utf-8")  # the page's talk-mode loop, run at page load
TALK_STATUS = '<div id="talk-status" aria-live="polite" data-lang="{language}">{text}</div>'  # talk.js writes in it
_DATA_URL = re.compile(r"data:audio/wav;base64,", re.IGNORECASE)


def speech_note(engine: Any) -> str:
    """Why this engine's replies cannot be spoken in the page ("" when they can): no speaker, or no ffmpeg for
    the streamed audio (the API's WAV needs none)."""
    if engine.speaker is None:
        return engine.speaker_note or "Spoken replies are off on this server."
    return page_audio_note()


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


def recording_file(data: str | None, limits: Limits) -> str:
    """The talk-mode recording (a base64 WAV, as a data URL or bare) written to Gradio's upload folder.

    InputError when it is missing, not base64, not a WAV or over the upload limit."""
    text = _DATA_URL.sub("", (data or "").strip(), count=1)
    if not text:
        raise InputError("Nothing was recorded; speak again.")
    if len(text) * 3 // 4 > limits.max_file_bytes:
        raise InputError(f"The recording is too big (the limit is {limits.max_file_bytes / 2**20:.0f} MB).")
    try:
        wav = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("The recording could not be read (it is not base64 audio).") from None
    folder = Path(gr.utils.get_upload_folder()) / f"talk-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    path = folder / "speech.wav"
    path.write_bytes(wav)
    if sniff(path) != "audio":
        path.unlink()
        folder.rmdir()
        raise InputError("The recording could not be read (it is not a WAV file).")
    return str(path)


def _voiced(utterances: Iterator[Utterance], lang: str = "en") -> Iterator[bytes]:
    """Sentences' audio as WAV chunks; each distinct note on a skipped sentence shown once, as a toast in `lang`."""
    notes = []
    for u in utterances:
        if len(u.audio):
            yield wav_bytes(u.audio, u.rate)
        elif u.note and u.note not in notes:
            notes.append(u.note)
            gr.Info(escape(localize(u.note, lang)))


class SpokenReplies:
    """ChatUI's spoken-reply and talk-mode callbacks (a mixin: it uses ChatUI's turn machinery)."""

    _live: dict[str | None, LiveTurn]

    def speak_live(self, chat: Chat, on: bool, request: gr.Request | None = None) -> Iterator[bytes]:
        """With the speaker on: this session's turn (started by the same click), spoken sentence by sentence
        while it streams, as WAV chunks for a streaming gr.Audio. Skipped sentences' notes are shown as toasts."""
        engine = self._engine(chat)
        speaker = engine.speaker
        if not on or speech_note(engine):
            return
        key = request.session_hash if request is not None else None
        deadline = time.monotonic() + LIVE_WAIT_S
        while (live := self._live.get(key)) is None or live.chat is not chat:  # the turn's event may start later
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        yield from _voiced(follow(live.shown, live.done.is_set, speaker), chat.language)

    def speak_shown(self, chat: Chat, on: bool) -> Iterator[bytes]:
        """With the speaker on: the reply now shown (e.g. the candidate just picked), sentence by sentence."""
        engine = self._engine(chat)
        reply = chat.last_reply()
        if on and not speech_note(engine) and reply is not None:
            speaker = engine.speaker
            yield from _voiced(speaker.stream(chat.conversation.turns[reply].reply), chat.language)

    def talk(
        self,
        recording: str | None,
        chat: Chat,
        n,
        temperature,
        max_new_tokens,
        lam,
        user_id: str | None,
        request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> Iterator[Any]:
        """A talk-mode utterance: answered as a voice turn (transcribed, shown with its transcript, replied)."""
        limits = self._engine(chat).config.limits
        path = self._attempt(
            lambda owner: recording_file(recording, limits), user_id, profile, lambda: None, chat.language
        )
        if path is None:  # refused: the reason is shown by the page's error boundary
            yield self._unchanged(chat)
            return
        message = {"text": "", "files": [path]}
        yield from self.respond(message, chat, n, temperature, max_new_tokens, lam, user_id, request, profile)

    def speak_talk(self, chat: Chat, request: gr.Request | None = None) -> Iterator[bytes]:
        """Talk mode always speaks its replies (when the server has a speaker), whatever the toggle says."""
        yield from self.speak_live(chat, True, request)

    @staticmethod
    def talk_done(round_id: str | None) -> str:
        """Tells the page that its utterance `round_id` was answered (or spoken): it then listens again."""
        return str(round_id or "")
