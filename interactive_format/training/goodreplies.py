"""Good and poor replies to the bench prompts: D's real and fake examples when "real" means a good reply.

The reply-quality labels (bench/labels) decide a labelled candidate: real when labelled ≥ `real_at`, fake when
≤ `fake_at`, left out in between. An unlabelled candidate of a pool file (bench/quality/replies-*.json,
bench/rerank/samples-*.json) is real or fake by the file it is in: a stronger model's replies (the 1.5B's)
real, the generator's own samples fake. The label only decides real or fake: D reads the context's and the
reply's text alone, never a label or the judge's note.

Prompts are dealt into the labels' folds by user message (labeleval.folds, the folds `evaluate labels`
cross-validates by); a prompt of a held-out fold gives no example at all, labelled or not, so a D trained
with `hold_out` has never seen a prompt of those folds. A pool prompt with no labels is in no fold: it is
never evaluated, so every D may train on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..dialogue import context_text
from .labels import LANGS, ROOT, LabelledPrompt, folds, read_all, read_labels


class PoolError(ValueError):
    """A pool file that cannot give replies; the message names the file and the prompt."""


@dataclass(frozen=True)
class Row:
    """One (context, reply) example of D with its target and the prompt it answers."""

    context: str  # the dialogue as context_text writes it: what D reads
    reply: str
    target: float  # 1.0 real (a good reply), 0.0 fake
    user: str  # the prompt's user message: the key of its fold
    lang: str  # "zh" or "en"
    source: str  # the pool file it comes from, relative to the project


@dataclass(frozen=True)
class Selection:
    """Which replies are real and which fake, and which prompts D must never see."""

    labels: str = ""  # a labels directory (every *.jsonl) or one labels file; "" = no labelled candidates
    real_at: int = 4  # a candidate labelled this or more is real
    fake_at: int = 2  # a candidate labelled this or less is fake
    real_pools: tuple[str, ...] = ()  # pool files whose unlabelled candidates are real (a stronger model's)
    fake_pools: tuple[str, ...] = ()  # pool files whose unlabelled candidates are fake (the generator's)
    folds: int = 5  # the labels' folds by prompt, as `evaluate labels` deals them
    fold_seed: int = 0
    hold_out: tuple[int, ...] = ()  # folds whose prompts give no example

    def __post_init__(self) -> None:
        if not 1 <= self.fake_at < self.real_at <= 5:
            raise ValueError(f"labels: fake_at ({self.fake_at}) must be below real_at ({self.real_at}), both 1–5")
        if self.folds < 2 or any(not 0 <= f < self.folds for f in self.hold_out):
            raise ValueError(f"labels: hold_out {list(self.hold_out)} must name folds 0..{self.folds - 1}")


def read_prompts(labels: str, root: Path = ROOT) -> list[LabelledPrompt]:
    """The labelled prompts of a labels directory or file ("": none)."""
    if not labels:
        return []
    path = Path(labels)
    path = path if path.is_absolute() else root / path
    return read_all(path, root) if path.is_dir() else read_labels(path, root)


def fold_of(selection: Selection, prompts: list[LabelledPrompt]) -> dict[str, int]:
    """Each labelled prompt's fold, by user message (labeleval.folds)."""
    return folds(prompts, selection.folds, selection.fold_seed)


def rows(selection: Selection, root: Path = ROOT) -> list[Row]:
    """Every real and fake example the selection gives, none of a held-out fold's prompts."""
    prompts = read_prompts(selection.labels, root)
    fold = fold_of(selection, prompts)
    labelled = {(p.source, p.id, i) for p in prompts for i in p.indices}
    out = [r for p in prompts for r in labelled_rows(p, selection.real_at, selection.fake_at)]
    for paths, target in ((selection.real_pools, 1.0), (selection.fake_pools, 0.0)):
        for source in paths:
            out += pool_rows(source, target, labelled, root)
    held = set(selection.hold_out)
    return [r for r in out if fold.get(r.user) not in held]


def labelled_rows(p: LabelledPrompt, real_at: int, fake_at: int) -> list[Row]:
    """The prompt's candidates labelled ≥ real_at (real) or ≤ fake_at (fake); empty ones left out."""
    out = []
    for c, label in zip(p.candidates, p.labels):
        if c.text.strip() and (label >= real_at or label <= fake_at):
            out.append(Row(p.context, c.text, float(label >= real_at), p.user, p.lang, p.source))
    return out


def pool_rows(source: str, target: float, labelled: set[tuple[str, str, int]], root: Path = ROOT) -> list[Row]:
    """The unlabelled, non-empty candidates of a pool file, all with `target` (a labelled one goes by its label);
    PoolError naming the file and the prompt if it is not a pool."""
    out = []
    for n, prompt in enumerate(read_pool(source, root)):
        where = f"{source}, prompt {n}"
        if not isinstance(prompt, dict) or not all(isinstance(prompt.get(k), str) for k in ("id", "text", "lang")):
            raise PoolError(f"{where}: needs 'id', 'text' and 'lang' as strings")
        if prompt["lang"] not in LANGS or not isinstance(prompt.get("candidates"), list):
            raise PoolError(f"{where}: 'lang' must be zh or en and 'candidates' a list")
        context = context_text([{"role": "user", "content": prompt["text"]}])
        for i, c in enumerate(prompt["candidates"]):
            if not isinstance(c, dict) or not isinstance(c.get("text"), str):
                raise PoolError(f"{where}, candidate {i}: needs 'text' as a string")
            if c["text"].strip() and (source, prompt["id"], i) not in labelled:
                out.append(Row(context, c["text"], target, prompt["text"], prompt["lang"], source))
    return out


def read_pool(source: str, root: Path = ROOT) -> list:
    """The prompts of a pool file (under "rows" or "replies"); PoolError if it cannot be read as one."""
    try:
        data = json.loads((root / source).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PoolError(f"{source}: cannot be read as a pool ({e})") from None
    prompts = data.get("rows", data.get("replies")) if isinstance(data, dict) else None
    if not isinstance(prompts, list):
        raise PoolError(f"{source}: not a pool (no list of prompts under 'rows' or 'replies')")
    return prompts
