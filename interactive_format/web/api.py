"""The JSON/MCP API: one turn, a turn in a stored conversation, a pick, the caller's conversations.

Each method is one Gradio endpoint (`build_demo` names them: chat, reply, pick, conversations,
conversation, generate_and_rank). They run over the engine, the history, the rate limit and
the admission the page uses. Who is asking is resolved by `owner_of`, and a user-facing error
becomes the caller's `gr.Error` in `api_errors`: both in this one place.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import gradio as gr
from gradio.context import LocalContext

from ..engine.chat import ChatEngine, TurnSettings
from ..engine.history import History
from ..errors import InputError, InteractiveFormatError
from ..knobs import KNOBS
from ..strictjson import dumps
from ..uploads import remove_upload
from .rendering import turn_result

if TYPE_CHECKING:
    from ..dialogue import Conversation
    from ..engine.admission import Admission
    from ..engine.ratelimit import RateLimiter

USER_ID = re.compile(r"[0-9a-f]{32}")  # a browser's id: uuid4().hex
F = TypeVar("F", bound=Callable[..., Any])


def owner_of(user_id: str | None, profile: gr.OAuthProfile | None = None) -> str:
    """The store owner of a request: the signed-in Hugging Face user, else the browser's random id."""
    if profile is not None:
        return f"hf:{profile.username}"
    if isinstance(user_id, str) and USER_ID.fullmatch(user_id):
        return f"browser:{user_id}"
    raise InputError("Unknown user: reload the page (API callers: user_id is 32 hex digits, e.g. uuid4().hex).")


def spoken_file(engine: ChatEngine, text: str) -> dict:
    """A reply spoken for the API: {"audio": a WAV file (or None), "audio_notes": why parts were not spoken}."""
    from gradio.data_classes import FileData
    from gradio.processing_utils import save_bytes_to_cache
    from gradio.utils import get_upload_folder

    from ..media.speaker import wav_bytes

    if engine.speaker is None:
        return {"audio": None, "audio_notes": [engine.speaker_note or "Spoken replies are off on this server."]}
    spoken = engine.speaker.speak(text)
    if not len(spoken.audio):
        return {"audio": None, "audio_notes": list(spoken.notes)}
    # In Gradio's own cache, which it serves (and cleans up with the uploads: delete_cache).
    path = save_bytes_to_cache(wav_bytes(spoken.audio, spoken.rate), "reply.wav", get_upload_folder())
    audio = FileData(path=path, orig_name="reply.wav", mime_type="audio/wav").model_dump()
    return {"audio": audio, "audio_seconds": round(spoken.seconds, 2), "audio_notes": list(spoken.notes)}


def queued_since() -> float | None:
    """When the Gradio event being handled joined the queue (time.monotonic()), or None outside one."""
    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    queue = getattr(blocks, "_queue", None)
    event = queue.event_ids_to_events.get(event_id) if queue is not None and event_id else None
    return getattr(event, "enqueue_time", None)


