"""consensus: how much a candidate agrees with the others (mean cosine of sentence embeddings to them).

Sampled replies that say what most of the others say are more often right (self-consistency); an odd
one out is more often a wrong turn. The embeddings are e5's, of the reply's first bytes as D reads them
(discriminator.reply_head), so with D loaded they are already in the encoder's cache: no extra cost.
"""

from __future__ import annotations


class Consensus:
    name, cost, alone = "consensus", "cheap", False

    def score(self, context, candidates) -> list[float] | None:
        # imported here: discriminator.py imports the ranking, which imports this module
        from ..discriminator import REPLY_BYTES, reply_head

        encoder = context.models.encoder
        if encoder is None or len(candidates) < 2:
            return None
        limit = getattr(context.models.discriminator, "reply_bytes", REPLY_BYTES)
        vectors = encoder.embed([reply_head(c.text, limit) for c in candidates], query=False)
        similar = vectors @ vectors.T  # the embeddings are L2-normalised
        n = len(candidates)
        return [float((similar[i].sum() - similar[i, i]) / (n - 1)) for i in range(n)]


SIGNAL = Consensus()
