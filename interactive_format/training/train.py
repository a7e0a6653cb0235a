"""Adversarial training of the discriminator: python -m interactive_format.train

G is the chat LLM; D(context, reply) learns to tell the human's real next turn in a
chitchat conversation from G's sampled reply to the same context (and, optionally, from a
human reply taken from another chat, which teaches D relevance as well as style).

  1. split the chats by conversation; one (context, human reply) example per chat
  2. sample G's replies to every train/val context once (cached on disk)
  3. each epoch: D-steps (binary cross-entropy), optionally alternating with G-steps
     (REINFORCE with D's P(human) as reward, a per-context baseline and a likelihood term
     on the human reply, on a fraction of G's layers)
  4. validate: ROC-AUC, accuracy, AdverSuc, hits@1, length-only AUC; early stopping on AUC
  5. choose λ on validation with the separate judge; save the best D with its λ

Metrics go to metrics.jsonl, curves to curves.png, checkpoints to the run directory
(`--resume` continues from the last one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .chitchat import (
    SPLITS,
    Example,
    SampleCache,
    load_conversations,
    make_examples,
    other_replies,
    sample_contexts,
    split_ids,
)
from ..config import default_cache_dir
from ..errors import DEV_LOCK, MissingPackageError, require
from .gstep import g_step, g_trainable_params, judge_generator, layers, sample_params
from .judges import d_metrics, d_scores, roc_auc
from .trainrun import checkpoint, plot_curves, resume

log = logging.getLogger(__name__)

# G plays the human's chat partner, so D must learn more than "assistants write long answers".
CHAT_PARTNER = "You are chatting with a friend. Reply in one short, casual sentence."


@dataclass(frozen=True)
class TrainConfig:
    out_dir: Path = Path("runs/discriminator")  # checkpoints, metrics.jsonl, curves.png, G samples
    llm: str = "embedded:qwen2.5-coder-0.5b"  # G: any chat model spec the app accepts (the shipped D's G: the light model)
    llm_backend: str = "auto"  # "auto": llama.cpp for a GGUF model on the CPU (as the app), else transformers
    llm_threads: int = 0  # llama.cpp threads (0: the app's default, device.llm_threads)
    llm_dtype: str = "auto"  # G while sampling: "auto" = bf16 where fast (CUDA, CPUs with bf16), else fp32
    encoder: str = "embedded:e5-small"  # D's text encoder: a sentence encoder (frozen) or an HF cross-encoder
    judge_encoder: str = "embedded:minilm"  # the similarity judge that chooses λ (never D's encoder weights)
    cache_dir: Path = field(default_factory=default_cache_dir)  # converted model weights
    device: str = "auto"
    seed: int = 0
    # data
    context_turns: int = 3  # turns of history D and G see
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # by conversation
    train_contexts: int = 2000
    val_contexts: int = 300
    val_candidates: int = 4  # G replies per val context (λ is chosen on best-of-this-many)
    system_prompt: str = CHAT_PARTNER
    temperature: float = 0.7  # G's sampling, as in the app
    top_p: float = 0.9
    max_new_tokens: int = 40  # human turns are ~12 words
    random_negatives: float = 0.5  # chance per train context of an extra negative: a reply from another chat
    shuffled_negatives: float = 0.5  # chance of an extra negative: the human reply with its words shuffled
    # chance of an extra negative made from G's own reply (what a user rejects, defects.py): a loop, cut off in
    # mid-sentence, an echo of the turn it answers, or G's reply to another context. 0: off (the shipped D's run)
    defect_negatives: float = 0.0
    preferences: str = (
        ""  # comma-separated JSONL files of users' picks {"context", "chosen", "rejected"} (the app's export)
    )
    # "real" = a good reply as well as a human's (goodreplies.py): off unless `labels` or a pool is named
    labels: str = ""  # bench/labels or one of its *.jsonl: candidates labelled ≥ label_real real, ≤ label_fake fake
    label_real: int = 4
    label_fake: int = 2
    real_pools: str = ""  # comma-separated pool files whose unlabelled candidates are real (a stronger model's)
    fake_pools: str = ""  # comma-separated pool files whose unlabelled candidates are fake (G's own samples)
    label_folds: int = 5  # the labels' folds by prompt, as `evaluate labels` deals them (--folds, --fold-seed)
    label_fold_seed: int = 0
    hold_out: str = ""  # comma-separated folds whose prompts D never trains on, e.g. "2" or "2,4" ("" = none)
    quality_balance: bool = True  # repeat the rarer side of the good/poor replies so both weigh the same
    samples_dir: str = ""  # G's cached replies ("" = out_dir/samples): one cache for runs that differ in D only
    embedding_cache: str = ""  # a file of the sentence encoder's embeddings, read first and written after
    # which epoch's D is kept: "best" (val AUC, human vs G on the chats) or "last" (a quality D: the chats'
    # AUC is not what it is for, and the labels of the folds it may see are its training data)
    keep: str = "best"
    # D
    freeze_ratio: float = 0.5  # share of encoder layers (from the bottom) kept frozen; embeddings always
    max_length: int = 128  # tokens of context + reply (the oldest context is cut first)
    reply_bytes: int = 192  # an e5 D reads a reply's first this many UTF-8 bytes (0: whole; its time grows with them)
    batch_size: int = 32
    lr: float = 5e-5  # encoder layers
    head_lr: float = 1e-3
    epochs: int = 6
    patience: int = 2  # epochs without a better val AUC before stopping
    # G-step (off unless g_steps > 0)
    d_steps: int = 8  # D-steps per cycle
    g_steps: int = 0  # G-steps per cycle
    g_contexts: int = 4  # train contexts per G-step
    g_samples: int = 4  # replies per context in a G-step (their mean reward is the baseline)
    g_trainable: float = 0.1  # share of G's decoder layers (from the top) that G-steps may change
    g_lr: float = 1e-5
    g_likelihood: float = 0.5  # weight of the human reply's NLL in the G loss
    g_eval_contexts: int = 100  # val contexts sampled before/after G-steps to judge G
    rows_per_call: int = 32  # sequences per batched generate call
    lam_grid: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        checks = {
            "split": len(self.split) == 3 and all(f > 0 for f in self.split) and sum(self.split) <= 1 + 1e-9,
            "freeze_ratio": 0 <= self.freeze_ratio <= 1,
            "g_trainable": 0 < self.g_trainable <= 1,
            "random_negatives": 0 <= self.random_negatives <= 1,
            "shuffled_negatives": 0 <= self.shuffled_negatives <= 1,
            "defect_negatives": 0 <= self.defect_negatives <= 1,
            "context_turns": self.context_turns >= 1,
            "val_candidates": self.val_candidates >= 2,
            "patience": self.patience >= 1,
            "keep": self.keep in ("best", "last"),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"TrainConfig.{name} is out of range: {getattr(self, name)!r}")

    def sample_key(self) -> dict:
        """What G's cached replies depend on (one cache for all splits: example ids never collide)."""
        keys = (
            "llm",
            "llm_backend",
            "llm_dtype",
            "seed",
            "context_turns",
            "split",
            "system_prompt",
            "temperature",
            "top_p",
            "max_new_tokens",
        )
        return {k: str(getattr(self, k)) for k in keys}

    def samples_path(self) -> Path:
        return Path(self.samples_dir) if self.samples_dir else self.out_dir / "samples"

    def selection(self):
        """The good and poor replies D trains on besides the chats (goodreplies.Selection)."""
        from .goodreplies import Selection

        def items(text: str) -> tuple[str, ...]:
            return tuple(x.strip() for x in text.split(",") if x.strip())

        return Selection(
            self.labels, self.label_real, self.label_fake, items(self.real_pools), items(self.fake_pools),
            self.label_folds, self.label_fold_seed, tuple(int(f) for f in items(self.hold_out)),
        )  # fmt: skip


