"""What every chat backend speaks: sampling parameters, drafts, snapshots, row ends, the `Generator` protocol.

The backends (`generator.py` transformers, `llamacpp.py`, `openai_backend.py`, `vlm.py`) take
these types from here; `backends.load_generator` picks one for a config. No torch here.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import ReplyTimeout


@dataclass(frozen=True)
class SamplingParams:
    n: int = 4  # candidates, sampled as one batch
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 160
    seed: int | None = None  # None: a fresh random seed, recorded in the result
    timeout_s: float | None = None  # wall-clock limit for the whole reply; None: no limit

    @property
    def greedy(self) -> bool:
        """Temperature 0 means greedy decoding (the tests' and the benchmark's exact-match mode)."""
        return self.temperature <= 0


@dataclass
class Draft:
    """One candidate as it grows."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprob_sum: float = 0.0
    finished: bool = False  # reached end-of-turn (not cut by the token limit or a stop)

    @property
    def mean_logprob(self) -> float:
        """J: length-normalised log-likelihood under the generator (0 tokens -> -inf)."""
        return self.logprob_sum / len(self.token_ids) if self.token_ids else float("-inf")


@dataclass
class Sample:
    """A snapshot of all candidates; `done` on the last one."""

    drafts: list[Draft]
    seed: int
    done: bool = False
    stopped: bool = False  # the user pressed stop
    # The prompt's tokens and how many of them came from the engine's prompt cache (not evaluated again), where the
    # engine reports them (llama.cpp: on the last sample); None elsewhere.
    prompt_tokens: int | None = None
    cached_tokens: int | None = None


class RowEnds:
    """The rows of one stream that its consumer ended before they finished, each with why (pruning.py).

    Shared between the consumer and the engine's thread: an engine that can end single rows
    (`ends_rows = True`) stops decoding a row once it is here, and its stream is done when every row
    has finished or ended.
    """

    def __init__(self) -> None:
        self._why: dict[int, str] = {}
        self._lock = threading.Lock()

    def end(self, rows: Mapping[int, str]) -> None:
        """End `rows` (row -> why); a row already ended keeps its first reason."""
        with self._lock:
            for row, why in rows.items():
                self._why.setdefault(row, why)

    def __contains__(self, row: int) -> bool:
        return row in self._why

    def reasons(self) -> dict[int, str]:
        """Every ended row with why, as of now."""
        with self._lock:
            return dict(self._why)


class Generator(Protocol):
    """Anything that turns chat messages into N streamed candidates.

    A generator with `ends_rows = True` also takes `ends` (RowEnds) in `stream`, and stops decoding the
    rows ended there.
    """

    name: str

    def count_tokens(self, messages: list[dict]) -> int: ...

    def stream(self, messages: list[dict], params: SamplingParams, stop: threading.Event) -> Iterator[Sample]: ...


class Deadline:
    """Waits on a queue for at most what is left of `timeout_s` (None: forever)."""

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.end = None if timeout_s is None else time.monotonic() + timeout_s

    def get(self, q: queue.Queue):
        """The next item; ReplyTimeout (a GenerationError) once the time is up (a stalled model included)."""
        if self.end is None:
            return q.get()
        try:
            return q.get(timeout=max(self.end - time.monotonic(), 0.0))
        except queue.Empty:
            raise ReplyTimeout(
                f"The reply took longer than {self.timeout_s:g} seconds and was stopped. Please try again "
                "(fewer candidates or a shorter reply are quicker)."
            ) from None
