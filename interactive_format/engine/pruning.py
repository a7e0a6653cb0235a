"""Best-of-N at a lower cost: end candidates while they are sampled, once they are unlikely to be shown.

A turn lasts as long as its longest candidate, and on a CPU every candidate still decoding slows the
others (four rows cost about three times one). `Pruner` is the policy the chat engine consults with each
snapshot of the drafts; it answers which rows to end now and why, and the engine stops decoding them:

- **defects**: a draft whose prefix has a defect that more text cannot undo (a loop, the wrong
  language; defects.py) is ended, "pruned at 24 tokens: loop";
- **weak starts** (Speculative Rejection, Sun et al. 2024; opt-in, `WEAK_STARTS`): when the running drafts
  reach 8, 24 and 48 tokens, those whose prefix the reranker scores lowest are ended until 3, 2 and then 1
  are left, "pruned at 24 tokens: weaker start" (clean finished candidates count among those kept);
- **enough**: once 2 candidates have finished clean (no defect at all) and every draft still running is
  already longer than the longest of them, the rest are ended, "stopped: 2 candidates had finished" —
  the personas ask for brief replies, and a longer one mostly ends cut off at the token limit.

An ended candidate stays with its text so far and the reason (`Candidate.ended`); `survivors_first`
keeps it below every candidate that ran its course. No model here: the reranker's score of a prefix is
passed in as `score`. bench/prune.py replays the labelled pools through the same object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ranking import defects
from ..dialogue import Candidate
from ..llm.sampling import Draft

if TYPE_CHECKING:
    from ..ranking.ranking import Reranker

Scorer = Callable[[list[Draft]], list[float]]  # the reranker's score of each draft's text so far (higher: better)


@dataclass(frozen=True)
class PruneOptions:
    """When partial candidates are judged and ended (chosen on the labelled pools: bench/prune.py)."""

    every: int = 8  # look for defects in a running draft each time it has grown by this many tokens
    min_tokens: int = 16  # and only once it has this many (a shorter prefix says too little)
    prune: tuple[str, ...] = ("loop", "wrong_language")  # defects (defects.NAMES) that a longer text cannot undo
    # (tokens, kept): once every running draft has `tokens`, the weakest starts are pruned until `kept` are left.
    # Off by default: replayed on the labelled pools it halves the tokens but lowers the shown reply's label
    # (−0.15 zh, −0.09 en on 100 pools each); defects and `enough` alone keep it (−0.06 / +0.01). WEAK_STARTS opts in.
    schedule: tuple[tuple[int, int], ...] = ()
    enough: int = 2  # clean finished candidates after which the longer running ones are stopped (at most N - 1)
    keep: int = 1  # never prune below this many candidates (finished or running)
    # The draft someone watches being written (Pruner.watched) is not stopped by `enough` until it is this many
    # times longer than the longest clean finished candidate: it was mostly a few tokens from its end, and
    # stopping it swapped the text read for 15-30 s for another reply at the last moment (bench/watched.py).
    # None: the watched draft is stopped like the others.
    watched_grace: float | None = 1.5


WEAK_STARTS = ((8, 3), (24, 2), (48, 1))  # the schedule bench/prune.py tried (Speculative Rejection's shape)
PRUNED = "pruned at {tokens} tokens: {why}"
WEAKER = "weaker start"


def stopped(k: int) -> str:
    """The reason of a candidate stopped because `k` others had finished."""
    return f"stopped: {k} candidate{'s' if k != 1 else ''} had finished"


class Pruner:
    """The policy for one turn: `decide(drafts, ended)` -> {row: why} for the rows to end now.

    `score` rates prefixes for the schedule (None: no schedule, defects and `enough` only).
    """

    def __init__(self, context: str, limit: int, options: PruneOptions | None = None, score: Scorer | None = None):
        self.context, self.limit, self.options, self.score = context, limit, options or PruneOptions(), score
        self._judged: dict[int, int] = {}  # row -> its length when last checked for defects (~1 ms a draft)
        self._clean: dict[int, bool] = {}  # finished row -> no defect at all
        self._stage = 0  # the next step of the schedule
        self.watched: int | None = None  # the row shown to the user as it is written (the caller keeps it current)

    def running(self, drafts: Sequence[Draft], ended: Mapping[int, str]) -> list[int]:
        """Rows still decoding: not finished, not ended, short of the token limit."""
        return [i for i, d in enumerate(drafts) if not d.finished and i not in ended and len(d.token_ids) < self.limit]

    def decide(self, drafts: Sequence[Draft], ended: Mapping[int, str]) -> dict[int, str]:
        """Rows to end now (each with its reason); `ended` are the rows already ended."""
        if len(drafts) < 2:
            return {}
        now = self._defective(drafts, ended)
        now |= self._weaker(drafts, {**ended, **now})
        return now | self._enough(drafts, {**ended, **now})

    def _defective(self, drafts: Sequence[Draft], ended: Mapping[int, str]) -> dict[int, str]:
        """Running drafts whose prefix already has a defect that more text cannot undo."""
        now: dict[int, str] = {}
        left = len(drafts) - len(ended)
        for i in self.running(drafts, ended):
            tokens = len(drafts[i].token_ids)
            if left <= self.options.keep or tokens < self.options.min_tokens:
                continue
            if tokens - self._judged.get(i, 0) < self.options.every:
                continue
            self._judged[i] = tokens
            found = [d.name for d in defects.find(drafts[i].text, self.context, True) if d.name in self.options.prune]
            if found:
                now[i] = PRUNED.format(tokens=tokens, why=defects.LABELS.get(found[0], found[0]))
                left -= 1
        return now

    def _weaker(self, drafts: Sequence[Draft], ended: Mapping[int, str]) -> dict[int, str]:
        """At each step of the schedule, the running drafts with the lowest score beyond the `kept` best."""
        schedule, running = self.options.schedule, self.running(drafts, ended)
        if self.score is None or self._stage >= len(schedule) or not running:
            return {}
        tokens, kept = schedule[self._stage]
        if any(len(drafts[i].token_ids) < tokens for i in running):
            return {}
        self._stage += 1
        clean = [i for i in self._finished(drafts, ended) if self._is_clean(i, drafts[i])]
        room = max(kept - len(clean), 0 if clean else 1, self.options.keep - len(drafts) + len(ended) + len(running))
        if len(running) <= room:
            return {}
        scores = self.score([drafts[i] for i in running])
        weakest = sorted(range(len(running)), key=lambda k: scores[k], reverse=True)[room:]
        return {running[k]: PRUNED.format(tokens=len(drafts[running[k]].token_ids), why=WEAKER) for k in weakest}

    def _enough(self, drafts: Sequence[Draft], ended: Mapping[int, str]) -> dict[int, str]:
        """All running drafts, once enough candidates finished clean and each running one is longer than them;
        the watched one only once it is `watched_grace` times longer."""
        running = self.running(drafts, ended)
        clean = [i for i in self._finished(drafts, ended) if self._is_clean(i, drafts[i])]
        if not running or len(clean) < min(self.options.enough, len(drafts) - 1):
            return {}
        longest = max(len(drafts[i].token_ids) for i in clean)
        grace = self.options.watched_grace
        watched = self.watched if grace is not None else None
        if any(len(drafts[i].token_ids) <= longest for i in running if i != watched):
            return {}
        stop = {i: stopped(len(clean)) for i in running}
        if watched in stop and len(drafts[watched].token_ids) <= grace * longest:
            del stop[watched]  # the draft being read may end a little after the others
        return stop

    @staticmethod
    def _finished(drafts: Sequence[Draft], ended: Mapping[int, str]) -> list[int]:
        return [i for i, d in enumerate(drafts) if d.finished and i not in ended]

    def _is_clean(self, row: int, draft: Draft) -> bool:
        if row not in self._clean:
            self._clean[row] = not defects.find(draft.text, self.context, True)
        return self._clean[row]


def survivors_first(order: list[int], ended: Sequence[str]) -> list[int]:
    """The reranker's order with ended candidates (a non-empty `ended[i]`) after all that ran their course."""
    return [i for i in order if not ended[i]] + [i for i in order if ended[i]]


def reranker_scorer(reranker: Reranker, context: str) -> Scorer:
    """Scores prefixes as the reranker scores replies (λ·D + (1−λ)·J; J so far): the schedule's `score`."""

    def score(drafts: list[Draft]) -> list[float]:
        candidates = [Candidate(d.text, d.mean_logprob) for d in drafts]
        reranker.rank(context, candidates)
        return [c.score for c in candidates]

    return score
