"""j: the generator's mean token log-prob of the candidate (NaN from a server that sends none)."""

from __future__ import annotations


class J:
    name, cost, alone = "j", "free", True

    def score(self, context, candidates) -> list[float]:
        return [c.j for c in candidates]


SIGNAL = J()
