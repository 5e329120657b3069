"""Loss aggregation: how a ``(batch, response_len)`` loss matrix becomes one scalar.

Definitions follow verl's ``agg_loss`` (single data-parallel rank), with m the response mask:

    token-mean               Σ ℓ·m / Σ m
    token-sum                Σ ℓ·m
    seq-mean-token-sum       mean over sequences with a valid token of Σ_t ℓ·m
    seq-mean-token-mean      mean over sequences with a valid token of (Σ_t ℓ·m / Σ_t m)
    seq-mean-token-sum-norm  seq-mean-token-sum / response_len   (Dr. GRPO, arXiv 2503.20783)
"""

from __future__ import annotations

import torch

from steerbench.methods.batch import MethodError

AGG_MODES = (
    "token-mean",
    "token-sum",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1)


def aggregate(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    mask = mask.to(loss_mat.dtype)
    if mode == "token-mean":
        return (loss_mat * mask).sum() / mask.sum()
    if mode == "token-sum":
        return (loss_mat * mask).sum()
    tokens_per_seq = mask.sum(dim=-1)
    has_tokens = (tokens_per_seq > 0).to(loss_mat.dtype)
    seq_sum = (loss_mat * mask).sum(dim=-1)
    if mode in ("seq-mean-token-sum", "seq-mean-token-sum-norm"):
        loss = (seq_sum * has_tokens).sum() / has_tokens.sum()
        return loss / loss_mat.shape[-1] if mode == "seq-mean-token-sum-norm" else loss
    if mode == "seq-mean-token-mean":
        seq_mean = seq_sum / (tokens_per_seq + 1e-8)
        return (seq_mean * has_tokens).sum() / has_tokens.sum()
    raise MethodError(f"unknown loss_agg_mode {mode!r}; choose one of {', '.join(AGG_MODES)}")
