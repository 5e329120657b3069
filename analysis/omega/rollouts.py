"""Rollout batches for Ω validation: prompts → sampled responses → rewards → the method's advantages.

Works for any policy with ``forward(tokens) -> logits``. Sampling: a Hugging Face policy with a pad id
(left-padded prompts of different lengths) goes through transformers' ``generate`` with plain
softmax(z/τ) sampling (no top-k/top-p/repetition penalty, whatever the model's generation_config says,
because the entropies are measured on exactly that distribution); other models with ``new_kv_cache`` use
the embedded KV-cache sampler (``steerbench.local.sampler.sample``); anything else a plain loop. Rewards
come from a verifier, or are coin flips (the ``random_reward`` sign test) where there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from steerbench.analysis.omega.measure import RolloutBatch, _logits, response_stats
from steerbench.local.hf import left_pad_attention
from steerbench.local.sampler import on_device
from steerbench.local.sampler import sample as kv_cache_sample  # make_batch's `sample` is a parameter
from steerbench.methods import compute_advantages, get_method
from steerbench.rewards import coin_flips

# prompts (B, P), responses (B, T), response_mask (B, T) → rewards (B,)
RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# (prompts, max_new_tokens, temperature, eos_id, generator) → (tokens (B, P+T), response_mask (B, T))
SampleFn = Callable[
    [torch.Tensor, int, float, "int | None", torch.Generator], tuple[torch.Tensor, torch.Tensor]
]


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
    if getattr(model, "pad_id", None) is not None and hasattr(model, "lm"):
        return _hf_generate(model, prompts, max_new_tokens, temperature, eos_id, generator)
    generator = on_device(generator, prompts.device)  # draws on the prompts' device, seeded from the caller's
    if hasattr(model, "new_kv_cache") and eos_id is not None:
        ro = kv_cache_sample(model, prompts, max_new_tokens, temperature, eos_id, generator)
        return ro.tokens, ro.response_mask
    tokens = prompts
    done = torch.zeros(prompts.shape[0], dtype=torch.bool, device=prompts.device)
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


def _hf_generate(
    model: nn.Module,
    prompts: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    eos_id: int | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers ``generate`` on left-padded prompts; RNG forked and seeded from ``generator``."""
    from transformers import GenerationConfig  # the hf extra: only a Hugging Face policy gets here

    pad = int(model.pad_id)  # type: ignore[arg-type]
    config = GenerationConfig(
        do_sample=True,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        eos_token_id=eos_id,
        pad_token_id=pad,
    )
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    devices = [prompts.device] if prompts.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = model.lm.generate(  # type: ignore[union-attr,operator]
            input_ids=prompts, attention_mask=left_pad_attention(prompts, pad), generation_config=config
        )
    responses = out[:, prompts.shape[1] :]
    if eos_id is None:
        return out, torch.ones_like(responses, dtype=torch.float32)
    is_eos = (responses == eos_id).long()
    after_eos = (is_eos.cumsum(1) - is_eos) > 0  # strictly after the first EOS
    return out, (~after_eos).float()


def coin_flip_rewards(generator: torch.Generator) -> RewardFn:
    def reward(prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return coin_flips(prompts.shape[0], generator)

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
    sample: SampleFn | None = None,
    reference: nn.Module | None = None,
) -> RolloutBatch:
    """Sample ``group_size`` responses per prompt (``sample``, else :func:`sample_responses` from ``model``)
    and shape the advantages with the method's shaper.

    A method whose loss needs a reference policy's log-probs (kl) gets ``reference``'s; without one the
    reference is ``model`` itself, as at the start of a run (the KL term and its gradient are then 0)."""
    reps = prompts.repeat_interleave(group_size, 0)
    group_index = torch.arange(prompts.shape[0], device=prompts.device).repeat_interleave(group_size)
    if sample is None:
        tokens, mask = sample_responses(model, reps, max_new_tokens, temperature, eos_id, generator)
    else:
        tokens, mask = sample(reps, max_new_tokens, temperature, eos_id, generator)
    P = prompts.shape[1]
    rewards = reward_fn(reps, tokens[:, P:], mask).float().to(tokens.device)
    old_log_prob = response_stats(model, tokens, P, temperature)[0]  # the unlikeliness shaper ranks by it
    adv = compute_advantages(
        method, rewards, group_index, mask, old_log_prob, **(knobs or {})
    )  # one typed config per method: shaper and loss share knobs
    ref_log_prob = None
    if "ref_log_prob" in get_method(method).needs:
        ref_log_prob = response_stats(reference or model, tokens, P, temperature)[0]
    return RolloutBatch(
        tokens=tokens,
        ref_log_prob=ref_log_prob,
        prompt_len=P,
        response_mask=mask,
        advantages=adv,
        rewards=rewards,
        group_index=group_index,
    )
