"""verifier: another chat model's log-likelihood of the candidate given the prompt (verifier.py).

A stronger model reading a weaker one's candidates (the 1.5B reading the 0.5B's) judges fluency and fit
with knowledge the generator lacks. It needs the chat messages (Context.messages) and a loaded verifier.
"""

from __future__ import annotations


class Verifier:
    name, cost, alone = "verifier", "model", True

    def score(self, context, candidates) -> list[float] | None:
        verifier = context.models.verifier
        if verifier is None or not context.messages:
            return None
        return verifier.score(list(context.messages), [c.text for c in candidates], [c.finished for c in candidates])


SIGNAL = Verifier()
