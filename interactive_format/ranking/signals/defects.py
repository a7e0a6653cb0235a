"""defects: minus the number of defects the pure checks find (loop, wrong language, cut off, echo, empty)."""

from __future__ import annotations

from .. import defects


class Defects:
    name, cost, alone = "defects", "free", True

    def score(self, context, candidates) -> list[float]:
        return [float(-len(defects.find(c.text, context.text, c.finished))) for c in candidates]


SIGNAL = Defects()
