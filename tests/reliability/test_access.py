"""Who may use the app and what it keeps: password auth, the per-user rate limit, the store-nothing switch."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from interactive_format.web.callbacks import ChatUI
from interactive_format.config import StorageConfig, auth_pair
from interactive_format.settings.load import load_config
from interactive_format.web.rendering import to_messages
from interactive_format.store.store import open_store
from interactive_format.web.ui import build_demo

from .conftest import RATE_LIMIT, engine_with, new_user, reply


def test_password_auth_keeps_out_anyone_without_it(rel_engine, rel_store, serve):
    config = dataclasses.replace(
        rel_engine.config, server=dataclasses.replace(rel_engine.config.server, auth="ada:s3cret")
    )
    with serve(build_demo(engine_with(rel_engine, config), rel_store), auth=auth_pair(config)) as url:
        assert httpx.get(url + "/config", timeout=10).status_code == 401
        bad = httpx.post(url + "/login", data={"username": "ada", "password": "guess"}, timeout=10)
        assert bad.status_code == 400
        client = Client(url, auth=("ada", "s3cret"), verbose=False)
        assert client.predict(user_id=new_user(), api_name="/conversations") == []


def test_auth_setting_is_checked():
    assert load_config(environ={"IF_AUTH": "ada:s3cret"}).server.auth == "ada:s3cret"
    with pytest.raises(ValueError, match="server.auth"):
        load_config(environ={"IF_AUTH": "no-password"})


def test_rate_limit_tells_a_fast_user_to_wait_and_spares_the_others(rel_client):
    fast = new_user()
    for _ in range(RATE_LIMIT):  # refused turns count too: probing is not free
        with pytest.raises(AppError, match="Type a message"):
            reply(rel_client, fast, "")
    with pytest.raises(AppError, match=rf"too fast \(the limit is {RATE_LIMIT} a minute\)\. Please wait \d+ seconds"):
        reply(rel_client, fast, "Hello?")
    assert reply(rel_client, new_user(), "Hello?")["reply"].strip()  # someone else is served


def test_store_nothing_writes_no_database_and_deletes_uploads(rel_engine, media, tmp_path):
    storage = StorageConfig(db_path=tmp_path / "chats.db", persist=False)
    assert load_config(environ={"IF_PERSIST": "false"}).storage.persist is False
    config = dataclasses.replace(rel_engine.config, storage=storage)
    store = open_store(storage)
    ui, user = ChatUI(engine_with(rel_engine, config), store), uuid.uuid4().hex
    upload = Path(gr.utils.get_upload_folder()) / uuid.uuid4().hex / "coffee.png"
    upload.parent.mkdir(parents=True)
    shutil.copy(media["coffee"], upload)
    chat = ui.history.new()
    list(ui.respond({"text": "What is this?", "files": [str(upload)]}, chat, 1, 0.7, 8, 0.5, user))
    assert chat.conversation.turns[-1].reply.strip() and "Picture tags" in str(to_messages(chat.conversation))
    assert not upload.exists() and not upload.parent.exists()  # read, then deleted
    assert not (tmp_path / "chats.db").exists() and store.db_path == ":memory:"
    outside = tmp_path / "keep.png"  # a path outside Gradio's upload folder is never deleted
    shutil.copy(media["coffee"], outside)
    list(ui.respond({"text": "And this?", "files": [str(outside)]}, chat, 1, 0.7, 8, 0.5, user))
    assert outside.exists()
    store.close()


def test_uploads_are_cleaned_up_after_the_configured_age(rel_engine, rel_store):
    demo = build_demo(rel_engine, rel_store)
    age = rel_engine.config.server.upload_max_age_s
    assert demo.delete_cache == (min(age, 3600), age) and age == 86_400
