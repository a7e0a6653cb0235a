"""consensus: how much a candidate agrees with the others (mean cosine of sentence embeddings to them).

Sampled replies that say what most of the others say are more often right (self-consistency); an odd
one out is more often a wrong turn. The embeddings are e5's, the encoder under the discriminator.
"""

from __future__ import annotations


class Consensus:
    name, cost, alone = "consensus", "cheap", False

    def score(self, context, candidates) -> list[float] | None:
        encoder = context.models.encoder
        if encoder is None or len(candidates) < 2:
            return None
        vectors = encoder.embed([c.text for c in candidates], query=False)  # L2-normalised
        similar = vectors @ vectors.T
        n = len(candidates)
        return [float((similar[i].sum() - similar[i, i]) / (n - 1)) for i in range(n)]


SIGNAL = Consensus()
