"""finished: 1 for a candidate that ended by itself, 0 for one stopped by the token limit (or stop)."""

from __future__ import annotations


class Finished:
    name, cost, alone = "finished", "free", True

    def score(self, context, candidates) -> list[float]:
        return [float(c.finished) for c in candidates]


SIGNAL = Finished()
