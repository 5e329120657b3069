"""KV-cache sampler and teacher-forced scoring for the embedded backend.

At temperature τ the policy is π(·|s) = softmax(z/τ) over the full vocabulary, where z are the logits.
Both functions report, per response token t,
    log π(y_t | s_t)                      (the log-prob of the token actually in the sequence), and
    H(s_t) = −Σ_k π_k log π_k            (full-vocabulary entropy in nats, H = logsumexp(z/τ) − Σ_k π_k z_k/τ),
so the sampler's `old_log_prob`/`entropy` and `response_logprobs` on the same tokens agree to rounding.

Works with any model exposing `forward(tokens, kv_cache, start_pos) -> logits` and `new_kv_cache(B, max_len)`
(`TinyPolicy`, and Hugging Face models through `steerbench.local.hf.HFPolicy`). The model hands each
layer's keys/values to `kv_cache.write(layer, k, v, start)`, which is how `SharedPrefix` scores a GRPO
group's prompt once; a cache with `take_rows` lets the sampler prefill each distinct prompt once.
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

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> Any: ...


SHRINK_AT = 0.8  # the share of still-running rows at which the sampler drops the finished ones from its cache
# and never below 4 rows: torch's CPU matmul takes another kernel for 1–3 rows, whose sums round differently,
# so a row's logits would depend on how many rows still run
MIN_ROWS = 4


def last_logits(model: Any, tokens: torch.Tensor, first: int, **cache: Any) -> torch.Tensor:
    """``model(tokens, **cache)[:, first:]``; a model with ``partial_logits`` (``HFPolicy``) never computes the
    logits before ``first``."""
    if getattr(model, "partial_logits", False):
        return model(tokens, first_logit=first, **cache)  # type: ignore[no-any-return]
    return model(tokens, **cache)[:, first:]  # type: ignore[no-any-return]


@dataclass
class Rollout:
    tokens: torch.Tensor  # (B, P+T) long: prompt then response; pad after each row's EOS
    response_mask: torch.Tensor  # (B, T) float: 1 up to and including the first EOS, 0 after
    old_log_prob: (
        torch.Tensor
    )  # (B, T) float32: log π_old(y_t | s_t) at the sampling temperature; 0 after EOS
    entropy: torch.Tensor  # (B, T) float32: full-vocab entropy of π_old(· | s_t), nats; 0 after EOS

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

    Rows that emitted EOS are masked out afterwards; decoding stops early once every row has emitted EOS,
    so T ≤ max_new_tokens. Once a share ``1 − SHRINK_AT`` of the rows the model runs on has finished, a cache
    with ``take_rows`` keeps only the others (a finished row is fed `pad_id` until then, and keeps its last
    logits after: its draws are masked, and the draws of every row are the same either way, since
    ``multinomial`` draws one exponential per vocabulary entry of every row). A row's ``old_log_prob`` and
    ``entropy`` are 0 after its EOS. Draws use `torch.multinomial(..., generator=generator)`, so a
    seeded generator makes the rollout bit-reproducible. The model's train/eval mode is left as is.
    The rollout's `old_log_prob` and `entropy` are π_old's: the trainer uses them as its π_old pass.
    """
    _check_temperature(temperature)
    B, P = prompts.shape
    generator = on_device(generator, prompts.device)
    cache, logits = prefill(cast(Policy, model), prompts, P + max_new_tokens)
    # outputs are written column by column into buffers sized for the longest response
    tokens = prompts.new_full((B, P + max_new_tokens), pad_id)
    tokens[:, :P] = prompts
    log_probs = torch.empty(B, max_new_tokens, device=prompts.device)
    entropies = torch.empty(B, max_new_tokens, device=prompts.device)
    masks = torch.empty(B, max_new_tokens, device=prompts.device)
    done = torch.zeros(B, dtype=torch.bool, device=prompts.device)
    rows = torch.arange(B, device=prompts.device)  # the rows the cache holds, and the model runs on
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
        live = ~done[rows]
        if hasattr(cache, "take_rows") and MIN_ROWS <= int(live.sum()) <= SHRINK_AT * len(rows):
            cache, rows = cache.take_rows(live.nonzero().squeeze(-1), P + t), rows[live]
        logits[rows] = model(token[rows, None], kv_cache=cache, start_pos=P + t)[:, -1]
    finished = masks[:, :steps] == 0
    return Rollout(
        tokens=tokens[:, : P + steps],
        response_mask=masks[:, :steps],
        old_log_prob=log_probs[:, :steps].masked_fill_(finished, 0.0),
        entropy=entropies[:, :steps].masked_fill_(finished, 0.0),
    )


