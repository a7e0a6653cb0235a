"""The registry of input kinds: flows, the input box, titles and the import check all ask it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from interactive_format.dialogue import Attachment, Turn
from interactive_format.errors import InputError
from interactive_format.flows import MODALITIES, Flow
from interactive_format.engine.history import title_for
from interactive_format.inputs.picturereader import PictureMeta
from interactive_format.inputs.readers import READERS
from interactive_format.inputs.reading import Reader, Reading, ReadingMeta
from interactive_format.web.rendering import box_options, render
from interactive_format.store.store import Store
from interactive_format.inputs.voicereader import VoiceMeta

from ..fakes import fake_engine


def test_every_reader_is_a_flow_modality_with_its_box_options_and_title():
    assert MODALITIES == ("text", *(r.modality for r in READERS.values()))
    for reader in READERS.values():
        flow = dataclasses.replace(Flow(), modalities=("text", reader.modality))
        assert flow.allows(reader.kind) and not dataclasses.replace(flow, modalities=("text",)).allows(reader.kind)
        assert box_options(flow) == {"file_types": [reader.kind], "sources": list(reader.sources)}
        assert title_for(Turn("user", attachments=[Attachment(reader.kind, "")])) == reader.title
    assert box_options(dataclasses.replace(Flow(), modalities=("text",))) == {"file_types": [], "sources": []}


def test_an_import_names_the_registered_kinds(tmp_path):
    store = Store(tmp_path / "c.db")
    turn = {"role": "user", "content": "hi", "attachments": [{"kind": "pdf", "text": "x"}]}
    data = {"format": "interactive-format/conversations", "version": 1, "conversations": [{"messages": [turn]}]}
    with pytest.raises(InputError, match="kind must be 'image' or 'audio'"):
        store.import_("alice", data)
    store.close()


class NoteReader(Reader):
    """A tiny new input kind, registered by the test alone: plain .txt notes, read as they are."""

    kind, modality, noun, format_name = "note", "notes", "notes", "note"
    status, title, hint, types = "Reading your note…", "Note", ("attach a note", "添加笔记"), (".txt",)

    def label(self, meta, number):
        return f"Note ({meta.model})"

    def prompt(self, text, number):
        return f"[The user attached a note: {text}]"

    def read(self, path, stages):
        return Reading(Path(path).read_text(encoding="utf-8"), ReadingMeta(model="plain text", ms=0))


def test_a_new_kind_is_one_reader_in_the_registry_and_flows_through_guard_prompt_and_store(monkeypatch, tmp_path):
    monkeypatch.setitem(READERS, "note", NoteReader())
    engine = fake_engine()
    engine.config = dataclasses.replace(engine.config, flow=Flow(modalities=("text", "notes")))
    note = tmp_path / "list.txt"
    note.write_text("milk, eggs", encoding="utf-8")
    conversation = engine.new_conversation()
    statuses = list(engine.respond(conversation, "what do I buy?", [str(note)]))
    user = conversation.turns[0]
    assert "Reading your note…" in statuses and user.error is None
    assert engine.generator.prompts[-1][-1]["content"] == "[The user attached a note: milk, eggs]\nwhat do I buy?"
    assert box_options(engine.config.flow) == {"file_types": [".txt"], "sources": ["upload"]}
    store = Store(tmp_path / "c.db")
    cid = store.create("alice", "")
    store.add_turn("alice", cid, user)
    again = store.import_("bob", store.export("alice", cid))[0]
    for owner, chat in (("alice", cid), ("bob", again)):
        loaded = store.load(owner, chat).turns[0]
        assert (loaded.attachments[0].kind, loaded.attachments[0].text) == ("note", "milk, eggs")
        shown = [m["content"] for m, (_, part, _) in render(store.load(owner, chat)) if part == "caption"]
        assert shown == ["*Note (plain text):* milk, eggs"]
    store.close()
    pdf = tmp_path / "list.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    with pytest.raises(InputError, match=r"not a supported picture, voice or note format \(accepted: .*\.txt\)"):
        engine.guard.file(pdf)
    text_only = dataclasses.replace(engine.config, flow=Flow(modalities=("text",)))
    engine.config = text_only
    refused = engine.new_conversation()
    list(engine.respond(refused, "", [str(note)]))
    assert refused.turns[0].error == "This chat (Interactive Format) does not take notes; please type your message."


def test_attachment_meta_is_the_kind_s_typed_meta_stored_as_its_set_fields(tmp_path):
    picture = Attachment("image", "", "a cup", {"kind": "tags", "text_lines": 2, "junk": [1], "model": 5})
    assert picture.meta == PictureMeta(kind="tags", text_lines=2, model=5)  # lists and unknown keys left out
    voice = Attachment("audio", "", "hello", {"language": "en", "seconds": 1.5})
    assert isinstance(voice.meta, VoiceMeta) and voice.meta.to_dict() == {"language": "en", "seconds": 1.5}
    assert Attachment("image", "").meta == PictureMeta()


def test_the_input_box_hint_for_each_set_of_kinds_comes_from_the_readers_hints():
    from interactive_format.web.i18n import TEXTS, placeholder_key

    hints = {(): ("Type a message…", "输入消息…")}
    hints[("image",)] = ("Type a message or attach a picture…", "输入消息或添加图片…")
    hints[("voice",)] = ("Type a message or record your voice…", "输入消息或录制语音…")
    hints[("image", "voice")] = (
        "Type a message, attach a picture, or record your voice…",
        "输入消息、添加图片或录制语音…",
    )
    for modalities, texts in hints.items():
        assert TEXTS[placeholder_key(("text", *modalities))] == texts
