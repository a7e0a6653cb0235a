"""brevity: minus log(1 + UTF-8 bytes) of the candidate; the personas ask for short answers."""

from __future__ import annotations

import math


class Brevity:
    name, cost, alone = "brevity", "free", True

    def score(self, context, candidates) -> list[float]:
        return [-math.log1p(len(c.text.encode())) for c in candidates]


SIGNAL = Brevity()
