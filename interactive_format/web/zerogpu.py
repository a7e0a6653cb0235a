"""ZeroGPU on Hugging Face Spaces: one whole turn runs inside `spaces.GPU` when that package is importable.

On a ZeroGPU Space a GPU is attached only while a `spaces.GPU` function runs, in a forked worker
whose results come back pickled. So the wrapped function is the engine's part of a turn (caption
or transcribe, sample N, rerank) and it yields the conversation with each status line: the caller
keeps the last one it got, which is the same object when nothing is forked (off Spaces, or with
`spaces` installed but no ZeroGPU, where `spaces.GPU` returns the function itself).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..dialogue import Conversation

GPU_SECONDS = 120  # the most one turn may hold the GPU (ZeroGPU's `duration`)

F = TypeVar("F", bound=Callable)


def on_gpu(fn: F, seconds: int = GPU_SECONDS) -> F:
    """`fn` wrapped in spaces.GPU when the `spaces` package is importable, else `fn` itself."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=seconds)(fn)


def turn_steps(
    run: Callable[[threading.Event], Iterator[str]], conversation: Conversation, stop: threading.Event
) -> Iterator[tuple[str, Conversation]]:
    """Run one engine turn that mutates `conversation`; yield (status, conversation) after each step."""
    for status in run(stop):
        yield status, conversation
