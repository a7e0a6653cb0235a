"""The turn knobs: what a user may change per turn, in one table.

Each knob's default, the range a turn accepts (the config's check and the clamp of API input)
and the range of its settings slider are written once here; config validation, flows, the
clamp, the sliders and the API docstrings all read `KNOBS`. No imports from the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Knob:
    name: str  # the TurnSettings field
    type: type  # int or float
    default: float
    low: float  # a turn accepts low..high (API input outside is clamped, a config outside is refused)
    high: float
    ui_low: float  # the settings slider's range and step (widened to show a configured default)
    ui_high: float
    ui_step: float
    about: str  # for the API docs: what it does

    def clamp(self, value: object) -> float:
        """`value` within [low, high] as this knob's type; the default for anything that is not a finite number."""
        try:
            x = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return self.type(self.default)
        return self.type(min(max(x, self.low), self.high) if math.isfinite(x) else self.default)

    def allows(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def range_text(self) -> str:
        """ "1 to 16": the accepted range as the docs say it."""
        return f"{self.low:g} to {self.high:g}"


KNOBS: dict[str, Knob] = {
    k.name: k
    for k in (
        Knob("num_candidates", int, 4, 1, 16, 1, 8, 1, "How many replies to sample"),
        Knob(
            "temperature",
            float,
            0.7,
            0.05,
            2.0,
            0.1,
            1.5,
            0.05,
            "Sampling temperature; higher gives more varied replies",
        ),
        Knob("max_new_tokens", int, 128, 1, 1024, 16, 512, 16, "The longest reply, in tokens"),
        Knob("lam", float, 0.5, 0.0, 1.0, 0.0, 1.0, 0.05, "λ, the discriminator's weight in the ranking score"),
    )
}
