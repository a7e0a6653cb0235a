"""32 gradio_client users at once for a bounded time: answered or told "busy, try again" (at once when the queue is
full, or when a waiting turn could no longer finish in time), never hung or mixed up.

The users run in their own process (load_users.py), as real clients would: the server's
process holds only the server.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from .conftest import CONCURRENCY, MAX_QUEUE, TURN_TIMEOUT_S

USERS = 32
RUN_S = 20.0  # how long the users keep sending
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "reliability"


@pytest.mark.slow
@pytest.mark.alone  # its latencies are what it checks
def test_32_users_are_answered_or_told_busy_and_see_only_their_own_chats(rel_server, rel_client):
    cmd = [
        sys.executable,
        "-m",
        "tests.reliability.load_users",
        rel_server,
        str(USERS),
        str(RUN_S),
        str(TURN_TIMEOUT_S),
    ]
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=RUN_S + TURN_TIMEOUT_S + 60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    logs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(logs) == USERS
    outcomes = sum((Counter(log["outcomes"]) for log in logs), Counter())
    latencies = sorted(t for log in logs for t in log["latencies"])
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))]
    summary = {"users": USERS, "seconds": RUN_S, "concurrency_limit": CONCURRENCY, "max_queue": MAX_QUEUE,
               "outcomes": dict(outcomes), "users_answered": sum(bool(log["sent"]) for log in logs),
               "p50_s": round(p50, 2), "p95_s": round(p95, 2), "max_s": round(latencies[-1], 2)}  # fmt: skip
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "load.json").write_text(json.dumps(summary, indent=1))
    print(f"\nload: {summary}")
    assert set(outcomes) <= {"answered", "busy", "busy after waiting"}, outcomes  # nothing hung, nothing failed
    assert all(log["outcomes"] for log in logs)  # every user was answered or told "busy" (none left hanging)
    assert outcomes["answered"] >= 10 and latencies[-1] < TURN_TIMEOUT_S
    markers = {log["user"][:8] for log in logs}
    for log in logs:  # each user's store holds exactly what they sent, and no one saw another's text
        chats = rel_client.predict(user_id=log["user"], api_name="/conversations")
        assert [c["id"] for c in chats] == ([log["conversation_id"]] if log["sent"] else [])
        if not log["sent"]:
            continue
        saved = rel_client.predict(
            conversation_id=log["conversation_id"], user_id=log["user"], api_name="/conversation"
        )
        messages = saved["conversations"][0]["messages"]
        assert [m["content"] for m in messages if m["role"] == "user"] == log["sent"]
        others = markers - {log["user"][:8]}
        assert not any(m in text for m in others for text in log["replies"] + [json.dumps(saved)])
