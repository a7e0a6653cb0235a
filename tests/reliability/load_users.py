"""The load test's users, run in their own process (python -m tests.reliability.load_users URL USERS SECONDS TIMEOUT).

Each user is a gradio_client Client in a thread that sends /reply turns in one conversation until
the time is up; a full queue ("busy") is answered by waiting a moment. Prints one JSON line per user.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError

from interactive_format.errors import Busy

BUSY_BACKOFF_S = (0.5, 2.0)  # a busy user waits a random time in this range before trying again
BUSY = str(Busy())  # a turn that waited past the point where it could still finish in time is told this


@dataclass
class UserLog:
    user: str
    conversation_id: str = ""
    sent: list[str] = field(default_factory=list)  # messages that were answered, in order
    replies: list[str] = field(default_factory=list)  # every text shown to this user
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)


def one_turn(client: Client, log: UserLog, text: str, timeout_s: float) -> None:
    """Send one turn; record the answer, a "busy" (at once, or after waiting), an error or a hang (no answer within
    timeout_s)."""
    started = time.perf_counter()
    job = client.submit(
        conversation_id=log.conversation_id, message=text, image=None, audio=None, candidates=1,
        temperature=0.7, max_new_tokens=8, user_id=log.user, api_name="/reply",
    )  # fmt: skip
    try:
        result = job.result(timeout=timeout_s)
    except QueueError:  # the queue was full when the turn arrived
        log.outcomes["busy"] += 1
        time.sleep(random.uniform(*BUSY_BACKOFF_S))
        return
    except TimeoutError:
        log.outcomes["hung"] += 1
        return
    except AppError as e:
        late = str(e) == BUSY and time.perf_counter() - started < timeout_s
        log.outcomes["busy after waiting" if late else "error: " + str(e)[:80]] += 1
        return
    log.latencies.append(time.perf_counter() - started)
    log.outcomes["answered"] += 1
    log.conversation_id = result["conversation_id"]
    log.sent.append(text)
    log.replies += [result["reply"], *(c["text"] for c in result["candidates"])]


def user_session(server: str, start: threading.Barrier, seconds: float, timeout_s: float) -> UserLog:
    log = UserLog(uuid.uuid4().hex)
    # No certificates to load on plain http: httpx would read the CA bundle (~60 ms of CPU) for every request,
    # and this process would take a core from the server it measures.
    client = Client(server, verbose=False, ssl_verify=server.startswith("https://"))
    start.wait()
    until, k = time.monotonic() + seconds, 0
    while time.monotonic() < until:
        one_turn(client, log, f"Hello, I am visitor {log.user[:8]} and this is message {k}.", timeout_s)
        k += 1
    return log


def main(server: str, users: int, seconds: float, timeout_s: float) -> None:
    start = threading.Barrier(users)
    with ThreadPoolExecutor(users) as pool:
        futures = [pool.submit(user_session, server, start, seconds, timeout_s) for _ in range(users)]
        for f in futures:
            log = f.result()
            print(json.dumps({**asdict(log), "outcomes": dict(log.outcomes)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