def on_device(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """``generator`` itself on its own device; elsewhere a generator there, seeded from (and advancing) it, so
    draws stay a function of the caller's seed (a CPU-held trainer generator drives GPU sampling)."""
    if generator.device == device:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device).manual_seed(seed)


def prefill(model: Policy, prompts: torch.Tensor, max_len: int | None = None) -> tuple[Any, torch.Tensor]:
    """(KV cache for sequences of up to `max_len` tokens, last-position logits (B, V)) of the prompts, each
    distinct prompt run once.

    A GRPO batch repeats every prompt n times; the prefill runs the distinct rows and copies their
    keys/values to the repeats. With the CPU kernels here a row's logits and keys/values do not depend on
    the other rows of its batch (tests/test_local_shared_prompts.py checks whole rollouts bit for bit, and
    the committed paper runs reproduce), so this only saves work. Caches without `take_rows`
    (transformers' own) prefill every row."""
    distinct, rows = torch.unique(prompts, dim=0, return_inverse=True)
    if len(distinct) < len(prompts):
        cache = model.new_kv_cache(len(distinct), max_len)
        if hasattr(cache, "take_rows"):
            logits = last_logits(model, distinct, -1, kv_cache=cache, start_pos=0)[:, -1]
            return cache.take_rows(rows, prompts.shape[1]), logits[rows]
    cache = model.new_kv_cache(len(prompts), max_len)
    return cache, last_logits(model, prompts, -1, kv_cache=cache, start_pos=0)[:, -1]


class SharedPrefix:
    """A differentiable cache for scoring rows that share prompts: the prompt pass (start 0, one row per
    distinct prompt) keeps its keys/values; a later pass of the responses (one row per sequence) attends
    over its row's prompt keys/values followed by its own."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows  # (B,) the distinct prompt of each sequence
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}
        self._prompt_lead: torch.Tensor | None = None

    @property
    def pad_lead(self) -> torch.Tensor | None:
        """Leading pads of each sequence's (left-padded) prompt, for the response pass; set by the prompt pass
        with one count per distinct prompt (``HFPolicy``)."""
        return None if self._prompt_lead is None else self._prompt_lead.index_select(0, self.rows)

    @pad_lead.setter
    def pad_lead(self, lead: torch.Tensor | None) -> None:
        self._prompt_lead = lead

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if start == 0:
            self.k[layer], self.v[layer] = k, v
            return k, v
        prefix_k, prefix_v = (
            self.k[layer].index_select(0, self.rows),
            self.v[layer].index_select(0, self.rows),
        )
        return torch.cat([prefix_k, k], dim=2), torch.cat([prefix_v, v], dim=2)


def response_logprobs(
    model: nn.Module,
    tokens: torch.Tensor,
    prompt_len: int,
    temperature: float,
    share_prompts: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced (log π(y_t|s_t), H(s_t)) for the response tokens, each (B, T), with gradient."""
    _check_temperature(temperature)
    logits = response_logits(model, tokens, prompt_len, share_prompts)
    return token_stats(logits, tokens[:, prompt_len:], temperature)


def response_logits(
    model: nn.Module, tokens: torch.Tensor, prompt_len: int, share_prompts: bool = False
) -> torch.Tensor:
    """Logits (B, T, V) predicting the response tokens of tokens (B, P+T): position P−1+t predicts token t.

    One forward over the sequences; with `share_prompts`, each distinct prompt runs once and its rows'
    responses attend to its keys/values (`SharedPrefix`): the same function with a GRPO group's prompt
    computed once instead of n times, equal to float rounding (sums run in another order), not bit for bit.
    Models whose caches have no `write` (transformers' own forward) score every row in full.
    """
    if not share_prompts or not hasattr(cast(Policy, model).new_kv_cache(1), "write"):
        return last_logits(model, tokens[:, :-1], prompt_len - 1)
    distinct, rows = torch.unique(tokens[:, :prompt_len], dim=0, return_inverse=True)
    cache = SharedPrefix(rows)
    logits = last_logits(model, distinct, -1, kv_cache=cache, start_pos=0).index_select(0, rows)
    if tokens.shape[1] == prompt_len + 1:
        return logits
    tail = model(tokens[:, prompt_len:-1], kv_cache=cache, start_pos=prompt_len)
    return torch.cat([logits, tail], dim=1)
