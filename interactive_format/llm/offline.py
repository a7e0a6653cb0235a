"""Offline passes of the transformers model: teacher-forced log-probs and batched, unstreamed sampling.

For training and evaluation (`sample_replies`, `sequence_logprobs`), and for J of a server that
sends no log-probs (openai_backend's local scorer). The serving generator (generator.py) streams.
"""

from __future__ import annotations

import torch

from .generator import TransformersGenerator, visible_text
from .sampling import Draft, SamplingParams


def sequence_logprobs(
    generator: TransformersGenerator, prompts: list[list[int]], replies: list[list[int]], with_end: bool = True
) -> torch.Tensor:
    """Mean token log-prob of each reply after its prompt, by teacher forcing (with gradients unless disabled).

    `with_end`: the reply's end-of-turn token counts too (training); without it, J as `stream` measures it.
    Returns (len(replies),); a reply needs at least one token when `with_end` is False.
    """
    model, device = generator.model, generator.device
    eos = min(generator.eos_ids)
    seqs = [p + r + [eos] for p, r in zip(prompts, replies)]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [eos] * (width - len(s)) for s in seqs], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
    target = torch.zeros_like(ids, dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, replies)):
        target[i, len(p) : len(p) + len(r) + int(with_end)] = True
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    lp = logits.log_softmax(-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    t = target[:, 1:].to(lp.dtype)
    return (lp * t).sum(1) / t.sum(1)


def sample_replies(
    generator: TransformersGenerator, prompts: list[list[dict]], params: SamplingParams
) -> list[list[Draft]]:
    """N complete replies to each of several prompts, all in one left-padded `generate` call.

    The offline path for training and evaluation (no streaming, no stop): returns, per
    prompt, `params.n` drafts with J from the raw (pre-temperature) distribution.
    """
    model, tok = generator.model, generator.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else min(generator.eos_ids)
    ids = [generator.prompt_ids(m) for m in prompts]
    width = max(map(len, ids))
    input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=generator.device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=generator.device)
    with generator._lock, torch.inference_mode():
        if params.seed is not None:
            torch.manual_seed(params.seed)
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            do_sample=True,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=0,
            max_new_tokens=params.max_new_tokens,
            num_return_sequences=params.n,
            pad_token_id=pad,
            output_logits=True,
            return_dict_in_generate=True,
        )
    new = out.sequences[:, width:]  # (prompts × n, steps)
    logprobs = torch.stack(out.logits, 1).float().log_softmax(-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    drafts = []
    for row, lp in zip(new.tolist(), logprobs.tolist()):
        end = next((i for i, t in enumerate(row) if t in generator.eos_ids), len(row))
        tokens = row[:end]
        drafts.append(Draft(visible_text(tok, tokens), tokens, float(sum(lp[:end])), end < len(row)))
    return [drafts[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]
