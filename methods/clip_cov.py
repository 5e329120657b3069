"""Clip-Cov: detach the gradient of a random few high-covariance tokens.

    Cov_t as in covariance.py;  candidates = valid tokens not already clipped with lb < Cov_t < ub
    n = max(1, ⌊ratio · N_valid⌋) (0 when ratio = 0);  pick n candidates uniformly at random
    loss = aggregate(corr_t · ℓ_t),  corr_t = 0 on the picked tokens, 1 elsewhere
    ratio = 2e-4, lb = 1, ub = 5

High-covariance tokens (confident and rewarded) are the ones that lower entropy. Differences from verl's
``clip_cov`` loss: ℓ includes the shared dual clip, and ratio = 0 picks nothing (verl always picks ≥ 1).
The random pick uses torch's global generator, so a seeded run is reproducible.
Source: Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs", arXiv 2505.22617.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.aggregation import masked_mean
from steerbench.methods.batch import MethodError, PolicyBatch
from steerbench.methods.covariance import token_covariance
from steerbench.methods.grpo import GRPOConfig, grpo_shaper
from steerbench.methods.registry import MethodSpec, register
from steerbench.methods.surrogate import clipped_surrogate, ppo_loss


@dataclass
class ClipCovConfig(GRPOConfig):
    clip_cov_ratio: float = 2e-4  # fraction of valid tokens whose gradient is detached
    clip_cov_lb: float = 1.0  # lower bound of the covariance window
    clip_cov_ub: float = 5.0  # upper bound of the covariance window

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.clip_cov_ratio <= 1.0:
            raise MethodError(f"clip_cov_ratio={self.clip_cov_ratio} is out of range; it must be in [0, 1]")
        if self.clip_cov_lb >= self.clip_cov_ub:
            raise MethodError(f"clip_cov_lb={self.clip_cov_lb} must be below clip_cov_ub={self.clip_cov_ub}")


def clip_cov_mask(batch: PolicyBatch, cfg: ClipCovConfig) -> torch.Tensor:
    """corr: 0 on the randomly picked high-covariance tokens, 1 elsewhere."""
    corr = torch.ones_like(batch.advantages)
    n_valid = int(batch.response_mask.sum())
    n_pick = 0 if cfg.clip_cov_ratio == 0 else max(1, int(cfg.clip_cov_ratio * n_valid))
    if n_pick == 0:
        return corr
    terms = clipped_surrogate(batch, cfg)
    cov = token_covariance(batch.advantages, batch.log_prob, batch.mask)
    unclipped = ~(terms.clipped_high | terms.clipped_low)
    window = (cov > cfg.clip_cov_lb) & (cov < cfg.clip_cov_ub) & batch.response_mask.bool() & unclipped
    candidates = torch.nonzero(window)
    if len(candidates):
        picked = candidates[torch.randperm(len(candidates))[:n_pick]]
        corr[picked[:, 0], picked[:, 1]] = 0.0
    return corr


def clip_cov_loss(batch: PolicyBatch, cfg: ClipCovConfig) -> tuple[torch.Tensor, dict[str, float]]:
    corr = clip_cov_mask(batch, cfg)
    loss, metrics, _ = ppo_loss(batch, cfg, token_weights=corr)
    metrics["cov/frac_detached"] = masked_mean((corr == 0).to(corr.dtype), batch.mask).item()
    return loss, metrics


register(
    MethodSpec(
        name="clip_cov",
        kind="surrogate",
        config=ClipCovConfig,
        loss=clip_cov_loss,
        shaper=grpo_shaper,
        source="Cui et al. 2025, arXiv 2505.22617 (Clip-Cov)",
        summary="Cov=(A−Ā)(log π−mean log π); detach a random r=2e-4 of unclipped tokens with Cov in (1,5)",
    )
)
