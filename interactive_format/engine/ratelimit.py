"""A per-user limit on how many turns start per minute (a sliding window, in memory)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from ..errors import InputError

WINDOW_S = 60.0
MAX_KEYS = 10_000  # beyond this many users in the table, idle ones are forgotten


class RateLimiter:
    """`check(key)` refuses a key's turn once `per_minute` turns started in the last minute (0: no limit)."""

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._starts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Count one turn for `key`, or raise InputError saying how long to wait."""
        if self.per_minute <= 0:
            return
        now = self.clock()
        with self._lock:
            starts = self._starts.setdefault(key, deque())
            while starts and starts[0] <= now - WINDOW_S:
                starts.popleft()
            if len(starts) >= self.per_minute:
                wait = starts[0] + WINDOW_S - now
                raise InputError(
                    f"You are sending messages too fast (the limit is {self.per_minute} a minute). "
                    f"Please wait {max(1, math.ceil(wait))} seconds and try again."
                )
            starts.append(now)
            if len(self._starts) > MAX_KEYS:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, s in self._starts.items() if not s or s[-1] <= now - WINDOW_S]:
            del self._starts[key]
