"""Early stop and pruning of candidates (pruning.py), measured twice: offline on the labelled pools, live side by side.

    python bench/prune.py offline                 # the policy replayed on the labelled pools (seconds)
    flock -x /tmp/cpu.lock python bench/prune.py live --llm embedded:qwen2.5-coder-0.5b,embedded:qwen2.5-coder-1.5b

**offline**: every labelled pool of 4 candidates (bench/labels, read with labels.read_all: the 0.5B pool
at T 0.7 as two pools of 4 per prompt, candidates 0-3 and 4-7, and the 0.5B and 1.5B pools of
bench/quality) is replayed token step by token step: at step t every candidate has min(t, its tokens)
tokens, and its text is the first round(t / tokens × characters) characters of the full text (a token-
proportional prefix: the pools hold the text and the token count, not each token's text; J of a prefix is
taken as the whole candidate's). A candidate finishes at its last token (end of turn when the pool says
finished, else the limit). The policy sees these prefixes (and scores them with the app's own ranking) and
ends rows; the shown reply is the app's ranking (assets/ranking.json, the shipped D) over the four with the
ended ones as they were ended (their prefix, unfinished) and ranked last, against the same ranking over the
four full candidates. The judge's label of the shown reply is compared (mean per language), and the
tokens decoded.

**live**: eight prompts (four Chinese, four English, none from the labelled pools) and a follow-up question
in the same conversation, through the app's ChatEngine.respond with its default settings and reranker,
per model: the arms of `ARMS` (N = 1, N = 4 as before, N = 4 with the policy, …) one after another per
prompt and turn, each in its own conversation, with the same seed (same load; llama.cpp with the app's threads).

Writes bench/results/prune-cpu2-<date>.json (both parts; `live` keeps the `offline` part of an earlier
file of the same day and the reverse).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import threading
import time
from pathlib import Path

from interactive_format.dialogue import Candidate
from interactive_format.ranking.ranking import Reranker
from interactive_format.training.labels import read_all
from interactive_format.engine.pruning import WEAK_STARTS, PruneOptions, Pruner, reranker_scorer, survivors_first
from interactive_format.llm.sampling import Draft

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LIMIT = 128
N = 4
OFFLINE_HOW = (
    "Labelled pools of 4 (bench/labels via labels.read_all); each replayed token step by token step, a candidate's "
    "prefix after t tokens = the first round(t/tokens x chars) characters (J of a prefix: the whole candidate's); "
    "shown = the app's Reranker (assets/ranking.json, shipped D) over the 4 with the ended ones as ended (prefix, "
    "unfinished) and last, against it over the 4 full candidates. label_without/with: mean judge label of the "
    "shown reply; tokens/steps_with_share: tokens decoded (all candidates) and the longest candidate's tokens, "
    "with the policy / without."
)


# --- offline ---------------------------------------------------------------------------------------


def pools() -> list[dict]:
    """Pools of N labelled candidates: {source, id, lang, context, candidates: [{text, j, finished, tokens, label}]}."""
    out = []
    for p in read_all():
        cands = [
            {"text": c.text, "j": c.j, "finished": c.finished, "tokens": k, "label": label}
            for c, k, label in zip(p.candidates, p.tokens, p.labels)
        ]
        for start in range(0, len(cands) - N + 1, N):
            out.append(dict(source=p.source, id=p.id, lang=p.lang, context=p.context, candidates=cands[start : start + N]))
    return out


def prefix(c: dict, tokens: int) -> Draft:
    """The candidate after `tokens` tokens: a token-proportional share of its characters."""
    n = min(tokens, c["tokens"])
    text = c["text"][: round(len(c["text"]) * n / max(c["tokens"], 1))]
    return Draft(text, [0] * n, c["j"] * n, finished=c["finished"] and n >= c["tokens"])


def replay(pool: dict, options: PruneOptions, score, watched: int | None = None) -> tuple[dict[int, str], list[int]]:
    """The policy over the pool's candidates token step by token step: (ended rows with why, tokens decoded per row).
    `watched`: the row a user reads as it is written (Pruner.watched)."""
    cands, ended, stopped_at = pool["candidates"], {}, {}
    pruner = Pruner(pool["context"], LIMIT, options, score and (lambda drafts: score(pool["context"], drafts)))
    pruner.watched = watched
    for step in range(1, max(c["tokens"] for c in cands) + 1):
        drafts = [prefix(c, stopped_at.get(i, step)) for i, c in enumerate(cands)]
        for row, why in pruner.decide(drafts, ended).items():
            ended[row], stopped_at[row] = why, step
        if not pruner.running(drafts, ended):
            break
    return ended, [min(c["tokens"], stopped_at.get(i, c["tokens"])) for i, c in enumerate(cands)]


class PrefixScores:
    """The app's scorer of prefixes (pruning.reranker_scorer), remembered by the prefixes it was asked about (the
    ranking standardises each signal over the candidates it is given, so a score depends on the whole set)."""

    def __init__(self, reranker: Reranker) -> None:
        self.reranker, self.seen = reranker, {}

    def __call__(self, context: str, drafts: list[Draft]) -> list[float]:
        key = (context, *((d.text, d.mean_logprob, d.finished) for d in drafts))
        if key not in self.seen:
            self.seen[key] = reranker_scorer(self.reranker, context)(drafts)
        return self.seen[key]


def shown(pool: dict, reranker: Reranker, ended: dict[int, str], decoded: list[int]) -> int:
    """The app's pick: its ranking of the candidates, each ended one as it was ended and ranked last."""
    cands = []
    for i, c in enumerate(pool["candidates"]):
        d = prefix(c, decoded[i]) if i in ended else Draft(c["text"], [], 0.0, c["finished"])
        cands.append(Candidate(d.text, c["j"], finished=d.finished, ended=ended.get(i, "")))
    order = reranker.rank(pool["context"], cands)
    return survivors_first(order, [c.ended for c in cands])[0]


