"""KL penalty to a reference policy, added to the GRPO surrogate.

    KL_t = exp(log π_ref − log π_θ) − (log π_ref − log π_θ) − 1     (k3 / verl "low_var_kl", clamped to ±10)
    loss = PPO surrogate + β · aggregate(KL_t),    β = 0.001

k3 is an unbiased, non-negative estimator of KL(π_θ‖π_ref) (Schulman 2020, "Approximating KL divergence").
Source: verl ``kl_penalty(..., "low_var_kl")``; β is verl's default ``kl_loss_coef``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.aggregation import aggregate
from steerbench.methods.batch import MethodError, PolicyBatch
from steerbench.methods.grpo import GRPOConfig, grpo_shaper
from steerbench.methods.registry import MethodSpec, register
from steerbench.methods.surrogate import ppo_loss


@dataclass
class KLConfig(GRPOConfig):
    beta: float = 0.001  # weight of the KL term

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta < 0:
            raise MethodError(f"beta={self.beta} is out of range; it must be ≥ 0")


def k3_kl(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    log_ratio = ref_log_prob - log_prob
    return torch.clamp(torch.exp(log_ratio) - log_ratio - 1, min=-10.0, max=10.0)


def kl_loss(batch: PolicyBatch, cfg: KLConfig) -> tuple[torch.Tensor, dict[str, float]]:
    assert batch.ref_log_prob is not None
    pg, metrics, _ = ppo_loss(batch, cfg)
    kl = aggregate(k3_kl(batch.log_prob, batch.ref_log_prob), batch.mask, cfg.loss_agg_mode)
    metrics["kl/mean"] = kl.item()
    return pg + cfg.beta * kl, metrics


register(
    MethodSpec(
        name="kl",
        kind="loss term",
        config=KLConfig,
        loss=kl_loss,
        shaper=grpo_shaper,
        source="verl low_var_kl (k3); Schulman 2020",
        summary="+β·KL(π‖π_ref), k3 estimator, β=0.001",
        needs=("ref_log_prob",),
    )
)
