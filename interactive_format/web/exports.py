"""The page's file callbacks: a conversation or all of them exported as JSON, picks as preference pairs, and import.

`ChatUI` inherits these; they reach the store only through its `history`, and its `_attempt` /
`_guarded` error boundary (a bad file is a warning on the page, never raised).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from ..errors import InputError
from ..engine.history import Chat
from .i18n import localize


class ChatFiles:
    """Export and import callbacks; `ChatUI` supplies `history`, `view`, `_attempt` and `_guarded`."""

    def export_chat(self, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None) -> str | None:
        """This conversation as a JSON file (the format is in transfer.py's docstring)."""

        def run(owner: str) -> str:
            if chat.id is None:
                raise InputError("Send a message first; an empty chat is not saved.")
            return _json_file(self.history.export(owner, chat.id), f"chat-{chat.id[:8]}.json")

        return self._attempt(run, user_id, profile, lambda: None, chat.language)

    def export_all(self, user_id: str | None, profile: gr.OAuthProfile | None = None) -> str | None:
        """All of the user's conversations as one JSON file."""
        return self._export(lambda owner: _json_file(self.history.export(owner), "chats.json"), user_id, profile)

    def export_pairs(self, user_id: str | None, profile: gr.OAuthProfile | None = None) -> str | None:
        """The user's picks as (context, chosen, rejected) JSON lines: extra training data for D."""
        return self._export(
            lambda owner: _text_file(self.history.preferences_jsonl(owner), "preferences.jsonl"), user_id, profile
        )

    def _export(self, run: Callable[[str], str], user_id: str | None, profile: gr.OAuthProfile | None) -> str | None:
        return self._attempt(run, user_id, profile, lambda: None)

    def import_chats(
        self, path: str | None, chat: Chat, user_id: str | None, profile: gr.OAuthProfile | None = None
    ):  # -> View
        """Add the conversations of an export file; the first one is opened. Bad files are refused whole."""

        def run(owner: str):
            if not path:
                raise InputError("Choose a conversation export (.json) to import.")
            cids = self.history.import_file(owner, path)
            gr.Info(localize(f"Imported {len(cids)} conversation(s).", chat.language))
            opened = self.history.open(owner, cids[0]) if cids else chat
            opened.flow, opened.language = chat.flow, chat.language
            return self.view(opened, owner)

        return self._guarded(chat, run, user_id, profile)


def _json_file(data: dict, name: str) -> str:
    return _text_file(json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False), name)


def _text_file(text: str, name: str) -> str:
    """`text` written to a fresh temporary folder (Gradio serves it from its own cache)."""
    path = Path(tempfile.mkdtemp(prefix="if-export-")) / name
    path.write_text(text, encoding="utf-8")
    return str(path)