def offline(options: PruneOptions, shown_before: list[tuple[dict, int]], reranker: Reranker, score) -> dict:
    """Mean label of the shown reply with and without the policy, tokens decoded, per language and pool set."""
    rows = []
    for pool, base in shown_before:
        ended, decoded = replay(pool, options, score)
        pruned = shown(pool, reranker, ended, decoded)
        full = [c["tokens"] for c in pool["candidates"]]
        rows.append(
            dict(
                source=Path(pool["source"]).stem, id=pool["id"], lang=pool["lang"],
                label_without=pool["candidates"][base]["label"], label_with=pool["candidates"][pruned]["label"],
                tokens_without=sum(full), tokens_with=sum(decoded), steps_without=max(full), steps_with=max(decoded),
                ended={str(k): v for k, v in sorted(ended.items())},
            )
        )  # fmt: skip
    table = {}
    for lang in ("zh", "en", "all"):
        for source in sorted({r["source"] for r in rows}) + ["all"]:
            rs = [r for r in rows if lang in (r["lang"], "all") and source in (r["source"], "all")]
            table[f"{lang}/{source}"] = summary(rs)
    return {"options": dataclasses.asdict(options), "table": table, "pools": rows}


def summary(rows: list[dict]) -> dict:
    """Means over pools: shown label without / with the policy, tokens and steps (the longest candidate) decoded."""

    def mean(key: str) -> float:
        return round(statistics.mean(r[key] for r in rows), 3)

    def total(key: str) -> int:
        return sum(r[key] for r in rows)

    return dict(
        pools=len(rows), label_without=mean("label_without"), label_with=mean("label_with"),
        changed=sum(r["label_without"] != r["label_with"] for r in rows),
        tokens_with_share=round(total("tokens_with") / total("tokens_without"), 3),
        steps_with_share=round(total("steps_with") / total("steps_without"), 3),
        pruned=sum("pruned" in v for r in rows for v in r["ended"].values()),
        stopped=sum("stopped" in v for r in rows for v in r["ended"].values()),
    )  # fmt: skip


def load_reranker() -> Reranker:
    """The app's reranker as engines.build_engine makes it: the shipped D, its λ and the fitted ranking."""
    from interactive_format.config import ModelsConfig
    from interactive_format.ranking.discriminator import load_discriminator
    from interactive_format.engine.engines import load_app_ranking

    m = ModelsConfig()
    d = load_discriminator(m.discriminator, "cpu", m.discriminator_encoder)
    return Reranker(d, float(d.meta.get("lam", 0.5)) if d else 0.5, ranking=load_app_ranking(m.ranking))


# --- live ---------------------------------------------------------------------------------------------

