"""A session's open conversation and how it is kept in the Store; no gradio here.

`Chat` is what the UI holds per browser session: the active branch as a `Conversation`, plus
the store ids of its saved turns. `History` saves, reopens, edits, picks and switches branches
for one owner at a time; every call names the owner, so the Store's owner checks apply. It is
the UI's and the API's only way to the store: listing, renaming, deleting, exporting and importing too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..dialogue import Conversation, Turn, context_text
from ..errors import InputError
from ..inputs.readers import reader_for
from ..store.store import ConversationInfo, Store

TITLE_CHARS = 60  # a new conversation's title: the start of its first message


@dataclass
class Chat:
    """The conversation shown in one browser tab."""

    conversation: Conversation
    id: str | None = None  # the conversation in the store; None until its first turn is saved
    turn_ids: list[str] = field(default_factory=list)  # store ids of the first len(turn_ids) turns
    browse: int | None = None  # candidate of the last reply being looked at; None: the shown one
    flow: str | None = None  # the flow (flows.py) this tab is in; None: the app's start flow
    language: str = "en"  # the tab's UI language, "en" or "zh" (i18n.ui_language)

    def last_reply(self) -> int | None:
        """Index of the last reply, if only refused messages follow it (its candidates can be browsed)."""
        for i in range(len(self.conversation.turns) - 1, -1, -1):
            turn = self.conversation.turns[i]
            if turn.role == "user" and turn.error:
                continue
            return i if turn.role == "assistant" and turn.candidates and not turn.error else None
        return None


@dataclass(frozen=True)
class Branch:
    """User turn `index` of the active branch is version `position` (from 0) of `count`."""

    index: int
    position: int
    count: int


NEW_CHAT = "New chat"  # the title of a first message with nothing to read (its kind's title when it has a file)


def title_for(turn: Turn) -> str:
    """A title from a first message: its text, else its caption or transcript."""
    text = " ".join(turn.text.split()) or next((" ".join(a.text.split()) for a in turn.attachments if a.text), "")
    if not text:
        reader = reader_for(turn.attachments[0].kind) if turn.attachments else None
        text = reader.title if reader else NEW_CHAT
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"


class History:
    """Conversations of any owner, kept in `store`."""

    def __init__(self, store: Store, system_prompt: str) -> None:
        self.store = store
        self.system_prompt = system_prompt

    def new(self, system_prompt: str | None = None, flow: str | None = None, language: str = "en") -> Chat:
        """An empty chat (by default with the app's system prompt); it is stored with its first turn."""
        prompt = self.system_prompt if system_prompt is None else system_prompt
        return Chat(Conversation(prompt), flow=flow, language=language)

    def open(self, owner: str, cid: str) -> Chat:
        """The active branch of one of `owner`'s conversations (NotFound for anyone else's)."""
        conversation, ids = self.store.load_with_ids(owner, cid)
        return Chat(conversation, cid, ids)

    def save(self, owner: str, chat: Chat, changed: int | None = None) -> None:
        """Store the turns not saved yet, and rewrite turn `changed` (e.g. a regenerated reply)."""
        turns = chat.conversation.turns
        if changed is not None and 0 <= changed < len(chat.turn_ids):
            self.store.update_turn(owner, chat.turn_ids[changed], turns[changed])
        if len(chat.turn_ids) == len(turns):
            return
        if chat.id is None:
            chat.id = self.store.create(owner, chat.conversation.system_prompt, title_for(turns[0]))
        parent = chat.turn_ids[-1] if chat.turn_ids else None
        for turn in turns[len(chat.turn_ids) :]:
            parent = self.store.add_turn(owner, chat.id, turn, parent)
            chat.turn_ids.append(parent)

    def pick(self, owner: str, chat: Chat, index: int, candidate: int) -> None:
        """Show candidate `candidate` of reply `index` from now on; logged as preference pairs."""
        turns = chat.conversation.turns
        context = context_text(Conversation("", turns[:index]).messages())
        self.store.pick(owner, self._saved(chat, index), candidate, context)
        turns[index].chosen = candidate

    def feedback(self, owner: str, chat: Chat, index: int, kind: str) -> None:
        """Log a like or dislike of reply `index` (the candidate shown)."""
        self.store.feedback(owner, self._saved(chat, index), chat.conversation.turns[index].chosen, kind)

    def edit(
        self, owner: str, chat: Chat, index: int, text: str, attachment_texts: dict[int, str] | None = None
    ) -> None:
        """Branch at user turn `index` with new text (or captions); `chat` then ends with that turn."""
        self.store.edit_user_turn(owner, self._saved(chat, index), text, attachment_texts)
        self._reopen(owner, chat)

    def branches(self, owner: str, chat: Chat) -> list[Branch]:
        """The user turns of the active branch that have other versions (edits), oldest first."""
        out = []
        for i, tid in enumerate(chat.turn_ids):
            if chat.conversation.turns[i].role == "user":
                siblings = self.store.siblings(owner, tid)
                if len(siblings) > 1:
                    out.append(Branch(i, siblings.index(tid), len(siblings)))
        return out

    def switch(self, owner: str, chat: Chat, index: int, step: int) -> None:
        """Show the next (+1) or previous (−1) version of user turn `index`, with its newest continuation."""
        tid = self._saved(chat, index)
        siblings = self.store.siblings(owner, tid)
        target = siblings[(siblings.index(tid) + step) % len(siblings)]
        self.store.set_active_leaf(owner, chat.id, self.store.leaf(owner, target))
        self._reopen(owner, chat)

    def conversations(self, owner: str) -> list[ConversationInfo]:
        """`owner`'s conversations, newest first."""
        return self.store.list(owner)

    def title(self, owner: str, chat: Chat) -> str:
        """The chat's title in the store ("" while it is not saved)."""
        return next((c.title for c in self.store.list(owner) if c.id == chat.id), "") if chat.id else ""

    def rename(self, owner: str, chat: Chat, title: str) -> None:
        if chat.id is None:
            raise InputError("Send a message first; an empty chat is not saved.")
        self.store.rename(owner, chat.id, title)

    def delete(self, owner: str, chat: Chat) -> None:
        """Delete the chat's conversation (an unsaved chat has nothing to delete)."""
        if chat.id is not None:
            self.store.delete(owner, chat.id)

    def ratings(self, owner: str, chat: Chat) -> dict[int, str]:
        """The like/dislike saved on each turn of the chat, by turn index."""
        saved = self.store.ratings(owner, chat.turn_ids) if chat.id else {}
        return {i: saved[tid] for i, tid in enumerate(chat.turn_ids) if tid in saved}

    def export(self, owner: str, cid: str | None = None) -> dict:
        """One conversation (or all of `owner`'s) in the export format (transfer.py's docstring)."""
        return self.store.export(owner, cid)

    def preferences_jsonl(self, owner: str) -> str:
        """`owner`'s picks as (context, chosen, rejected) JSON lines."""
        return self.store.preferences_jsonl(owner)

    def import_file(self, owner: str, path: str) -> list[str]:
        """Add the conversations of an export file; their ids (a bad file is refused whole)."""
        return self.store.import_file(owner, path)

    def secret(self, name: str) -> str:
        """A random key kept in the database (it survives restarts)."""
        return self.store.secret(name)

    def _saved(self, chat: Chat, index: int) -> str:
        if chat.id is None or not 0 <= index < len(chat.turn_ids):
            raise InputError("That message is not saved yet; wait until the reply has finished.")
        return chat.turn_ids[index]

    def _reopen(self, owner: str, chat: Chat) -> None:
        fresh = self.open(owner, chat.id)
        chat.conversation, chat.turn_ids, chat.browse = fresh.conversation, fresh.turn_ids, None
