"""A turn that runs out of time keeps what it generated, marked as cut off, with Retry (no error in its place)."""

from __future__ import annotations

import uuid

from interactive_format.web.callbacks import chat_ui
from interactive_format.errors import ReplyTimeout
from interactive_format.llm.sampling import Draft, Sample
from interactive_format.store.store import Store

from ..fakes import FakeGenerator, fake_engine


class _TimesOut(FakeGenerator):
    """Streams three words per candidate, then the reply's time limit runs out (on its first call only)."""

    calls = 0

    def stream(self, messages, params, stop):
        self.calls += 1
        if self.calls > 1:
            yield from super().stream(messages, params, stop)
            return
        drafts = [Draft() for _ in range(params.n)]
        for step, word in enumerate(["Half", "a", "sentence"]):
            for k, d in enumerate(drafts):
                d.text = (d.text + " " + word).strip()
                d.token_ids.append(step)
                d.logprob_sum -= 1.0 + k
            yield Sample([Draft(d.text, list(d.token_ids), d.logprob_sum) for d in drafts], 7)
        raise ReplyTimeout("The reply took longer than 2 seconds and was stopped.")


def _ui(tmp_path):
    engine = fake_engine()
    engine.generator = _TimesOut()
    return chat_ui(engine, Store(tmp_path / "chats.db")), uuid.uuid4().hex


def test_a_reply_cut_off_by_the_time_limit_keeps_its_text_with_a_retry(tmp_path):
    ui, user = _ui(tmp_path)
    chat = ui.history.new()
    view = list(ui.respond({"text": "Tell me a story", "files": []}, chat, 2, 0.7, 16, 0.5, user))[-1]
    reply = chat.conversation.turns[-1]
    assert reply.error is None and reply.reply == "Half a sentence"
    assert len(reply.candidates) == 2 and reply.meta["cut_off"] is True and reply.meta["seed"] == 7
    assert "cut off" in reply.notice and "cut off" in str(view.chatbot) and "Half a sentence" in str(view.chatbot)
    assert view.retry["visible"] is True and view.status == "Ready"
    saved = ui.history.open(f"browser:{user}", chat.id).conversation.turns[-1]
    assert saved.reply == "Half a sentence" and saved.meta.get("cut_off") is True

    view = list(ui.regenerate(chat, 2, 0.7, 16, 0.5, user))[-1]  # the Retry button
    reply = chat.conversation.turns[-1]
    assert "re: Tell me a story" in reply.reply and reply.error is None and "cut_off" not in reply.meta
    assert len(reply.candidates) == 4  # the cut-off candidates stay browsable as siblings
    assert view.retry["visible"] is False
    ui.history.store.close()


def test_a_timeout_before_any_text_is_still_an_error_with_a_retry(tmp_path):
    class _Silent(FakeGenerator):
        def stream(self, messages, params, stop):
            yield Sample([Draft() for _ in range(params.n)], 1)
            raise ReplyTimeout("The reply took longer than 2 seconds and was stopped.")

    ui, user = _ui(tmp_path)
    ui.engine.generator = _Silent()
    chat = ui.history.new()
    view = list(ui.respond({"text": "Hi", "files": []}, chat, 2, 0.7, 16, 0.5, user))[-1]
    assert "took longer than 2 seconds" in chat.conversation.turns[-1].error and view.retry["visible"] is True
    ui.history.store.close()