# ---------------------------------------------------------------- data


@dataclass
class Data:
    train: list[Example]
    val: list[Example]
    fakes: dict[str, list]  # example id -> G's SampledReply list
    sampling_seconds: float
    preferences: list[tuple[str, str, str]] = field(default_factory=list)  # (context, chosen, rejected)
    quality: list = field(default_factory=list)  # goodreplies.Row: good replies real, poor ones fake


def examples_for(cfg: TrainConfig, split: str, limit: int) -> list[Example]:
    """The split's examples: conversations split by id, one example per conversation."""
    conversations = load_conversations()
    ids = split_ids(list(conversations), cfg.split, cfg.seed)[split]
    return make_examples(conversations, ids, cfg.context_turns, limit, cfg.seed + SPLITS.index(split))


def load_generator(cfg: TrainConfig):
    """G on the configured device; fp32 whenever G-steps will update it (bf16 would lose the updates)."""
    from ..llm.generator import TransformersGenerator
    from ..models.device import resolve_device

    device = resolve_device(cfg.device)
    if not cfg.g_steps:  # sampling only: the app's own engine for this model (llama.cpp for its GGUF on the CPU)
        from ..llm.backends import backend_for
        from ..llm.backends import load_generator as app_generator
        from ..config import ModelsConfig

        models = ModelsConfig(
            llm=cfg.llm, llm_backend=cfg.llm_backend, llm_threads=cfg.llm_threads, cache_dir=cfg.cache_dir
        )
        if backend_for(models, device) == "llamacpp":
            return app_generator(models, device)
    dtype = cfg.llm_dtype
    if dtype == "auto" and cfg.g_steps:
        dtype = "float32"
    elif dtype == "auto":
        fast_bf16 = device.startswith("cuda") or torch.ops.mkldnn._is_mkldnn_bf16_supported()
        dtype = "bfloat16" if fast_bf16 else "float32"
    return TransformersGenerator.from_spec(cfg.llm, cfg.cache_dir, device, dtype)


