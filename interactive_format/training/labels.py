"""Reply-quality labels (bench/labels/*.jsonl): each row checked, then joined with the pool it labels.

A row scores one candidate of a project pool file 1–5 (bench/labels/README.md, RUBRIC.md). Its `source`
names the pool: `bench/rerank/samples-*.json` (prompts under "rows") or `bench/quality/replies-*.json`
(under "replies"); both hold each candidate's text, J, `finished` and token count, which the join
takes from the pool. A bad row stops the read with `LabelError` naming the file, the line and the
field. The judge's best pick and note are checked for type but never kept: nothing downstream can
make a feature of them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..config import ROOT  # the project: sources are named relative to it
from ..dialogue import Candidate, context_text

LABELS_DIR = ROOT / "bench" / "labels"
POOLS = {"bench/rerank/samples-": "rows", "bench/quality/replies-": "replies"}  # source prefix -> its prompt list
LANGS = ("zh", "en")
FIELDS = {  # every field a row must hold, and what it must be
    "source": str,
    "id": str,
    "lang": str,
    "persona": str,
    "user": str,
    "candidate": int,
    "model": str,
    "text": str,
    "label": int,
    "judge_best": bool,
    "judge_note_for_prompt": str,
}
TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


class LabelError(ValueError):
    """A labels file that cannot be used; the message names the file, the line and the field."""


@dataclass
class LabelledPrompt:
    """One prompt of one pool: its labelled candidates in sample order, each with its label."""

    source: str  # the pool file, relative to the project
    model: str  # the generator that sampled the candidates
    id: str  # the prompt's id in the pool
    lang: str  # "zh" or "en"
    system: str  # the persona's text (the system prompt the candidates answered)
    user: str  # the user's message
    indices: list[int] = field(default_factory=list)  # each candidate's index in the pool's list
    candidates: list[Candidate] = field(default_factory=list)  # text, J and finished, from the pool
    tokens: list[int] = field(default_factory=list)  # each candidate's token count, from the pool
    labels: list[int] = field(default_factory=list)  # 1–5, the judge's

    @property
    def messages(self) -> list[dict]:
        """The prompt as the generator saw it: the persona, then the user's message."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    @property
    def context(self) -> str:
        """The dialogue as `context_text` writes it (what D and the defect checks read)."""
        return context_text(self.messages)


def read_labels(path: str | Path, root: Path = ROOT) -> list[LabelledPrompt]:
    """The prompts of a labels file, each joined with its pool; LabelError on the first bad row."""
    path = Path(path)
    prompts: dict[tuple[str, str], LabelledPrompt] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"{path}: cannot be read ({e})") from e
    for number, line in enumerate(lines, 1):
        if line.strip():
            _add(prompts, _row(path, number, line), _Where(path, number), root)
    for p in prompts.values():  # sample order: "the first N" are the pool's first N
        order = sorted(range(len(p.indices)), key=p.indices.__getitem__)
        for name in ("indices", "candidates", "tokens", "labels"):
            setattr(p, name, [getattr(p, name)[k] for k in order])
    return list(prompts.values())


def read_all(directory: Path = LABELS_DIR, root: Path = ROOT) -> list[LabelledPrompt]:
    """Every labels file of `directory` (*.jsonl, by name)."""
    return [p for path in sorted(directory.glob("*.jsonl")) for p in read_labels(path, root)]


@dataclass(frozen=True)
class _Where:
    path: Path
    line: int

    def error(self, name: str, problem: str) -> LabelError:
        return LabelError(f"{self.path}, line {self.line}, '{name}': {problem}")


