"""The registry of input kinds: flows, the input box, titles and the import check all ask it."""

from __future__ import annotations

import dataclasses

import pytest

from interactive_format.dialogue import Attachment, Turn
from interactive_format.errors import InputError
from interactive_format.flows import MODALITIES, Flow
from interactive_format.history import title_for
from interactive_format.readers import READERS
from interactive_format.rendering import box_options
from interactive_format.store import Store


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