def g_replies(cfg: TrainConfig, generator, examples: list[Example], n: int) -> tuple[dict, float]:
    """G's n replies per example from the on-disk cache, sampling what is missing; and the cache's sampling seconds."""
    cache = SampleCache(cfg.samples_path(), cfg.sample_key())
    replies = sample_contexts(
        generator,
        examples,
        n,
        cache,
        system_prompt=cfg.system_prompt,
        params=sample_params(cfg),
        rows_per_call=cfg.rows_per_call,
        progress=_bar(cfg),
    )
    return replies, cache.seconds


def prepare_data(cfg: TrainConfig, generator) -> Data:
    train = examples_for(cfg, "train", cfg.train_contexts)
    val = examples_for(cfg, "val", cfg.val_contexts)
    fakes, _ = g_replies(cfg, generator, train, 1)
    val_fakes, seconds = g_replies(cfg, generator, val, cfg.val_candidates)
    pairs = [p for path in cfg.preferences.split(",") if path.strip() for p in read_preferences(Path(path.strip()))]
    return Data(train, val, {**fakes, **val_fakes}, seconds, pairs, quality_rows(cfg))


def quality_rows(cfg: TrainConfig) -> list:
    """The good (real) and poor (fake) replies to the bench prompts of the folds D may see (goodreplies.py)."""
    from .goodreplies import rows

    selection = cfg.selection()
    if not (selection.labels or selection.real_pools or selection.fake_pools):
        return []
    found = rows(selection)
    if not found:
        raise ValueError("the labels and pools named give no good or poor reply to train on")
    return found


def samples_missing(cfg: TrainConfig) -> bool:
    """Whether G must sample: some train or val context lacks its cached replies."""
    cache = SampleCache(cfg.samples_path(), cfg.sample_key())
    train = examples_for(cfg, "train", cfg.train_contexts)
    val = examples_for(cfg, "val", cfg.val_contexts)
    return bool(cache.missing(train, 1) or cache.missing(val, cfg.val_candidates))


def read_preferences(path: Path) -> list[tuple[str, str, str]]:
    """(context, chosen, rejected) pairs from the app's preference export; ValueError names a bad line."""
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pair = (row["context"], row["chosen"], row["rejected"])
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise ValueError(f"{path}:{n}: not a preference pair {{context, chosen, rejected}} ({e})") from None
        if not all(isinstance(x, str) for x in pair) or not pair[1].strip() or not pair[2].strip():
            raise ValueError(f"{path}:{n}: context, chosen and rejected must be text, the replies non-empty")
        pairs.append(pair)
    return pairs


DEFECT_KINDS = ("loop", "cut_off", "echo", "other_context")


