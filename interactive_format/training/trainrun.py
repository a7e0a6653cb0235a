"""A training run's files: its resumable checkpoint (D's trained parts, optimisers, G's trained parameters)
and its curves (curves.png from metrics.jsonl). Used by train.py only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

log = logging.getLogger("interactive_format.training.train")  # the run's log lines, as train.py's


def checkpoint(path: Path, state: dict, d, opt, generator, g_opt) -> None:
    blob = {"state": state, "d": d.trained_state(), "opt": opt.state_dict()}
    if g_opt is not None:
        blob["g"] = {k: v for k, v in generator.model.state_dict().items() if k in _trainable_names(generator.model)}
        blob["g_opt"] = g_opt.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def _trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def resume(path: Path, d, opt, generator, g_opt) -> dict:
    blob = torch.load(path, map_location=d.device, weights_only=True)
    d.load_state_dict(blob["d"], strict=False)
    opt.load_state_dict(blob["opt"])
    if g_opt is not None and "g" in blob:
        generator.model.load_state_dict(blob["g"], strict=False)
        g_opt.load_state_dict(blob["g_opt"])
    log.info("resumed after epoch %d", blob["state"]["epoch"])
    return blob["state"]


def plot_curves(metrics_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
    if not rows:
        return
    epochs = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train BCE")
    a.set_xlabel("epoch"), a.set_title("loss"), a.legend()
    for key in ("val_auc", "val_accuracy", "val_hits@1", "val_adversuc", "val_length_auc"):
        b.plot(epochs, [r[key] for r in rows], marker="o", label=key.removeprefix("val_"))
    b.set_xlabel("epoch"), b.set_ylim(0, 1.02), b.set_title("validation"), b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
