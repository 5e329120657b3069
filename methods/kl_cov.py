"""KL-Cov: a KL brake on the tokens of highest covariance, in place of clipping.

    Cov_t as in covariance.py;  S = the top ⌈k·N_valid⌉ (at least 1) valid tokens by Cov
    ℓ_t = −A_t·r_t + β·|log π_θ − log π_old|   on S,      ℓ_t = −A_t·r_t elsewhere (no clipping)
    loss = aggregate(ℓ_t)

Two published variants, chosen explicitly with ``variant``:
    verl        k = 2e-4,  β = 0.1   (verl ``kl_cov_ratio`` / ``ppo_kl_coef`` defaults)
    paper_repo  k = 2e-3 (0.2%),  β = 1.0   (PRIME-RL/Entropy-Mechanism-of-RL scripts, the STEER repo)
``kl_cov_ratio`` and ``kl_coef`` override the variant's values when set.
Source: Cui et al. 2025, arXiv 2505.22617 (KL-Cov).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.aggregation import aggregate, masked_mean
from steerbench.methods.batch import MethodError, PolicyBatch, validate_choice
from steerbench.methods.covariance import token_covariance
from steerbench.methods.grpo import GRPOConfig, grpo_shaper
from steerbench.methods.registry import MethodSpec, register
from steerbench.methods.surrogate import clipped_surrogate, importance_ratio, surrogate_metrics

VARIANTS = {"verl": (2e-4, 0.1), "paper_repo": (2e-3, 1.0)}


@dataclass
class KLCovConfig(GRPOConfig):
    variant: str = "paper_repo"  # "verl" | "paper_repo": which published (k, β) pair
    kl_cov_ratio: float | None = None  # k: fraction of valid tokens that get the KL term (None: variant's)
    kl_coef: float | None = None  # β: weight of |log π − log π_old| (None: variant's)

    def __post_init__(self) -> None:
        super().__post_init__()
        validate_choice("variant", self.variant, VARIANTS)
        ratio, coef = VARIANTS[self.variant]
        self.kl_cov_ratio = ratio if self.kl_cov_ratio is None else self.kl_cov_ratio
        self.kl_coef = coef if self.kl_coef is None else self.kl_coef
        if not 0.0 < self.kl_cov_ratio <= 1.0:
            raise MethodError(f"kl_cov_ratio={self.kl_cov_ratio} is out of range; it must be in (0, 1]")
        if self.kl_coef < 0:
            raise MethodError(f"kl_coef={self.kl_coef} is out of range; it must be ≥ 0")


def kl_cov_selection(batch: PolicyBatch, ratio: float) -> torch.Tensor:
    """Boolean mask of the top-k valid tokens by covariance."""
    cov = token_covariance(batch.advantages, batch.log_prob, batch.mask)
    valid = batch.response_mask.bool()
    n_pick = max(1, int(ratio * int(valid.sum())))
    flat = torch.where(valid, cov, torch.full_like(cov, -torch.inf)).flatten()
    selected = torch.zeros_like(flat, dtype=torch.bool)
    selected[torch.topk(flat, n_pick).indices] = True
    return selected.view_as(cov)


def kl_cov_loss(batch: PolicyBatch, cfg: KLCovConfig) -> tuple[torch.Tensor, dict[str, float]]:
    assert cfg.kl_cov_ratio is not None and cfg.kl_coef is not None
    ratio = importance_ratio(batch.log_prob, batch.old_log_prob)
    pg = -batch.advantages * ratio
    selected = kl_cov_selection(batch, cfg.kl_cov_ratio)
    brake = cfg.kl_coef * (batch.log_prob - batch.old_log_prob).abs()
    losses = torch.where(selected, pg + brake, pg)
    loss = aggregate(losses, batch.mask, cfg.loss_agg_mode)
    metrics = surrogate_metrics(batch, clipped_surrogate(batch, cfg))
    metrics["loss/pg"] = loss.item()
    metrics["cov/frac_kl"] = masked_mean(selected.to(losses.dtype), batch.mask).item()
    return loss, metrics


register(
    MethodSpec(
        name="kl_cov",
        kind="surrogate",
        config=KLCovConfig,
        loss=kl_cov_loss,
        shaper=grpo_shaper,
        source="Cui et al. 2025, arXiv 2505.22617 (KL-Cov)",
        summary="top-k tokens by Cov get +β|log π−log π_old|, no clipping; variant verl (k=2e-4, β=0.1) or "
        "paper_repo (k=0.2%, β=1)",
    )
)