# Not in the labelled pools (bench/rerank/prompts.json, bench/quality/prompts.json): everyday questions a user
# of the default persona asks, four in each language.
PROMPTS = [
    ("zh", "我家的猫最近总是半夜叫，这是为什么？"),
    ("zh", "周末想在家做一顿简单的晚饭，有什么推荐的菜？"),
    ("zh", "怎么才能让手机的电池用得更久一点？"),
    ("zh", "我明天要面试，紧张得睡不着，该怎么办？"),
    ("en", "My houseplant's leaves are turning yellow. What should I do?"),
    ("en", "What is a good way to start learning to play the guitar?"),
    ("en", "How can I keep my bread from going stale so quickly?"),
    ("en", "I have a job interview tomorrow and feel nervous. Any advice?"),
]
# The arms of one prompt, run one after another: N = 1; N = 4 as the app ran before (one request, no policy);
# the policy with its defaults, one request per candidate (an ended one stops decoding); the same policy on one
# request (LlamaCppOptions.split False: an ended candidate decodes on, unseen, until every candidate is done, and
# no prompt is evaluated again); the policy with the weak-start schedule (WEAK_STARTS, opt-in).
ARMS = {
    "n1": (1, None, True),
    "n4_before": (4, None, True),
    "n4_policy": (4, PruneOptions(), True),
    "n4_policy_one_request": (4, PruneOptions(), False),
    "n4_weak_starts": (4, PruneOptions(schedule=WEAK_STARTS), True),
}


class Seeded:
    """The app's generator with a fixed seed per turn (the same for every arm) and the last sample kept."""

    def __init__(self, generator) -> None:
        self.generator, self.name, self.seed, self.last = generator, generator.name, 0, None
        self.ends_rows = getattr(generator, "ends_rows", False)

    def count_tokens(self, messages: list[dict]) -> int:
        return self.generator.count_tokens(messages)

    def split(self, split: bool) -> None:
        """llama.cpp: one request per candidate (True) or one for all (False) when candidates may be ended."""
        if hasattr(self.generator, "options"):
            self.generator.options = dataclasses.replace(self.generator.options, split=split)

    def stream(self, messages: list[dict], params, stop: threading.Event, **kw):
        for sample in self.generator.stream(messages, dataclasses.replace(params, seed=self.seed), stop, **kw):
            self.last = sample
            yield sample


FOLLOW_UP = {"zh": "谢谢！能再具体说说第一点吗？", "en": "Thanks! Can you say more about the first point?"}


def live_turn(engine, seeded: Seeded, conversation, text: str, arm: str, seed: int) -> dict:
    """One turn through ChatEngine.respond with the app's default settings (N set by the arm)."""
    n, engine.prune, split = ARMS[arm]
    seeded.split(split)
    seeded.seed = seed
    settings = dataclasses.replace(engine.default_settings(), num_candidates=n)
    started = time.perf_counter()
    for _ in engine.respond(conversation, text, settings=settings):
        pass
    seconds = time.perf_counter() - started
    reply = conversation.turns[-1]
    tokens = [len(d.token_ids) for d in seeded.last.drafts]
    decoded = sum(tokens)
    if not split:  # an ended candidate decoded on, unseen: at most as long as the longest
        decoded = sum(max(tokens) if c.ended else k for c, k in zip(reply.candidates, tokens))
    return dict(
        seconds=round(seconds, 2), first_token_s=round(reply.meta.get("first_token_ms", 0) / 1000, 2),
        tokens=decoded, longest=max(tokens), shown=reply.reply, shown_defects=reply.candidates[reply.chosen].defects,
        ended=[c.ended for c in reply.candidates], switches=reply.meta.get("switches", []), error=reply.error,
        load=round(os.getloadavg()[0], 2),
    )  # fmt: skip


def live_model(spec: str, seeds: int, turns: int, prompts: list[tuple[str, str]]) -> dict:
    """Every prompt through every arm on one model; per prompt the arms run one after another, each arm in its own
    conversation (a second turn, when asked, follows up on that arm's own reply)."""
    from interactive_format.llm.backends import load_generator
    from interactive_format.engine.chat import ChatEngine
    from interactive_format.config import AppConfig, ModelsConfig

    config = AppConfig(models=ModelsConfig(llm=spec))
    generator = load_generator(config.models, "cpu")
    generator.warm_up((1, 4))
    seeded = Seeded(generator)
    engine = ChatEngine(config, seeded, None, None, load_reranker())
    warm = list(ARMS)[-1]  # untimed: D and the slots warm (an arm that runs: --arms may leave n4_policy out)
    live_turn(engine, seeded, engine.new_conversation(), "Hi!", warm, 0)
    rows = []
    for i, (lang, text) in enumerate(prompts):
        for seed in range(seeds):
            chats = {arm: engine.new_conversation() for arm in ARMS}
            for turn in range(turns):
                row = {"lang": lang, "prompt": text, "turn": turn + 1, "seed": 100 + 10 * i + seed + 1000 * turn}
                message = text if turn == 0 else FOLLOW_UP[lang]
                for arm in ARMS:
                    row[arm] = live_turn(engine, seeded, chats[arm], message, arm, row["seed"])
                rows.append(row)
                print(spec, lang, turn + 1, {arm: row[arm]["seconds"] for arm in ARMS}, flush=True)
    generator.close()
    summary = {f"turn{t}": live_summary([r for r in rows if r["turn"] == t]) for t in range(1, turns + 1)}
    return {"model": spec, "turns": rows, "summary": summary}


