"""d: the trained discriminator's P(human) of the candidate given the context (none without a D)."""

from __future__ import annotations

import math


class D:
    name, cost, alone = "d", "cheap", True

    def score(self, context, candidates) -> list[float] | None:
        d = context.models.discriminator
        if d is None:
            return None
        nonempty = [i for i, c in enumerate(candidates) if c.text.strip()]
        scores = dict(zip(nonempty, d.score(context.text, [candidates[i].text for i in nonempty]) if nonempty else []))
        return [scores.get(i, math.nan) for i in range(len(candidates))]


SIGNAL = D()
