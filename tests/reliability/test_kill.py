"""SIGKILL mid-turn: after a restart on the same database every committed turn is there; logs hold no user text."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from gradio_client import Client

from ..conftest import TEST_ENV, free_port
from .conftest import reply

WRITERS = 4
SECRET = "saffron"  # in every message; must never reach the log
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability"


def write_until_killed(url: str, user: str, committed: list[str], cut: list[str]) -> None:
    """Send turns in one conversation; keep each one the server confirmed (then it is committed)."""
    client, cid, k = Client(url, verbose=False), "", 0
    while True:
        text = f"{SECRET} {user[:6]} note {k}: remember it."
        try:
            cid = reply(client, user, text, cid)["conversation_id"]
        except Exception:  # noqa: BLE001 - any failure once the server is killed: this turn was never confirmed
            cut.append(text)
            return
        committed.append(text)
        k += 1


@pytest.mark.slow
def test_sigkill_mid_turn_loses_no_committed_turn(engine, cache_dir, tmp_path, app_process):
    env = {**os.environ, "IF_DB": str(tmp_path / "chats.db"), "IF_CACHE_DIR": str(cache_dir),
           "IF_PORT": str(free_port()), "IF_HOST": "127.0.0.1", "IF_CANDIDATES": "1", "IF_MAX_NEW_TOKENS": "8",
           "HF_HUB_OFFLINE": "1", "IF_WARMUP": "0", **TEST_ENV}  # fmt: skip
    users = [uuid.uuid4().hex for _ in range(WRITERS)]
    committed: dict[str, list[str]] = {u: [] for u in users}
    log = tmp_path / "app.log"
    cut: list[str] = []  # the turns in flight when the server was killed
    with app_process(env, log=log) as url:
        writers = [threading.Thread(target=write_until_killed, args=(url, u, committed[u], cut)) for u in users]
        for w in writers:
            w.start()
        deadline = time.monotonic() + 60
        # every writer has turns committed (a writer whose client connected late has none yet) and one going
        while min(map(len, committed.values())) < 2:
            assert time.monotonic() < deadline, f"too few turns: {committed}"
            time.sleep(0.1)
    # app_process has SIGKILLed the server here, mid-turn
    for w in writers:
        w.join(timeout=30)
    with app_process(env, log=tmp_path / "app-restarted.log") as url:
        client = Client(url, verbose=False)
        lost = 0
        for user in users:
            chats = client.predict(user_id=user, api_name="/conversations")
            assert len(chats) == 1, f"{user[:6]}: {len(committed[user])} turns confirmed, {len(chats)} chats saved"
            saved = client.predict(conversation_id=chats[0]["id"], user_id=user, api_name="/conversation")
            texts = [m["content"] for m in saved["conversations"][0]["messages"] if m["role"] == "user"]
            lost += sum(t not in texts for t in committed[user])
            assert texts[: len(committed[user])] == committed[user]
        assert reply(client, users[0], "Still there?")["reply"].strip()
    total = sum(map(len, committed.values()))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    summary = {"committed_turns": total, "in_flight_at_kill": len(cut), "lost_after_kill": lost}
    (ARTIFACTS / "kill.json").write_text(json.dumps(summary))
    print(f"\nSIGKILL mid-turn: {summary}")
    assert lost == 0 and total >= 2 * WRITERS and len(cut) == WRITERS
    logs = log.read_text() + (tmp_path / "app-restarted.log").read_text()
    assert SECRET not in logs and "remember it" not in logs  # no user text in the logs (debug is off)
