"""Whole turns through a running app: the `chat` API via gradio_client, and the UI callbacks."""

from __future__ import annotations

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from interactive_format.ui import ChatUI, to_messages

COFFEE_WORDS = ("espresso", "coffee", "cup", "mug")


def chat(client, message="", image=None, audio=None, n=4):
    return client.predict(
        message=message,
        image=handle_file(str(image)) if image else None,
        audio=handle_file(str(audio)) if audio else None,
        candidates=n,
        temperature=0.7,
        max_new_tokens=24,
        api_name="/chat",
    )


def check_reply(result, n=4):
    assert result["reply"].strip()
    assert len(result["candidates"]) == n
    best = min(result["candidates"], key=lambda c: c["rank"])
    assert best["text"] == result["reply"] and best["score"] == max(c["score"] for c in result["candidates"])
    assert all(c["j"] < 0 for c in result["candidates"] if c["text"])


def test_text_turn(client):
    result = chat(client, "Hello! Can you recommend a good book?")
    check_reply(result)
    assert result["transcript"] is None and result["caption"] is None


def test_replies_are_ranked_by_the_shipped_discriminator(client, engine):
    d = engine.reranker.discriminator
    assert d is not None and engine.reranker.lam == d.meta["lam"]  # λ as chosen on validation
    result = chat(client, "Do you like hiking?")
    lam = engine.reranker.lam
    for c in result["candidates"]:
        if c["text"].strip():
            assert 0 < c["d"] < 1 and c["score"] == pytest.approx(lam * c["d"] + (1 - lam) * c["j"])
    assert "likelihood only" not in engine.ranking_note


def test_picture_turn(client, media):
    result = chat(client, "What is in this picture?", image=media["coffee"])
    check_reply(result)
    assert any(w in result["caption"].lower() for w in COFFEE_WORDS)


def test_voice_turn(client, media):
    result = chat(client, audio=media["question"])
    check_reply(result)
    assert "weather" in result["transcript"].lower()


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("corrupt", "picture"),
        ("empty", "empty"),
        ("notes", "audio"),
        ("giant", "limit is 4,000"),
    ],
)
def test_bad_input_gives_clear_message_and_next_turn_works(client, media, kind, expected):
    with pytest.raises(AppError) as info:
        if kind == "giant":
            chat(client, "word " * 2000)
        elif kind == "corrupt":
            chat(client, "look", image=media["corrupt"])
        else:
            chat(client, audio=media[kind])
    assert expected in str(info.value).lower() or expected in str(info.value)
    assert "Traceback" not in str(info.value)
    check_reply(chat(client, "Thanks. Say hi.", n=2), n=2)


def test_ui_history_survives_bad_turns(engine, media):
    ui = ChatUI(engine)
    conv = engine.new_conversation()
    settings = (2, 0.7, 16, 0.5)

    def turn(message):
        return list(ui.respond(message, conv, *settings))[-1]

    turn({"text": "Hi there!", "files": []})
    turn({"text": "", "files": [str(media["empty"])]})
    turn({"text": "what is it?", "files": [str(media["coffee"])]})
    turn({"text": "z" * 5000, "files": []})
    last = turn({"text": "Thank you!", "files": []})
    chatbot, box, state, status = last
    roles = [t.role for t in state.turns]
    assert roles == ["user", "assistant", "user", "user", "assistant", "user", "user", "assistant"]
    assert state.turns[2].error and "empty" in state.turns[2].error
    assert state.turns[5].error and state.turns[5].text.endswith("[5,000 characters]")
    assert all(t.reply for t in state.turns if t.role == "assistant")
    # the prompt for the last turn carried the good turns only
    assert "z" * 50 not in str(conv.messages())
    text = str(chatbot)
    assert "⚠️" in text and "Picture tags" in text and "candidate(s), ranked" in text
    assert status == "Ready"


def test_stream_yields_partial_replies(engine):
    ui = ChatUI(engine)
    conv = engine.new_conversation()
    updates = list(ui.respond({"text": "Tell me a story about a cat.", "files": []}, conv, 2, 0.7, 24, 0.5))
    pending = [u for u in updates if u[3].startswith("Sampling")]
    assert len(pending) >= 3  # the reply grew in steps
    lengths = [len(u[2].turns[-1].reply) for u in pending]
    assert lengths[-1] >= lengths[0]
    assert to_messages(conv)[-1]["metadata"]["status"] == "done"


def test_empty_submission_adds_nothing(engine):
    ui = ChatUI(engine)
    conv = engine.new_conversation()
    updates = list(ui.respond({"text": "   ", "files": []}, conv, 2, 0.7, 16, 0.5))
    assert conv.turns == [] and updates[-1][3] == "Ready"


def test_stop_keeps_the_partial_reply(engine):
    ui = ChatUI(engine)
    conv = engine.new_conversation()
    turn = ui.respond({"text": "Write a long story about a dragon.", "files": []}, conv, 2, 0.7, 400, 0.5)
    streamed = 0
    for update in turn:
        streamed += update[3].startswith("Sampling")
        if streamed == 4:
            ui.stop()
            break
    final = list(turn)[-1]
    reply = conv.turns[-1]
    assert final[3] == "Ready" and "Stopped" in reply.notice
    assert reply.reply and all(len(c.text.split()) < 200 for c in reply.candidates)
    assert "Stopped" in str(final[0])
