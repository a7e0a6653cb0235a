"""Real human chats as (context, next human turn) examples, and G's replies to the same contexts.

The real side of the GAN comes from `chitchat-dataset` (7,168 human–human chats, MIT).
Splits are made by conversation, never by turn, so no chat leaks from train into test.
G's sampled replies are cached on disk (JSON lines, one per context) so re-runs, resumed
runs and `evaluate` never sample the same context twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from ..dialogue import context_text

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Example:
    """The last k turns of a human chat and the human's next turn."""

    id: str  # "<conversation id>:<index of the reply turn>"
    conversation: str
    context: tuple[str, ...]  # oldest first; the last one is the turn being answered
    reply: str

    def messages(self, system_prompt: str = "") -> list[dict]:
        """The context as chat messages, with the turn being answered as the user's."""
        n = len(self.context)
        roles = ["user" if (n - 1 - i) % 2 == 0 else "assistant" for i in range(n)]
        msgs = [{"role": r, "content": t} for r, t in zip(roles, self.context)]
        return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + msgs

    @property
    def context_text(self) -> str:
        """What D reads as context: the same "role: text" lines the app gives it."""
        return context_text(self.messages())


def dataset_path() -> Path:
    """dataset.json inside the installed `chitchat-dataset` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("chitchat_dataset")
    if spec is None or not spec.origin:
        raise FileNotFoundError("The chitchat dataset is not installed: pip install chitchat-dataset==0.9.0")
    return Path(spec.origin).parent / "dataset.json"


@lru_cache(maxsize=2)
def load_conversations(path: Path | None = None, min_turns: int = 2) -> dict[str, list[str]]:
    """Conversation id -> turns (consecutive messages of one speaker joined), chats with ≥ min_turns."""
    raw = json.loads(Path(path or dataset_path()).read_text())
    out = {}
    for cid, conv in raw.items():
        turns = [" ".join(u["text"].strip() for u in group).strip() for group in conv["messages"]]
        if len(turns) >= min_turns and all(turns):
            out[cid] = turns
    return out


def split_ids(ids: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, list[str]]:
    """Shuffle conversation ids (seeded) and cut them into train/val/test by the fractions."""
    ids = sorted(ids)
    random.Random(seed).shuffle(ids)
    a = round(len(ids) * fractions[0])
    b = a + round(len(ids) * fractions[1])
    return {"train": ids[:a], "val": ids[a:b], "test": ids[b:]}


def make_examples(
    conversations: dict[str, list[str]], ids: list[str], context_turns: int, limit: int, seed: int
) -> list[Example]:
    """`limit` examples: one per conversation (a seeded random reply turn) for the first `limit` ids.

    When the split has fewer conversations than `limit`, further passes take other reply turns
    of the same chats (each pass seeded on its own, so the first pass never changes).
    """
    rng = random.Random(seed)
    picks = [(cid, rng.randrange(1, len(conversations[cid]))) for cid in ids[:limit]]
    used = set(picks)
    for extra in range(1, 1000):
        if len(picks) >= limit:
            break
        rng = random.Random(seed * 1000 + extra)
        before = len(picks)
        for cid in ids:
            free = [t for t in range(1, len(conversations[cid])) if (cid, t) not in used]
            if free and len(picks) < limit:
                picks.append((cid, rng.choice(free)))
                used.add(picks[-1])
        if len(picks) == before:  # every turn of every chat is taken
            break
    out = []
    for cid, t in picks:
        turns = conversations[cid]
        out.append(Example(f"{cid}:{t}", cid, tuple(turns[max(0, t - context_turns) : t]), turns[t]))
    return out


def other_replies(example: Example, pool: list[Example], k: int, rng: random.Random) -> list[str]:
    """k human replies from other conversations: distractors for hits@1 and random negatives."""
    out: list[str] = []
    while len(out) < k:
        other = pool[rng.randrange(len(pool))]
        if other.conversation != example.conversation:
            out.append(other.reply)
    return out


@dataclass(frozen=True)
class SampledReply:
    text: str
    j: float  # mean token log-prob under G
    finished: bool  # False when cut by the token limit


class SampleCache:
    """G's replies per example id, appended as JSON lines to a file named by what made them."""

    def __init__(self, directory: Path, key: dict) -> None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        self.path = Path(directory) / f"samples-{digest}.jsonl"
        self.key = key
        self.replies: dict[str, list[SampledReply]] = {}
        self.seconds = 0.0  # sampling time spent on what the cache holds
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a killed run: sample that context again
                continue
            if "id" in row:
                self.replies[row["id"]] = [SampledReply(**r) for r in row["replies"]]
            self.seconds += row.get("seconds", 0.0)

    def missing(self, examples: list[Example], n: int) -> list[Example]:
        return [e for e in examples if len(self.replies.get(e.id, [])) < n]

    def add(self, rows: dict[str, list[SampledReply]], seconds: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self.path.write_text(json.dumps({"key": self.key}) + "\n")
        share = seconds / max(len(rows), 1)
        with self.path.open("a") as f:
            for eid, replies in rows.items():
                f.write(json.dumps({"id": eid, "replies": [asdict(r) for r in replies], "seconds": share}) + "\n")
        self.replies.update(rows)
        self.seconds += seconds


def sample_contexts(
    generator,
    examples: list[Example],
    n: int,
    cache: SampleCache,
    *,
    system_prompt: str,
    params,
    rows_per_call: int = 32,
    progress: Callable | None = None,
) -> dict[str, list[SampledReply]]:
    """Make sure the cache holds n replies of G for every example; return them (n each)."""
    from dataclasses import replace

    from ..llm.offline import sample_replies

    todo = cache.missing(examples, n)
    if not hasattr(generator, "model"):  # a streaming engine (llama.cpp): concurrent requests share its slots
        return _stream_contexts(generator, examples, todo, n, cache, system_prompt, params, rows_per_call, progress)
    per_call = max(1, rows_per_call // n)
    bar = progress(total=len(todo), desc=f"sampling G ×{n}", unit="ctx") if progress and todo else None
    for start in range(0, len(todo), per_call):
        chunk = todo[start : start + per_call]
        t0 = time.perf_counter()
        seeded = replace(params, n=n, seed=None if params.seed is None else params.seed + start)
        drafts = sample_replies(generator, [e.messages(system_prompt) for e in chunk], seeded)
        rows = {
            e.id: [SampledReply(d.text.strip(), d.mean_logprob if d.token_ids else -99.0, d.finished) for d in ds]
            for e, ds in zip(chunk, drafts)
        }
        cache.add(rows, time.perf_counter() - t0)
        if bar:
            bar.update(len(chunk))
    if bar:
        bar.close()
    return {e.id: cache.replies[e.id][:n] for e in examples}


def _stream_contexts(generator, examples, todo, n, cache, system_prompt, params, rows_per_call, progress):
    """sample_contexts for a `Generator` that only streams: one request of n candidates per example, up to
    rows_per_call // n requests at once (llama.cpp decodes them in one batch), each seeded by its position."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    def one(k: int) -> tuple[Example, list[SampledReply], float]:
        e, t0 = todo[k], time.perf_counter()
        seeded = replace(params, n=n, seed=None if params.seed is None else params.seed + k)
        sample = None
        for sample in generator.stream(e.messages(system_prompt), seeded, threading.Event()):
            pass
        replies = [
            SampledReply(d.text.strip(), d.mean_logprob if d.token_ids else -99.0, d.finished) for d in sample.drafts
        ]
        return e, replies, time.perf_counter() - t0

    bar = progress(total=len(todo), desc=f"sampling G ×{n}", unit="ctx") if progress and todo else None
    workers = max(1, rows_per_call // n)
    with ThreadPoolExecutor(workers) as pool:
        for e, replies, seconds in pool.map(one, range(len(todo))):
            cache.add({e.id: replies}, seconds / workers)
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    return {e.id: cache.replies[e.id][:n] for e in examples}
