"""KV-cache sampler and teacher-forced scoring for the embedded backend.

At temperature τ the policy is π(·|s) = softmax(z/τ) over the full vocabulary, where z are the logits.
Both functions report, per response token t,
    log π(y_t | s_t)                      (the log-prob of the token actually in the sequence), and
    H(s_t) = −Σ_k π_k log π_k            (full-vocabulary entropy in nats, H = logsumexp(z/τ) − Σ_k π_k z_k/τ),
so the sampler's `old_log_prob`/`entropy` and `response_logprobs` on the same tokens agree to rounding.

Works with any model exposing `forward(tokens, kv_cache, start_pos) -> logits` and `new_kv_cache(B)`
(`TinyPolicy`, and Hugging Face models through `steerbench.local.hf.HFPolicy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch
from torch import nn

from steerbench.errors import UsageError


class Policy(Protocol):
    """What the sampler needs from a model (an nn.Module): `TinyPolicy` and `HFPolicy` both fit."""

    def __call__(self, tokens: torch.Tensor, kv_cache: Any = None, start_pos: int = 0) -> torch.Tensor: ...

    def new_kv_cache(self, batch_size: int) -> Any: ...


@dataclass
class Rollout:
    tokens: torch.Tensor  # (B, P+T) long: prompt then response; pad after each row's EOS
    response_mask: torch.Tensor  # (B, T) float: 1 up to and including the first EOS, 0 after
    old_log_prob: torch.Tensor  # (B, T) float32: log π_old(y_t | s_t) at the sampling temperature
    entropy: torch.Tensor  # (B, T) float32: full-vocab entropy of π_old(· | s_t), nats

    @property
    def prompt_len(self) -> int:
        return self.tokens.shape[1] - self.response_mask.shape[1]

    @property
    def responses(self) -> torch.Tensor:
        """(B, T) response token ids."""
        return self.tokens[:, self.prompt_len :]


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise UsageError(f"temperature must be > 0 (got {temperature}); use e.g. 1.0 for RL rollouts")


def token_stats(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log π(tokens), H) of softmax(logits/τ); logits (..., V), tokens (...) → two (...) float32 tensors."""
    log_p = torch.log_softmax(logits.float() / temperature, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return log_p.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), entropy


@torch.no_grad()
def sample(
    model: nn.Module,
    prompts: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    eos_id: int,
    generator: torch.Generator,
    pad_id: int = 0,
) -> Rollout:
    """Sample up to `max_new_tokens` per prompt (B, P) with KV-cache incremental decoding.

    Rows that emitted EOS are fed `pad_id` afterwards (masked out); decoding stops early once every row
    has emitted EOS, so T ≤ max_new_tokens. Draws use `torch.multinomial(..., generator=generator)`, so a
    seeded generator makes the rollout bit-reproducible. The model's train/eval mode is left as is.
    The rollout's `old_log_prob` and `entropy` are π_old's: the trainer uses them as its π_old pass.
    """
    _check_temperature(temperature)
    B, P = prompts.shape
    cache = cast(Policy, model).new_kv_cache(B)
    logits = model(prompts, kv_cache=cache, start_pos=0)[:, -1]
    # outputs are written column by column into buffers sized for the longest response
    tokens = prompts.new_full((B, P + max_new_tokens), pad_id)
    tokens[:, :P] = prompts
    log_probs = torch.empty(B, max_new_tokens)
    entropies = torch.empty(B, max_new_tokens)
    masks = torch.empty(B, max_new_tokens)
    done = torch.zeros(B, dtype=torch.bool, device=prompts.device)
    steps = max_new_tokens
    for t in range(max_new_tokens):
        log_p = torch.log_softmax(logits.float() / temperature, dim=-1)
        probs = log_p.exp()
        token = torch.multinomial(probs, 1, generator=generator).squeeze(-1).masked_fill_(done, pad_id)
        entropies[:, t] = -(probs * log_p).sum(-1)
        log_probs[:, t] = log_p.gather(-1, token[:, None]).squeeze(-1)
        masks[:, t] = ~done
        tokens[:, P + t] = token
        done |= token == eos_id
        if bool(done.all()) or t == max_new_tokens - 1:
            steps = t + 1
            break
        logits = model(token[:, None], kv_cache=cache, start_pos=P + t)[:, -1]
    return Rollout(
        tokens=tokens[:, : P + steps],
        response_mask=masks[:, :steps],
        old_log_prob=log_probs[:, :steps],
        entropy=entropies[:, :steps],
    )


def response_logprobs(
    model: nn.Module, tokens: torch.Tensor, prompt_len: int, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced (log π(y_t|s_t), H(s_t)) for the response tokens, each (B, T), with gradient.

    One forward over tokens (B, P+T); the logits at position P−1+t predict response token t.
    """
    _check_temperature(temperature)
    logits = model(tokens[:, :-1])[:, prompt_len - 1 :]
    return token_stats(logits, tokens[:, prompt_len:], temperature)
