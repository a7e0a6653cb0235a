"""Admission by expected wait: the queue holds only as many turns as can still finish within the budget."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError

from interactive_format.engine.admission import Admission
from interactive_format.errors import Busy

from ..fakes import fake_engine


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def finished_turn(admission: Admission, clock: Clock, seconds: float) -> None:
    with admission.turn():
        clock.now += seconds


def test_until_a_turn_is_measured_one_round_may_wait():
    admission = Admission(slots=2, budget_s=20, max_waiting=8, clock=Clock())
    bounds = []
    admission.bind(bounds.append)
    assert admission.waiting_bound() == 2
    assert bounds == [4]  # the queue also holds the turns that arrived for the 2 free slots


def test_turns_arriving_for_free_slots_are_never_counted_as_waiting():
    """A burst of users at a fresh server: each free slot takes one, and one round more may wait."""
    clock = Clock()
    admission = Admission(slots=2, budget_s=20, max_waiting=8, clock=clock)
    bounds = []
    admission.bind(bounds.append)
    first = admission.slot()
    assert bounds[-1] == 3  # one slot free, two may wait
    second = admission.slot()
    assert bounds[-1] == 2  # all slots taken: only the waiting round
    first.release()
    second.release()
    assert admission.waiting_bound() == 8 and bounds[-1] == 10  # quick turns measured, both slots free


def test_the_bound_follows_the_measured_turn_time():
    clock = Clock()
    admission = Admission(slots=2, budget_s=20, max_waiting=8, clock=clock)
    bounds = []
    admission.bind(bounds.append)
    finished_turn(admission, clock, 0.5)  # quick turns: the configured queue length is the limit
    assert admission.waiting_bound() == 8 and bounds[-1] == 8 + 2  # and the 2 free slots
    finished_turn(admission, clock, 4.0)  # slower: planned at 1.5 × 4 s, (20 - 6) // 6 = 2 rounds of 2 slots
    assert admission.waiting_bound() == 4 and bounds[-1] == 4 + 2
    finished_turn(admission, clock, 9.0)  # a waiting turn could not finish in time: one may wait at most
    assert admission.waiting_bound() == 1
    for _ in range(8):  # quick again: after a few turns the slow ones are forgotten
        finished_turn(admission, clock, 0.5)
    assert admission.waiting_bound() == 8


def test_a_turn_still_running_long_counts_before_it_ends():
    clock = Clock()
    admission = Admission(slots=1, budget_s=10, max_waiting=8, clock=clock)
    finished_turn(admission, clock, 1.0)
    assert admission.waiting_bound() == 5  # planned at 1.5 s: (10 - 1.5) // 1.5 = 5 rounds of 1 slot
    running = admission.slot()
    clock.now += 4.0  # this one is taking long: planned at 6 s, no whole round fits in 10 s
    assert admission.turn_s() == 4.0 and admission.waiting_bound() == 1
    running.release()
    running.release()  # a second release does nothing
    assert admission.turn_s() == 4.0


def test_slots_are_held_and_a_third_turn_waits_for_one():
    admission = Admission(slots=2, budget_s=10, max_waiting=8)
    a, b = admission.slot(), admission.slot()
    got = threading.Event()
    waiter = threading.Thread(target=lambda: (admission.slot().release(), got.set()))
    waiter.start()
    time.sleep(0.2)
    assert not got.is_set()
    a.release()
    assert got.wait(5)
    b.release()
    waiter.join(5)


def test_a_turn_that_waited_too_long_to_finish_in_time_is_refused_when_its_slot_comes():
    """The queue's bound is planned when a turn joins; if turns slow down while it waits, the budget is kept at
    its start instead: a turn that a recent turn's time would end past the budget is told "busy"."""
    clock = Clock()
    admission = Admission(slots=1, budget_s=20, max_waiting=8, clock=clock)
    finished_turn(admission, clock, 4.0)
    admission.slot(joined=clock.now - 16.0).release()  # 16 s waited + 4 s of turn: just in time
    with pytest.raises(Busy, match="busy; please try again"):
        admission.slot(joined=clock.now - 16.5)
    assert len(admission._started) == 0  # the refused turn holds no slot
    admission.slot().release()  # a turn whose queueing time is unknown is not refused


def test_a_refused_turn_hands_its_slot_to_the_next_waiter():
    clock = Clock()
    admission = Admission(slots=1, budget_s=10, max_waiting=8, clock=clock)
    finished_turn(admission, clock, 2.0)
    held = admission.slot()
    results = []

    def wait(joined: float) -> None:
        try:
            admission.slot(joined).release()
            results.append("started")
        except Busy:
            results.append("busy")

    waiters = [threading.Thread(target=wait, args=(j,)) for j in (clock.now - 9.0, clock.now)]
    for w in waiters:
        w.start()
    time.sleep(0.2)
    held.release()
    for w in waiters:
        w.join(5)
    assert sorted(results) == ["busy", "started"]


TURN_S = 3.0  # a slow turn's length; a turn takes up to ~1.3 s more on a busy machine


def test_the_served_app_tells_a_turn_busy_when_its_wait_leaves_no_time_to_answer(tmp_path, serve):
    """Through Gradio's queue: the wait counted is the turn's own, from when it joined the queue."""
    import dataclasses

    from interactive_format.config import ServerConfig
    from interactive_format.store.store import Store
    from interactive_format.web.ui import build_demo

    from ..fakes import FakeGenerator

    class SlowGenerator(FakeGenerator):
        def stream(self, messages, params, stop):
            time.sleep(TURN_S)
            yield from super().stream(messages, params, stop)

    engine = fake_engine()
    engine.generator = SlowGenerator()
    engine.config = dataclasses.replace(
        engine.config,
        generation=dataclasses.replace(engine.config.generation, turn_timeout_s=1.8 * TURN_S),
        server=ServerConfig(concurrency_limit=1),
    )
    store = Store(tmp_path / "chats.db")
    with serve(build_demo(engine, store)) as url:
        client = Client(url, verbose=False)
        turn = ("", "Hello", None, None, 1, 0.7, 8, uuid.uuid4().hex)
        client.predict(*turn, api_name="/reply")  # a turn of TURN_S is measured
        jobs = [client.submit(*turn, api_name="/reply") for _ in range(2)]  # they may join in either order
        outcomes = []
        for job in jobs:
            try:
                outcomes.append("answered" if job.result(timeout=30)["reply"] else "empty")
            except AppError as e:
                outcomes.append(str(e))
        # The one that started at once took at most TURN_S + 1.3 s of the budget; the other waited TURN_S for it,
        # and TURN_S more would pass the budget.
        assert sorted(outcomes) == ["The server is busy; please try again in a moment.", "answered"]
    store.close()


def test_the_served_app_refuses_at_once_what_its_queue_cannot_hold(tmp_path, serve):
    """Gradio's queue is sized by the admission: a turn beyond the bound is told "busy" at once."""
    from interactive_format.store.store import Store
    from interactive_format.web.ui import build_demo

    store = Store(tmp_path / "chats.db")
    demo = build_demo(fake_engine(), store)
    assert demo._queue.max_size == 4  # the default 2 free slots and one round waiting until a turn is measured
    with serve(demo) as url:
        demo._queue.max_size = 0  # as if every waiting place were taken
        client = Client(url, verbose=False)
        started = time.monotonic()
        job = client.submit("", "Hello", None, None, 1, 0.7, 8, uuid.uuid4().hex, api_name="/reply")
        with pytest.raises(QueueError):
            job.result(timeout=30)
        assert time.monotonic() - started < 10
    store.close()
