"""Admission by expected wait: a turn is admitted only if it can finish within the budget, else refused at once."""

from __future__ import annotations

import threading
import time

import pytest

from interactive_format.admission import Admission, BusyError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def finished_turn(admission: Admission, clock: Clock, seconds: float) -> None:
    with admission.turn():
        clock.now += seconds


def test_before_any_turn_is_measured_the_queue_length_alone_bounds_waiting():
    admission = Admission(slots=1, budget_s=10, max_waiting=2, clock=Clock())
    assert admission.expected_wait_s() == 0.0
    slot = admission.slot()  # runs at once
    assert admission.expected_wait_s() == 0.0  # nothing measured yet: admitted, it would wait
    slot.release()


def test_a_turn_that_would_not_finish_in_time_is_refused_at_once_and_says_how_long_to_wait():
    clock = Clock()
    admission = Admission(slots=1, budget_s=10, max_waiting=8, clock=clock)
    finished_turn(admission, clock, 4.0)  # turns take 4 s here
    running = admission.slot()
    assert admission.expected_wait_s() == 4.0  # 4 s wait + 4 s turn fits in 10 s: admitted
    waiter = threading.Thread(target=lambda: admission.slot().release())
    waiter.start()
    deadline = time.monotonic() + 5
    while admission._waiting == 0 and time.monotonic() < deadline:  # the admitted one waits for the slot
        time.sleep(0.01)
    assert admission.expected_wait_s() == 8.0  # 8 s wait + 4 s turn > 10 s: refused, not queued
    started = time.monotonic()
    with pytest.raises(BusyError, match=r"busy: a new message would wait about 8 seconds.*try again in 8 seconds"):
        admission.slot()
    assert time.monotonic() - started < 0.5  # at once
    running.release()
    waiter.join(timeout=5)
    assert not waiter.is_alive()  # the admitted one got the slot once it was free


def test_slots_run_at_once_and_a_slowdown_is_felt_at_the_next_admission_and_forgotten_later():
    clock = Clock()
    admission = Admission(slots=2, budget_s=10, max_waiting=8, clock=clock)
    finished_turn(admission, clock, 1.0)
    a, b = admission.slot(), admission.slot()  # two slots: both run
    assert admission.expected_wait_s() == 1.0  # a third waits for one of them
    a.release(), b.release()
    finished_turn(admission, clock, 9.5)  # a neighbour took the CPU: one slow turn
    held = [admission.slot(), admission.slot()]
    with pytest.raises(BusyError):  # 9.5 s wait + 9.5 s turn > 10 s
        admission.slot()
    for slot in held:
        slot.release()
    for _ in range(8):  # quick again: after a few turns the slow one is forgotten
        finished_turn(admission, clock, 1.0)
    held = [admission.slot(), admission.slot()]
    assert admission.expected_wait_s() == 1.0
    for slot in held:
        slot.release()


def test_max_waiting_still_bounds_the_queue_and_release_twice_is_harmless():
    clock = Clock()
    admission = Admission(slots=1, budget_s=100, max_waiting=0, clock=clock)
    slot = admission.slot()
    with pytest.raises(BusyError):
        admission.slot()
    slot.release()
    slot.release()
    assert admission._running == 0


def test_a_turn_still_running_long_counts_before_it_ends():
    clock = Clock()
    admission = Admission(slots=1, budget_s=10, max_waiting=8, clock=clock)
    finished_turn(admission, clock, 1.0)
    running = admission.slot()
    assert admission.expected_wait_s() == 1.0
    clock.now += 6.0  # this one is taking long: a newcomer would wait at least that, and its own turn too
    with pytest.raises(BusyError):
        admission.slot()
    running.release()
    assert admission.turn_s() == 6.0
