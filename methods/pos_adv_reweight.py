"""Positive-Advantage Reweighting: scale the PG loss of positive-advantage tokens by λ ∈ [0, 1].

    w_t = λ  if A_t > 0,   1 otherwise;      loss = aggregate(w_t · ℓ_t)      (ℓ: PPO surrogate)

Positive tokens concentrate probability mass, so shrinking them slows entropy collapse. λ follows a
schedule, updated once per training step s of T (H_s: mean token entropy of the policy at step s):

    constant        λ = weight
    stage           λ = 0 for s < T/2, then linear from 0 to 1 over the second half
    epoch           λ = (e − 1)/(E − 1) for epoch e of E = num_epochs equal slices of training
    entropy_guided  λ_{s+1} = clip(λ_s − Δ, 0, 1) if H_s < δ else clip(λ_s + Δ, 0, 1);
                    δ = 0.2, Δ = 0.05, λ_0 = 0 (the recommended schedule)

Source: Jin et al. 2025, "Positive-Advantage Reweighting" (REFERENCES.md B.3, C.12).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from steerbench.methods.aggregation import masked_mean
from steerbench.methods.batch import MethodError, PolicyBatch, validate_choice
from steerbench.methods.grpo import GRPOConfig, grpo_shaper
from steerbench.methods.registry import MethodSpec, register
from steerbench.methods.surrogate import ppo_loss

SCHEDULES = ("constant", "stage", "epoch", "entropy_guided")


@dataclass
class PosAdvReweightConfig(GRPOConfig):
    weight: float = 0.0  # λ for A>0 tokens at this step (λ_0 for the entropy-guided schedule)
    schedule: str = "entropy_guided"  # one of SCHEDULES
    entropy_target: float = 0.2  # δ of the entropy-guided schedule (nats)
    weight_step: float = 0.05  # Δ of the entropy-guided schedule
    num_epochs: int = 4  # E of the epoch schedule

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.weight <= 1.0:
            raise MethodError(f"weight={self.weight} is out of range; λ must be in [0, 1]")
        validate_choice("schedule", self.schedule, SCHEDULES)
        if self.weight_step < 0 or self.num_epochs < 1:
            raise MethodError("weight_step must be ≥ 0 and num_epochs ≥ 1")


def next_weight(cfg: PosAdvReweightConfig, progress: dict[str, float]) -> PosAdvReweightConfig:
    """λ for the next step; ``progress`` holds ``step`` (just finished, 0-based), ``total_steps``, ``entropy``."""
    nxt, total = int(progress["step"]) + 1, int(progress["total_steps"])
    if cfg.schedule == "constant":
        weight = cfg.weight
    elif cfg.schedule == "stage":
        half = total // 2
        weight = 0.0 if nxt < half else min(1.0, (nxt - half) / max(total - 1 - half, 1))
    elif cfg.schedule == "epoch":
        epoch = min(nxt * cfg.num_epochs // max(total, 1), cfg.num_epochs - 1) + 1
        weight = 1.0 if cfg.num_epochs == 1 else (epoch - 1) / (cfg.num_epochs - 1)
    else:
        step = -cfg.weight_step if progress["entropy"] < cfg.entropy_target else cfg.weight_step
        weight = min(1.0, max(0.0, cfg.weight + step))
    return dataclasses.replace(cfg, weight=weight)


def pos_adv_reweight_loss(
    batch: PolicyBatch, cfg: PosAdvReweightConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    weights = torch.where(batch.advantages > 0, torch.full_like(batch.advantages, cfg.weight), 1.0)
    loss, metrics, _ = ppo_loss(batch, cfg, token_weights=weights)
    metrics["posadv/weight"] = cfg.weight
    metrics["posadv/token_weight_mean"] = masked_mean(weights, batch.mask).item()
    return loss, metrics


register(
    MethodSpec(
        name="pos_adv_reweight",
        kind="token weights",
        config=PosAdvReweightConfig,
        loss=pos_adv_reweight_loss,
        shaper=grpo_shaper,
        source="Jin et al. 2025, Positive-Advantage Reweighting",
        summary="w=λ on A>0 tokens, 1 otherwise; λ schedules constant|stage|epoch|entropy_guided (δ=0.2, Δ=0.05, λ₀=0)",
        schedule=next_weight,
    )
)
