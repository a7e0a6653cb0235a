"""The draft a user watches while N candidates are written: how often it is dropped at the end, and the turn time,
with the watched draft stopped like the others (`watched_grace = None`) and with its grace (the default).

    PYTHONPATH=. python bench/watched.py [--llm SPEC] [--out bench/results/watched-draft-<date>.json]

Live: each of bench/prune.py's 8 held-out prompts (4 zh, 4 en) is a first turn through ChatEngine.respond as the
page runs it (`watched=True`), app defaults (N = 4, pruning on), the same seed in both arms, the arms' order
alternating from prompt to prompt (side by side in one run). Offline: the policy replayed on the labelled pools of
four (bench/prune.py's replay, the first row watched); the shown reply is the watched draft, or where it was ended
the first row not ended (StreamedDraft.follow), unless another candidate has fewer defects (`_streamed_first`);
its label's mean per language, how often the watched draft was swapped, and the steps and tokens decoded.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("prune_bench", ROOT / "prune.py")
PRUNE = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(PRUNE)
ARMS = {"stopped_like_the_others": None, "grace": "default"}


def turn(engine, seeded, text: str, seed: int) -> dict:
    seeded.seed = seed
    conversation, started, shown = engine.new_conversation(), time.perf_counter(), []
    for _ in engine.respond(conversation, text, watched=True):
        shown.append(conversation.turns[-1].chosen)
    reply = conversation.turns[-1]
    return dict(
        seconds=round(time.perf_counter() - started, 2), dropped="dropped" in (reply.notice or ""),
        notice=reply.notice, shown=reply.reply, ended=[c.ended for c in reply.candidates],
        chars=[len(c.text) for c in reply.candidates], load=round(os.getloadavg()[0], 2),
    )  # fmt: skip


def offline() -> dict:
    """Both arms replayed on the labelled pools: mean label of the shown reply, swaps, steps and tokens."""
    from interactive_format.engine.pruning import PruneOptions
    from interactive_format.ranking import defects

    def shown(pool: dict, ended: dict[int, str], decoded: list[int]) -> tuple[int, bool]:
        cands = pool["candidates"]
        texts = [PRUNE.prefix(c, decoded[i]).text if i in ended else c["text"] for i, c in enumerate(cands)]
        flaws = [len(defects.find(t, pool["context"], i not in ended and cands[i]["finished"])) + (i in ended)
                 for i, t in enumerate(texts)]  # fmt: skip
        watched = 0 if 0 not in ended else next(i for i in range(len(cands)) if i not in ended)
        best = min(range(len(cands)), key=lambda i: flaws[i])
        return (watched if flaws[watched] <= flaws[best] else best), watched != 0

    rows = {arm: [] for arm in ARMS}
    for pool in PRUNE.pools():
        for arm, grace in ARMS.items():
            options = PruneOptions() if grace == "default" else PruneOptions(watched_grace=grace)
            ended, decoded = PRUNE.replay(pool, options, None, watched=0)
            pick, swapped = shown(pool, ended, decoded)
            rows[arm].append(dict(lang=pool["lang"], label=pool["candidates"][pick]["label"], swapped=swapped,
                                  steps=max(decoded), tokens=sum(decoded)))  # fmt: skip
    table = {}
    for lang in ("zh", "en"):
        for arm in ARMS:
            rs = [r for r in rows[arm] if r["lang"] == lang]
            table[f"{lang}/{arm}"] = dict(
                pools=len(rs), mean_label=round(statistics.mean(r["label"] for r in rs), 3),
                swapped=sum(r["swapped"] for r in rs), mean_steps=round(statistics.mean(r["steps"] for r in rs), 1),
                mean_tokens=round(statistics.mean(r["tokens"] for r in rs), 1),
            )  # fmt: skip
    print(json.dumps(table, indent=1))
    return table


def main() -> None:
    from interactive_format.config import AppConfig, ModelsConfig
    from interactive_format.engine.chat import ChatEngine
    from interactive_format.llm.backends import load_generator

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llm", default=ModelsConfig().llm)
    p.add_argument("--out", default=f"bench/results/watched-draft-{time.strftime('%Y-%m-%d')}.json")
    p.add_argument("--offline-only", action="store_true", help="only the replay on the labelled pools")
    args = p.parse_args()
    replayed = offline()
    if args.offline_only:
        return
    config = AppConfig(models=ModelsConfig(llm=args.llm))
    generator = load_generator(config.models, "cpu")
    generator.warm_up((1, 4))
    seeded = PRUNE.Seeded(generator)
    engine = ChatEngine(config, seeded, None, None, PRUNE.load_reranker())
    default = engine.prune
    options = {arm: default if grace == "default" else dataclasses.replace(default, watched_grace=grace)
               for arm, grace in ARMS.items()}  # fmt: skip
    engine.prune = options["grace"]
    turn(engine, seeded, "Hi!", 0)  # untimed: D and the slots warm
    rows = []
    for i, (lang, text) in enumerate(PRUNE.PROMPTS):
        row = {"lang": lang, "prompt": text, "seed": 100 + 10 * i}
        for arm in list(ARMS)[:: 1 if i % 2 == 0 else -1]:
            engine.prune = options[arm]
            row[arm] = turn(engine, seeded, text, row["seed"])
        rows.append(row)
        print(lang, {arm: (row[arm]["seconds"], row[arm]["dropped"]) for arm in ARMS}, flush=True)
    generator.close()
    summary = {
        arm: dict(
            median_s=statistics.median(r[arm]["seconds"] for r in rows),
            mean_s=round(statistics.mean(r[arm]["seconds"] for r in rows), 2),
            dropped=sum(r[arm]["dropped"] for r in rows),
            turns=len(rows),
        )
        for arm in ARMS
    }
    result = dict(made_by="PYTHONPATH=. python bench/watched.py", date=time.strftime("%Y-%m-%d"), llm=args.llm,
                  options={arm: dataclasses.asdict(o) for arm, o in options.items()}, summary=summary,
                  offline=replayed, turns=rows)  # fmt: skip
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
