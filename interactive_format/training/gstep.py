"""The G-step of adversarial training (off unless --g-steps > 0): REINFORCE on the top layers of a
transformers G with D's P(human) as reward, and a before/after judgement of G's replies.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .judges import d_scores


def sample_params(cfg):
    from ..llm.sampling import SamplingParams

    return SamplingParams(
        temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed
    )


def layers(model) -> list[torch.nn.Module]:
    """The stack of transformer blocks of an encoder or decoder (BERT-, Llama-, GPT-2-like)."""
    for path in ("encoder.layer", "model.layers", "layers", "transformer.h", "h"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return list(obj)
    raise ValueError(f"Cannot find the transformer layers of {type(model).__name__}")


def g_trainable_params(model, share: float) -> list[str]:
    """Unfreeze the top ceil(share × layers) decoder layers (and nothing else); return their names."""
    blocks = layers(model)
    keep = max(1, math.ceil(len(blocks) * share))
    for p in model.parameters():
        p.requires_grad_(False)
    allowed = {id(p) for layer in blocks[-keep:] for p in layer.parameters()}
    names = []
    for name, p in model.named_parameters():
        if id(p) in allowed:
            p.requires_grad_(True)
            names.append(name)
    return names


def g_step(cfg, generator, d, optimizer, examples: list) -> dict:
    """One REINFORCE step on G: reward = D's P(human), baseline = the context's mean reward.

    Loss = −mean((r − b) · log p(reply)) + g_likelihood · NLL(human reply): the likelihood
    term keeps G close to human text instead of drifting to whatever fools D.
    Returns the reward stats and the fresh samples (new fakes for the next D-steps).
    """
    from ..llm.offline import sample_replies, sequence_logprobs

    model, tok = generator.model, generator.tokenizer
    model.eval()
    drafts = sample_replies(
        generator,
        [e.messages(cfg.system_prompt) for e in examples],
        dataclasses.replace(sample_params(cfg), n=cfg.g_samples, seed=None),
    )
    prompts, replies, rewards, fresh = [], [], [], {}
    for e, ds in zip(examples, drafts):
        texts = [x.text.strip() for x in ds]
        r = d_scores(d, [e.context_text] * len(texts), texts)
        mean = sum(r) / len(r)
        fresh[e.id] = texts
        for x, ri in zip(ds, r):
            prompts.append(generator.prompt_ids(e.messages(cfg.system_prompt)))
            replies.append(x.token_ids)
            rewards.append(ri - mean)
    human_prompts = [generator.prompt_ids(e.messages(cfg.system_prompt)) for e in examples]
    human = [tok(e.reply, add_special_tokens=False)["input_ids"] for e in examples]
    model.train()
    with torch.enable_grad():
        logp = sequence_logprobs(generator, prompts, replies)
        adv = torch.tensor(rewards, device=logp.device)
        nll = -sequence_logprobs(generator, human_prompts, human).mean()
        loss = -(adv * logp).mean() + cfg.g_likelihood * nll
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    spread = max(rewards) - min(rewards)
    return {"g_loss": loss.item(), "g_nll_human": nll.item(), "g_reward_spread": spread, "fresh": fresh}


def judge_generator(cfg, generator, data, tag: str, d=None, judge=None, replies=None) -> dict:
    """G's replies to some val contexts; with D given, their AdverSuc and judge similarity."""
    from ..llm.offline import sample_replies

    examples = data.val[: cfg.g_eval_contexts]
    if replies is None:
        replies = []
        for i in range(0, len(examples), cfg.rows_per_call):
            chunk = examples[i : i + cfg.rows_per_call]
            drafts = sample_replies(
                generator,
                [e.messages(cfg.system_prompt) for e in chunk],
                dataclasses.replace(sample_params(cfg), n=1, seed=cfg.seed + 7),
            )
            replies += [ds[0].text.strip() for ds in drafts]
    stats = {}
    if d is not None:  # `judge`: the caller's SimilarityJudge (loaded once per run)
        scores = d_scores(d, [e.context_text for e in examples], replies)
        sims = [judge.similarity([r], e.reply)[0] for r, e in zip(replies, examples)]
        stats = {
            "adversuc": sum(s > 0.5 for s in scores) / len(scores),
            "mean_d": sum(scores) / len(scores),
            "judge_similarity": sum(sims) / len(sims),
            "tag": tag,
        }
    return {"replies": replies, "stats": stats}
