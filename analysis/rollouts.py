"""Rollout batches for Ω validation: prompts → sampled responses → rewards → the method's advantages.

Works for any policy with ``forward(tokens) -> logits``; uses the embedded KV-cache sampler
(``steerbench.local.sampler.sample``) when the model has ``new_kv_cache``. Rewards come from a task
verifier, or are coin flips (the ``random_reward`` sign test) where there is no verifier, e.g. for a
tokenizer-free Hugging Face model fed random prompt ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from steerbench.analysis.omega import RolloutBatch, _logits, response_stats

# prompts (B, P), responses (B, T), response_mask (B, T) → rewards (B,)
RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def sample_responses(
    model: nn.Module,
    prompts: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    eos_id: int | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, P+T), response_mask (B, T)); mask is 1 up to and including the first EOS."""
    if hasattr(model, "new_kv_cache") and eos_id is not None:
        from steerbench.local.sampler import sample

        ro = sample(model, prompts, max_new_tokens, temperature, eos_id, generator)
        return ro.tokens, ro.response_mask
    tokens = prompts
    done = torch.zeros(prompts.shape[0], dtype=torch.bool)
    masks = []
    for _ in range(max_new_tokens):
        probs = torch.softmax(_logits(model, tokens)[:, -1].float() / temperature, -1)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        masks.append((~done).float())
        tokens = torch.cat([tokens, nxt[:, None]], 1)
        if eos_id is not None:
            done = done | (nxt == eos_id)
            if bool(done.all()):
                break
    return tokens, torch.stack(masks, 1)


def coin_flip_rewards(generator: torch.Generator) -> RewardFn:
    def reward(prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.randint(0, 2, (prompts.shape[0],), generator=generator).float()

    return reward


def make_batch(
    model: nn.Module,
    prompts: torch.Tensor,
    group_size: int,
    max_new_tokens: int,
    temperature: float,
    eos_id: int | None,
    reward_fn: RewardFn,
    method: str,
    generator: torch.Generator,
    knobs: dict[str, Any] | None = None,
) -> RolloutBatch:
    """Sample ``group_size`` responses per prompt and shape the advantages with the method's shaper."""
    from steerbench.methods import compute_advantages

    reps = prompts.repeat_interleave(group_size, 0)
    group_index = torch.arange(prompts.shape[0]).repeat_interleave(group_size)
    tokens, mask = sample_responses(model, reps, max_new_tokens, temperature, eos_id, generator)
    P = prompts.shape[1]
    rewards = reward_fn(reps, tokens[:, P:], mask).float()
    old_log_prob = response_stats(model, tokens, P, temperature)[0]  # the unlikeliness shaper ranks by it
    adv = compute_advantages(method, rewards, group_index, mask, old_log_prob, **shaper_knobs(method, knobs))
    return RolloutBatch(
        tokens=tokens,
        prompt_len=P,
        response_mask=mask,
        advantages=adv,
        rewards=rewards,
        group_index=group_index,
    )


def shaper_knobs(method: str, knobs: dict[str, Any] | None) -> dict[str, Any]:
    """All method knobs go to both the shaper and the loss (one typed config per method)."""
    return dict(knobs or {})