def defect_negative(e: Example, data: Data, kind: str, rng: random.Random) -> str | None:
    """A reply a user would reject, made from G's own reply to `e` (None when G has none to make it from).

    loop: its first words four times over; cut_off: its first half, ending mid-sentence; echo: the turn it
    answers; other_context: G's reply to another training context.
    """
    fakes = data.fakes.get(e.id) or []
    words = getattr(fakes[0], "text", fakes[0]).split() if fakes else []
    if kind == "loop" and words:
        return " ".join([" ".join(words[:6])] * 4)
    if kind == "cut_off" and len(words) >= 4:
        return " ".join(words[: len(words) // 2]).rstrip(".!?")
    if kind == "echo":
        return e.context[-1]
    if kind == "other_context" and len(data.train) > 1:
        other = data.train[rng.randrange(len(data.train))]
        replies = data.fakes.get(other.id) or []
        if other.conversation != e.conversation and replies:
            return getattr(replies[0], "text", replies[0])
    return None


def d_batches(cfg: TrainConfig, data: Data, epoch: int, extra_fakes: dict[str, list[str]] | None = None):
    """Shuffled (contexts, replies, labels) batches: real 1, G's reply 0, reply from another chat 0."""
    rng = random.Random(cfg.seed * 1000 + epoch)
    rows = []
    for e in data.train:
        rows.append((e.context_text, e.reply, 1.0))
        for fake in data.fakes[e.id][:1] + [r for r in (extra_fakes or {}).get(e.id, [])]:
            rows.append((e.context_text, getattr(fake, "text", fake), 0.0))
        if rng.random() < cfg.random_negatives:
            rows.append((e.context_text, other_replies(e, data.train, 1, rng)[0], 0.0))
        if rng.random() < cfg.shuffled_negatives and len(words := e.reply.split()) > 2:
            rng.shuffle(words)  # human words in no order: teaches D fluency, not only style
            rows.append((e.context_text, " ".join(words), 0.0))
        if cfg.defect_negatives and rng.random() < cfg.defect_negatives:  # no draw when off: old runs replay
            bad = defect_negative(e, data, rng.choice(DEFECT_KINDS), rng)
            if bad:
                rows.append((e.context_text, bad, 0.0))
    for context, chosen, rejected in data.preferences:  # a user's pick: the chosen reply as "human", the other not
        rows += [(context, chosen, 1.0), (context, rejected, 0.0)]
    rows += quality_batch_rows(data.quality, cfg.quality_balance, rng)
    rng.shuffle(rows)
    for i in range(0, len(rows), cfg.batch_size):
        chunk = rows[i : i + cfg.batch_size]
        yield [r[0] for r in chunk], [r[1] for r in chunk], torch.tensor([r[2] for r in chunk])


def quality_batch_rows(quality: list, balance: bool, rng: random.Random) -> list[tuple[str, str, float]]:
    """The good and poor replies as D's rows; with `balance` the rarer side is repeated (whole copies, then a
    seeded draw) to as many rows as the other (the poor replies outnumber the good ones several times)."""
    rows = [(r.context, r.reply, r.target) for r in quality]
    real, fake = [x for x in rows if x[2] == 1.0], [x for x in rows if x[2] == 0.0]
    small, big = sorted((real, fake), key=len)
    if not balance or not small:
        return rows
    return rows + small * (len(big) // len(small) - 1) + rng.sample(small, len(big) % len(small))


# ---------------------------------------------------------------- D


def build_discriminator(cfg: TrainConfig):
    """A fresh D with the bottom `freeze_ratio` of encoder layers (and the embeddings) frozen."""
    from ..ranking.discriminator import new_discriminator
    from ..models.device import resolve_device

    d = new_discriminator(cfg.encoder, resolve_device(cfg.device), cfg.max_length)
    if hasattr(d, "reply_bytes"):  # an embedding D (saved in its meta, so the app reads replies alike)
        d.reply_bytes = cfg.reply_bytes
    if isinstance(d.encoder, torch.nn.Module):  # a cross-encoder; a sentence encoder stays frozen whole
        freeze_encoder(d, cfg.freeze_ratio)
    return d


def read_embeddings(d, cfg: TrainConfig) -> int:
    """Fill D's sentence encoder's cache from cfg.embedding_cache (runs that differ in D embed nothing twice);
    how many embeddings it then holds (0 for a cross-encoder or no file)."""
    if not cfg.embedding_cache or not hasattr(d.encoder, "read_cache"):
        return 0
    d.encoder.read_cache(cfg.embedding_cache)
    return len(d.encoder.cache)


def write_embeddings(d, cfg: TrainConfig, before: int) -> None:
    """Keep D's encoder's cache in cfg.embedding_cache when the run embedded something new."""
    if cfg.embedding_cache and hasattr(d.encoder, "write_cache") and len(d.encoder.cache) > before:
        d.encoder.write_cache(cfg.embedding_cache)


def freeze_encoder(d, freeze_ratio: float) -> int:
    """Freeze embeddings and the lowest layers; returns how many layers stay trainable."""
    blocks = layers(d.encoder)
    frozen = round(len(blocks) * freeze_ratio)
    for p in d.encoder.parameters():
        p.requires_grad_(False)
    for layer in blocks[frozen:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    return len(blocks) - frozen


def d_optimizer(cfg: TrainConfig, d) -> torch.optim.Optimizer:
    encoder = [p for n, p in d.named_parameters() if p.requires_grad and not n.startswith("head.")]
    groups = [{"params": list(d.head.parameters()), "lr": cfg.head_lr}]
    if encoder:
        groups.append({"params": encoder, "lr": cfg.lr})
    return torch.optim.AdamW(groups, weight_decay=0.01)


def d_step(d, optimizer, contexts: list[str], replies: list[str], labels: torch.Tensor) -> float:
    """One binary cross-entropy step on D; returns the loss before the update."""
    d.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(d.logits(contexts, replies), labels.to(d.device))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def length_direction(data: Data) -> float:
    """+1 if longer replies look more human on train, else −1 (the length-only baseline's fit)."""
    real = [len(e.reply) for e in data.train]
    fake = [len(data.fakes[e.id][0].text) for e in data.train]
    return 1.0 if roc_auc([float(x) for x in real], [float(x) for x in fake]) >= 0.5 else -1.0


# ---------------------------------------------------------------- λ and the loop


def choose_lambda(cfg: TrainConfig, d, data: Data, judge) -> dict:
    """λ with the best judge win rate of best-of-N over the first sample on validation."""
    from .judges import best_of, win_rate

    sims, dsc, replies = [], [], []
    for e in data.val:
        cands = data.fakes[e.id][: cfg.val_candidates]
        texts = [c.text for c in cands]
        sims.append(judge.similarity(texts, e.reply))
        dsc.append(d_scores(d, [e.context_text] * len(texts), texts))
        replies.append(cands)
    table = {}
    for lam in cfg.lam_grid:  # sample 0 is the single reply; best-of-(N−1) picks among the others, as the app ranks
        picks = [
            1 + best_of(e.context_text, rs[1:], ds[1:], lam, len(ds) - 1)
            for e, rs, ds in zip(data.val, replies, dsc)
        ]
        table[lam] = win_rate([s[p] for s, p in zip(sims, picks)], [s[0] for s in sims])["rate"]
    best = max(cfg.lam_grid, key=lambda lam: (round(table[lam], 4), -abs(lam - 0.5)))
    return {"lam": best, "val_win_rate": table[best], "table": {str(k): v for k, v in table.items()}}


def _bar(cfg: TrainConfig):
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm


def train(cfg: TrainConfig) -> dict:
    """The whole run; returns the summary also written to summary.json."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    generator = load_generator(cfg) if cfg.g_steps or samples_missing(cfg) else None  # None: all cached
    data = prepare_data(cfg, generator)
    direction = length_direction(data)
    d = build_discriminator(cfg)
    embedded = read_embeddings(d, cfg)
    opt = d_optimizer(cfg, d)
    g_opt, g_names, g_before = None, [], None
    if cfg.g_steps:
        g_names = g_trainable_params(generator.model, cfg.g_trainable)
        g_opt = torch.optim.AdamW([p for p in generator.model.parameters() if p.requires_grad], lr=cfg.g_lr)
    state = {"epoch": 0, "best_auc": -1.0, "bad_epochs": 0, "step": 0}
    metrics_path = out / "metrics.jsonl"
    if cfg.resume and (out / "last.pt").exists():
        state = resume(out / "last.pt", d, opt, generator, g_opt)
    elif metrics_path.exists():
        metrics_path.unlink()
    rng = random.Random(cfg.seed)
    extra: dict[str, list[str]] = {}
    if cfg.g_steps:
        g_before = judge_generator(cfg, generator, data, tag="before")
    while state["epoch"] < cfg.epochs and state["bad_epochs"] < cfg.patience:
        epoch = state["epoch"] + 1
        losses, g_logs = [], []
        batches = list(d_batches(cfg, data, epoch, extra))
        bar = _bar(cfg)(batches, desc=f"epoch {epoch} D", unit="batch") if cfg.progress else batches
        for i, (c, r, y) in enumerate(bar):
            losses.append(d_step(d, opt, c, r, y))
            state["step"] += 1
            if cfg.g_steps and (i + 1) % cfg.d_steps == 0:
                for _ in range(cfg.g_steps):
                    stats = g_step(cfg, generator, d, g_opt, rng.sample(data.train, cfg.g_contexts))
                    for eid, texts in stats.pop("fresh").items():
                        extra[eid] = texts[:1]  # the latest G's reply is this context's extra fake
                    g_logs.append(stats)
        row = {"epoch": epoch, "step": state["step"], "train_loss": sum(losses) / len(losses)}
        row.update({f"val_{k}": v for k, v in d_metrics(d, data.val, data.fakes, direction, cfg.seed).items()})
        if g_logs:
            row.update({k: sum(x[k] for x in g_logs) / len(g_logs) for k in g_logs[0]})
        row["seconds"] = time.perf_counter() - started
        with metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
        if row["val_auc"] > state["best_auc"] or cfg.keep == "last":
            state.update(best_auc=row["val_auc"], bad_epochs=0)  # with "last": the kept epoch's
            d.save(out / "best", epoch=epoch, val=row)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        checkpoint(out / "last.pt", state, d, opt, generator, g_opt)
    write_embeddings(d, cfg, embedded)
    plot_curves(metrics_path, out / "curves.png")
    return finish(cfg, data, generator, g_before, g_names, state, started, direction)


def finish(cfg: TrainConfig, data: Data, generator, g_before, g_names, state, started, direction: float) -> dict:
    """Reload the best D, pick λ on validation, save it with its metadata; judge G if it trained."""
    from ..ranking.discriminator import Discriminator
    from .judges import SimilarityJudge
    from ..models.device import resolve_device

    device = resolve_device(cfg.device)
    best = Discriminator.load(cfg.out_dir / "best", device)
    read_embeddings(best, cfg)
    judge = SimilarityJudge.from_spec(cfg.judge_encoder, device)
    lam = choose_lambda(cfg, best, data, judge)
    training = {
        k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("out_dir", "cache_dir", "resume", "progress")
    }
    meta = {**best.meta, "lam": lam["lam"], "lam_selection": lam, "length_direction": direction, "training": training}
    best.save(cfg.out_dir / "best", **meta)
    summary = {
        "epochs_run": state["epoch"],
        "stopped_early": state["bad_epochs"] >= cfg.patience,
        "best_val_auc": state["best_auc"],
        "lam": lam,
        "sampling_seconds": data.sampling_seconds,
        "total_seconds": time.perf_counter() - started,
        "train_examples": len(data.train),
        "val_examples": len(data.val),
    }
    if cfg.g_steps:
        after = judge_generator(cfg, generator, data, tag="after", d=best, judge=judge)
        before = judge_generator(cfg, generator, data, tag="before", d=best, judge=judge, replies=g_before["replies"])
        summary["g_step"] = {"trainable": len(g_names), "before": before["stats"], "after": after["stats"]}
    (cfg.out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def parse_args(argv: list[str] | None = None, defaults: dict | None = None) -> TrainConfig:
    """argparse over TrainConfig's fields: --train-contexts 2000, --g-steps 1, --resume, ...; `defaults`
    replace TrainConfig's own (qualityd.py's settings)."""
    p = argparse.ArgumentParser(description="Train the discriminator adversarially on chitchat.")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = (defaults or {}).get(f.name, getattr(TrainConfig(), f.name))
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            p.add_argument(flag, type=float, nargs="+", default=default)
        else:
            p.add_argument(flag, type=type(default), default=default)
    args = vars(p.parse_args(argv))
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = parse_args(argv)
    try:
        for module in ("matplotlib", "tqdm"):  # checked now, not after an hour of training
            require(module, "Training", DEV_LOCK)
        summary = train(cfg)
    except (ValueError, FileNotFoundError, MissingPackageError) as e:  # bad settings, data or packages: one line
        raise SystemExit(f"train: {e}") from None
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