def _row(path: Path, number: int, line: str) -> dict:
    """One line as a checked row: every field present and of its type, the label 1–5, the language known."""
    where = _Where(path, number)
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise LabelError(f"{path}, line {number}: not JSON ({e.msg})") from None
    if not isinstance(row, dict):
        raise LabelError(f"{path}, line {number}: must be a JSON object")
    for name, kind in FIELDS.items():
        if name not in row:
            raise where.error(name, "is missing")
        value = row[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise where.error(name, f"must be {TYPE_NAMES[kind]} (got {value!r:.40})")
    if not 1 <= row["label"] <= 5:
        raise where.error("label", f"must be 1 to 5 (got {row['label']})")
    if row["lang"] not in LANGS:
        raise where.error("lang", f"must be one of {', '.join(LANGS)} (got {row['lang']!r})")
    return row


def _add(prompts: dict, row: dict, where: _Where, root: Path) -> None:
    """Join `row` with its pool (checking it labels what the pool holds) and add it to its prompt."""
    pool = _pool(row["source"], where, root)
    item = pool["prompts"].get(row["id"])
    if item is None:
        raise where.error("id", f"no prompt {row['id']!r} in {row['source']}")
    for name, pool_value in (("model", pool["model"]), ("lang", item.get("lang")), ("persona", item["system"])):
        if row[name] != pool_value:
            raise where.error(name, f"is {row[name]!r}, but {row['source']} has {pool_value!r}")
    if row["user"] != item["text"]:
        raise where.error("user", f"does not match prompt {row['id']!r} of {row['source']}")
    k, candidates = row["candidate"], item["candidates"]
    if not 0 <= k < len(candidates):
        raise where.error("candidate", f"{k} is out of range: prompt {row['id']!r} has {len(candidates)} candidates")
    if row["text"] != candidates[k]["text"]:
        raise where.error("text", f"does not match candidate {k} of prompt {row['id']!r} in {row['source']}")
    key = (row["source"], row["id"])
    if key not in prompts:
        prompts[key] = LabelledPrompt(
            row["source"], row["model"], row["id"], row["lang"], pool["systems"][item["system"]], item["text"]
        )
    p = prompts[key]
    if k in p.indices:
        raise where.error("candidate", f"candidate {k} of prompt {row['id']!r} is labelled twice")
    c = candidates[k]
    p.indices.append(k)
    p.candidates.append(Candidate(c["text"], c["j"], finished=c["finished"]))
    p.tokens.append(c["tokens"])
    p.labels.append(row["label"])


def _pool(source: str, where: _Where, root: Path) -> dict:
    """The pool `source` names: its model, persona texts and prompts by id; LabelError if it is not one."""
    kind = next((key for prefix, key in POOLS.items() if source.startswith(prefix) and source.endswith(".json")), None)
    path = root / source
    if kind is None or ".." in Path(source).parts or not path.is_file():
        known = " or ".join(f"{prefix}*.json" for prefix in POOLS)
        raise where.error("source", f"{source!r} is not a pool file of the project ({known})")
    try:
        return _read_pool(path, kind)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise where.error("source", f"{source} cannot be read as a pool ({e!r:.80})") from e


@cache
def _read_pool(path: Path, kind: str) -> dict:
    """A pool file (either format) as {"model", "systems": persona texts by key, "prompts": by id}."""
    data = json.loads(path.read_text(encoding="utf-8"))
    systems = data.get("systems", "systems")
    if isinstance(systems, str):  # bench/quality names a persona set of its prompts.json
        systems = json.loads((path.parent / "prompts.json").read_text(encoding="utf-8"))[systems]
    return {"model": data["model"], "systems": systems, "prompts": {r["id"]: r for r in data[kind]}}


def folds(prompts: list[LabelledPrompt], k: int, seed_: int = 0) -> dict[str, int]:
    """The fold of each prompt, by its user message (one message in two pools is one prompt); languages are
    dealt separately, so each fold holds about as many Chinese as English prompts."""
    out: dict[str, int] = {}
    for lang in sorted({p.lang for p in prompts}):
        users = sorted({p.user for p in prompts if p.lang == lang})
        random.Random(f"{seed_}-{lang}").shuffle(users)
        out.update({u: i % k for i, u in enumerate(users)})
    return out
