"""Admission by expected wait: only as many turns may wait as can still finish within the turn budget.

A queue bounded only by its length breaks its promise on a slow or busy machine: with 2 slots and 8
waiting, the last one waits 4 turn-times, which is 4 s on a quiet CPU and 20 s when a neighbour
takes a core. Here the bound on waiting turns follows the measured turn time: a turn may join the
queue only if (its place ÷ slots, rounded up) × the recent turn time + its own turn fits in the
budget, with turns planned 1.5× as slow as measured (`HEADROOM`). The bound is Gradio's own queue
size, so a turn beyond it is refused at once and cheaply ("busy, try again"), before any work is
done for it. Gradio's queue also holds the turns that have arrived for a free slot and are not yet
dispatched (a burst of users at once), so its size is the waiting bound plus the free slots.
"Recent turn time" is the longest of the last few finished turns and of the turns running now, so a
slowdown is felt at once and forgotten after a few quick turns. Until a turn has finished, one
round (`slots` turns) may wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

RECENT = 8  # how many finished turns the recent turn time is taken over
# Waiting is planned for turns this many times slower than measured, since turns slow down while a turn
# waits (more load, a neighbour taking a core). In the 32-user load test on 2 cores: with 1.0 the slowest
# answer took 19.8 s of a 20 s budget and 2 hung; with 2.0 it took 11.4 s, with fewer turns answered.
HEADROOM = 1.5


class Admission:
    """Counts the running turns and keeps the bound on waiting turns that `budget_s` allows."""

    def __init__(self, slots: int, budget_s: float, max_waiting: int, clock=time.monotonic) -> None:
        self.slots = max(1, slots)
        self.budget_s = budget_s
        self.max_waiting = max(1, max_waiting)
        self.clock = clock
        self._recent: deque[float] = deque(maxlen=RECENT)
        self._started: list[float] = []  # start times of the running turns
        self._cond = threading.Condition()
        self._listeners: list[Callable[[int], None]] = []

    def turn_s(self) -> float:
        """The recent turn time: the longest of the last finished turns and of those running now (0 at first)."""
        now = self.clock()
        return max([*self._recent, *(now - t for t in self._started)], default=0.0)

    def waiting_bound(self) -> int:
        """How many turns may wait for a slot, so that the last of them still finishes within the budget."""
        if not self._recent:  # nothing measured yet: one round
            return min(self.slots, self.max_waiting)
        turn = max(self.turn_s(), 1e-3) * HEADROOM
        rounds = int((self.budget_s - turn) // turn)  # whole turn-times a waiting turn may spend waiting
        return max(1, min(self.max_waiting, rounds * self.slots))

    def queue_bound(self) -> int:
        """How many turns may be queued and not yet started: the free slots' and those that may wait."""
        return self.waiting_bound() + max(0, self.slots - len(self._started))

    def bind(self, set_bound: Callable[[int], None]) -> None:
        """Call `set_bound(n)` with `queue_bound()` now and whenever it changes (e.g. to size Gradio's queue)."""
        self._listeners.append(set_bound)
        set_bound(self.queue_bound())

    def _changed(self) -> None:
        bound = self.queue_bound()
        for listener in self._listeners:
            listener(bound)

    def slot(self) -> Slot:
        """A slot for one turn (waiting while all are taken); `release()` it when the turn is done."""
        with self._cond:
            while len(self._started) >= self.slots:
                self._cond.wait()
            started = self.clock()
            self._started.append(started)
            self._changed()
        return Slot(self, started)

    def _release(self, started: float) -> None:
        with self._cond:
            self._started.remove(started)
            self._recent.append(self.clock() - started)
            self._changed()
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


def bound_gradio_queue(demo, admission: Admission) -> None:
    """Keep `demo`'s queue (made by `demo.queue()`) no longer than `admission` allows.

    Gradio refuses an event when its queue holds `max_size` events; that check is the cheap,
    at-once refusal we want, and `max_size` is a plain attribute it reads on every join.
    """

    def set_bound(n: int) -> None:
        demo._queue.max_size = n

    admission.bind(set_bound)
