"""Entropy bonus: subtract α times the mean token entropy of the current policy.

    loss = PPO surrogate − α · aggregate(H_t),   α = 0.001

H_t must carry gradient (a frequent bug elsewhere: a detached entropy makes the bonus a constant).
In a tabular softmax ΔH_bonus = η·α·Σ_j [π_j(log π_j + H)]² ≥ 0, so it raises entropy at every token
(REFERENCES.md A.5). Source: verl ``entropy_coeff`` (the STEER runs use 0).
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
class EntropyBonusConfig(GRPOConfig):
    alpha: float = 0.001  # entropy coefficient

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha < 0:
            raise MethodError(f"alpha={self.alpha} is out of range; it must be ≥ 0")


def entropy_bonus_loss(batch: PolicyBatch, cfg: EntropyBonusConfig) -> tuple[torch.Tensor, dict[str, float]]:
    assert batch.entropy is not None
    pg, metrics, _ = ppo_loss(batch, cfg)
    entropy = aggregate(batch.entropy, batch.mask, cfg.loss_agg_mode)
    metrics["entropy/bonus_term"] = entropy.item()
    return pg - cfg.alpha * entropy, metrics


register(
    MethodSpec(
        name="entropy_bonus",
        kind="loss term",
        config=EntropyBonusConfig,
        loss=entropy_bonus_loss,
        shaper=grpo_shaper,
        source="verl entropy_coeff; Williams & Peng 1991",
        summary="−α·H̄ (mean token entropy, with gradient), α=0.001",
        needs=("entropy_grad",),
    )
)