def live_summary(rows: list[dict]) -> dict:
    """Medians of turn seconds per arm, and each N = 4 arm against N = 1 (median of the per-prompt ratios)."""
    out = {}
    for lang in ("zh", "en", "all"):
        rs = [r for r in rows if lang in (r["lang"], "all")]
        part = {arm: {"median_s": round(statistics.median(r[arm]["seconds"] for r in rs), 2),
                      "tokens": sum(r[arm]["tokens"] for r in rs)} for arm in ARMS}  # fmt: skip
        for arm in [a for a in ARMS if a != "n1"]:
            part[arm]["vs_n1"] = round(statistics.median(r[arm]["seconds"] / r["n1"]["seconds"] for r in rs), 2)
        for arm in [a for a in ARMS if ARMS[a][1] is not None and "n4_before" in ARMS]:
            part[arm]["tokens_vs_before"] = round(part[arm]["tokens"] / part["n4_before"]["tokens"], 3)
        part["shown_defective"] = {arm: sum(bool(r[arm]["shown_defects"]) for r in rs) for arm in ARMS}
        out[lang] = part
    return out


# --- output ------------------------------------------------------------------------------------------


def result_path() -> Path:
    return RESULTS / f"prune-cpu2-{datetime.date.today().isoformat()}.json"


def write(part: str, value: dict) -> Path:
    path = result_path()
    data = json.loads(path.read_text()) if path.exists() else {}
    data[part] = value
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return path


def print_table(table: dict) -> None:
    print(f"{'set':44} pools  without  with  changed  tokens  steps  pruned stopped")
    for key, s in table.items():
        print(
            f"{key:44} {s['pools']:5} {s['label_without']:8.2f} {s['label_with']:5.2f} {s['changed']:8} "
            f"{s['tokens_with_share']:7.0%} {s['steps_with_share']:6.0%} {s['pruned']:6} {s['stopped']:7}"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("part", choices=["offline", "live"])
    p.add_argument("--options", default="{}", help="JSON: PruneOptions fields to try, or a list of such (offline)")
    p.add_argument("--llm", default="embedded:qwen2.5-coder-0.5b,embedded:qwen2.5-coder-1.5b", help="live: models")
    p.add_argument("--seeds", type=int, default=1, help="live: seeds per prompt")
    p.add_argument("--turns", type=int, default=2, help="live: turns per conversation (2: a follow-up question)")
    p.add_argument("--prompts", type=int, default=len(PROMPTS), help="live: the first k prompts of each language")
    p.add_argument("--arms", default=",".join(ARMS), help="live: which arms of ARMS to run (n1 always runs)")
    args = p.parse_args()
    for arm in [a for a in ARMS if a != "n1" and a not in args.arms.split(",")]:
        del ARMS[arm]
    if args.part == "live":
        load = [round(x, 2) for x in os.getloadavg()]
        prompts = [p for lang in ("zh", "en") for p in [q for q in PROMPTS if q[0] == lang][: args.prompts]]
        models = [live_model(spec, args.seeds, args.turns, prompts) for spec in args.llm.split(",")]
        for m in models:
            for turn, summary in m["summary"].items():
                print(m["model"], turn, json.dumps(summary["all"]))
        from interactive_format.models.device import llm_pinned_cpus, llm_threads
        from interactive_format.settings.load import load_config

        threads = llm_threads(load_config().models.llm_threads)
        how = ("ChatEngine.respond, app defaults (persona, T 0.7, top-p 0.9, 128 tokens, shipped D), "
               f"llama.cpp {threads} thread(s){' pinned' if llm_pinned_cpus(threads) else ''}")
        result = {"how": how, "load_start": load, "load_end": [round(x, 2) for x in os.getloadavg()], "models": models}
        print("->", write("live", result))
    if args.part == "offline":
        reranker = load_reranker()
        every = pools()
        shown_before = [(pool, shown(pool, reranker, {}, [c["tokens"] for c in pool["candidates"]])) for pool in every]
        score = PrefixScores(reranker)
        tries = json.loads(args.options)
        runs = []
        for fields in tries if isinstance(tries, list) else [tries]:
            runs.append(offline(PruneOptions(**fields), shown_before, reranker, score))
            print(fields)
            print_table(runs[-1]["table"])
        pools_of_first = runs[0].pop("pools")
        for run in runs[1:]:
            run.pop("pools")
        print("->", write("offline", {"how": OFFLINE_HOW, "runs": runs, "pools_of_first_run": pools_of_first}))

if __name__ == "__main__":
    main()
