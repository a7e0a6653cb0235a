"""Admission by expected wait: a turn the server admits starts in time to finish within the turn budget.

A queue bounded only by its length breaks its promise on a slow or busy machine: with 2 slots and 8
waiting, the last one waits 4 turn-times, which is 4 s on a quiet CPU and 20 s when a neighbour
takes a core. Here a turn is admitted only while (turns ahead of it ÷ slots, rounded up) × the
recent turn time + its own turn time fits in the budget; otherwise it is refused at once with a
message saying how long to wait. "Recent turn time" is the longest of the last few turns and of the
turns running now, so a slowdown is felt at the next admission — even before a slow turn has
ended — and forgotten after a few quick turns.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import InteractiveFormatError

RECENT = 8  # how many finished turns the recent turn time is taken over


class BusyError(InteractiveFormatError):
    """The server cannot start this turn in time; the message says when to try again."""


class Admission:
    """`slots` turns run at once; a turn that would not finish within `budget_s` of arriving is refused."""

    def __init__(self, slots: int, budget_s: float, max_waiting: int, clock=time.monotonic) -> None:
        self.slots = max(1, slots)
        self.budget_s = budget_s
        self.max_waiting = max_waiting
        self.clock = clock
        self._recent: deque[float] = deque(maxlen=RECENT)
        self._started: list[float] = []  # start times of the running turns
        self._running = 0
        self._waiting = 0
        self._cond = threading.Condition()

    def turn_s(self) -> float:
        """The recent turn time: the longest of the last finished turns and of those running now (0 at first)."""
        now = self.clock()
        return max([*self._recent, *(now - t for t in self._started)], default=0.0)

    def expected_wait_s(self) -> float:
        """How long a turn arriving now would wait for a slot."""
        ahead = self._running + self._waiting - self.slots + 1  # turns that must end before it starts
        return math.ceil(ahead / self.slots) * self.turn_s() if ahead > 0 else 0.0

    def _admit(self) -> None:
        if self._running + self._waiting < self.slots:  # a slot is free
            return
        wait = self.expected_wait_s()
        if self._waiting >= self.max_waiting or wait + self.turn_s() > self.budget_s:
            retry = max(1, math.ceil(wait or self.turn_s()))
            seconds = "second" if retry == 1 else "seconds"
            raise BusyError(
                f"The server is busy: a new message would wait about {retry} {seconds} for a free slot. "
                f"Please try again in {retry} {seconds}."
            )

    def slot(self) -> Slot:
        """A slot for one turn (waiting for one if admitted), or BusyError at once; `release()` it when done."""
        with self._cond:
            self._admit()
            self._waiting += 1
            try:
                while self._running >= self.slots:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._running += 1
            started = self.clock()
            self._started.append(started)
        return Slot(self, started)

    def _release(self, started: float) -> None:
        with self._cond:
            self._running -= 1
            self._started.remove(started)
            self._recent.append(self.clock() - started)
            self._cond.notify()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """`slot()` held for the duration of a `with` block."""
        slot = self.slot()
        try:
            yield
        finally:
            slot.release()


class Slot:
    """A held turn slot; `release()` records the turn's time (a second call does nothing)."""

    def __init__(self, admission: Admission, started: float) -> None:
        self._admission = admission
        self._started: float | None = started

    def release(self) -> None:
        if self._started is not None:
            started, self._started = self._started, None
            self._admission._release(started)