def api_errors(method: F) -> F:
    """The API's error boundary: a user-facing error is the caller's `gr.Error`, without a traceback."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except InteractiveFormatError as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapper  # type: ignore[return-value]


def _knob_docs(method: F) -> F:
    """Fill the knobs' lines of `method`'s docstring from knobs.KNOBS (MCP clients read it)."""
    lines = {name: f"{k.about} ({k.range_text})" for name, k in KNOBS.items()}
    method.__doc__ = (method.__doc__ or "").format(**lines)
    return method


class ChatAPI:
    """The endpoints, over the start flow's engine; `keep_uploads` False deletes files once read."""

    def __init__(
        self, engine: ChatEngine, history: History, limiter: RateLimiter, admission: Admission, keep_uploads: bool
    ) -> None:
        self.engine, self.history, self.limiter, self.admission = engine, history, limiter, admission
        self.keep_uploads = keep_uploads

    @api_errors
    def chat(
        self,
        message: str,
        image: str | None = None,
        audio: str | None = None,
        candidates: float | None = None,
        temperature: float | None = None,
        max_new_tokens: float | None = None,
        speak: bool = False,
        request: gr.Request | None = None,
    ) -> dict:
        """One stateless turn: text plus optional picture/voice file -> reply and ranked candidates
        (with `speak`, also the reply spoken: a WAV file under "audio", and "audio_notes")."""
        return self.chat_files(message, [image, audio], candidates, temperature, max_new_tokens, speak, request)

    @api_errors
    def chat_files(
        self,
        message: str,
        files: list[str | None] | None = None,
        candidates: float | None = None,
        temperature: float | None = None,
        max_new_tokens: float | None = None,
        speak: bool = False,
        request: gr.Request | None = None,
    ) -> dict:
        """`chat` with any number of files of any registered kind (readers.READERS: pictures, voice, or a kind
        added later): each is read by the reader its contents and name belong to."""
        conversation = self.engine.new_conversation()
        self.limiter.check(_client_key(request))
        self._answer(conversation, message, files or [], self._settings(candidates, temperature, max_new_tokens))
        result = turn_result(conversation)
        return {**result, **spoken_file(self.engine, result["reply"])} if speak else result

    def chat_spoken(
        self,
        message: str,
        image: str | None = None,
        audio: str | None = None,
        candidates: float | None = None,
        temperature: float | None = None,
        max_new_tokens: float | None = None,
        request: gr.Request | None = None,
    ) -> dict:
        """`chat`, with the reply spoken: "audio" (a WAV file, or None), "audio_seconds", "audio_notes"."""
        return self.chat(message, image, audio, candidates, temperature, max_new_tokens, True, request)

    @_knob_docs
    def generate_and_rank(
        self,
        message: str,
        candidates: int = int(KNOBS["num_candidates"].default),
        temperature: float = KNOBS["temperature"].default,
        max_new_tokens: int = int(KNOBS["max_new_tokens"].default),
    ) -> str:
        """Sample several replies to one message with the chat model and rank them: fewest defects first, then
        the ranking signals fitted on reply-quality labels.

        Nothing is stored.

        Args:
            message: The message to answer, as plain text.
            candidates: {num_candidates}.
            temperature: {temperature}.
            max_new_tokens: {max_new_tokens}.
        Returns:
            JSON text: the best reply and every candidate with its text, rank (1 = best) and score
            plus d (the discriminator's P(human)) and j (mean token log-prob).
        """
        return dumps(self.chat(message, None, None, candidates, temperature, max_new_tokens, False))

    @api_errors
    def reply(
        self,
        conversation_id: str,
        message: str,
        image: str | None = None,
        audio: str | None = None,
        candidates: float | None = None,
        temperature: float | None = None,
        max_new_tokens: float | None = None,
        user_id: str | None = None,  # optional for gradio_client's sake; a missing one is told (owner_of)
    ) -> dict:
        """One turn in a stored conversation ("" starts a new one); returns its id with the turn's result."""
        return self.reply_files(conversation_id, message, [image, audio], candidates, temperature, max_new_tokens,
                                user_id)  # fmt: skip

    @api_errors
    def reply_files(
        self,
        conversation_id: str,
        message: str,
        files: list[str | None] | None = None,
        candidates: float | None = None,
        temperature: float | None = None,
        max_new_tokens: float | None = None,
        user_id: str | None = None,
    ) -> dict:
        """`reply` with any number of files of any registered kind (as `chat_files`)."""
        owner = owner_of(user_id)
        chat = self.history.open(owner, conversation_id) if conversation_id else self.history.new()
        settings = self._settings(candidates, temperature, max_new_tokens)
        self.limiter.check(owner)
        self._answer(chat.conversation, message, files or [], settings, save=lambda: self.history.save(owner, chat))
        return {"conversation_id": chat.id, **turn_result(chat.conversation)}

    @api_errors
    def pick(self, conversation_id: str, candidate: float, user_id: str) -> dict:
        """Show candidate `candidate` (an index) of the conversation's last reply; logged as preference pairs."""
        owner = owner_of(user_id)
        chat = self.history.open(owner, conversation_id)
        if candidate is None:
            raise InputError("Say which candidate to pick: its index in the reply's candidates.")
        reply = chat.last_reply()
        if reply is None:
            raise InputError("This conversation has no reply to pick from.")
        self.history.pick(owner, chat, reply, int(candidate))
        return {"conversation_id": chat.id, "chosen": int(candidate), "reply": chat.conversation.turns[reply].reply}

    @api_errors
    def conversations(self, user_id: str) -> list[dict]:
        """The caller's conversations, newest first."""
        return [dataclasses.asdict(info) for info in self.history.conversations(owner_of(user_id))]

    @api_errors
    def conversation(self, conversation_id: str, user_id: str) -> dict:
        """One of the caller's conversations in the export format; anyone else's is "No such conversation."."""
        return self.history.export(owner_of(user_id), conversation_id)

    def _answer(
        self,
        conversation: Conversation,
        message: str,
        files: list[str | None],
        settings: TurnSettings,
        save: Callable[[], None] | None = None,
    ) -> None:
        """Run one turn once admitted; then `save()` what it left (also on failure) and drop the uploads."""
        with self.admission.turn(queued_since()):
            try:
                for _ in self.engine.respond(conversation, message, [f for f in files if f], settings):
                    pass
            finally:
                if save is not None:
                    save()
                self.drop_uploads(conversation)

    def drop_uploads(self, conversation: Conversation) -> None:
        """With storage off, delete the last message's uploaded files once they have been read."""
        if self.keep_uploads:
            return
        user = next((t for t in reversed(conversation.turns) if t.role == "user"), None)
        for a in user.attachments if user else []:
            remove_upload(a.path)

    def _settings(
        self, candidates: float | None, temperature: float | None, max_new_tokens: float | None
    ) -> TurnSettings:
        defaults = self.engine.default_settings()
        return TurnSettings(
            candidates or defaults.num_candidates,
            temperature or defaults.temperature,
            max_new_tokens or defaults.max_new_tokens,
            defaults.lam,
        )


def _client_key(request: gr.Request | None) -> str:
    """Who is asking, for the rate limit of the stateless API: the client's address."""
    host = getattr(getattr(request, "client", None), "host", None)
    return f"ip:{host or 'unknown'}"
