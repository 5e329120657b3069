"""GRPO: group-normalised advantages and the PPO clipped surrogate (the baseline).

    A_i = (R_i − mean_{j∈g(i)} R_j) / (std_{j∈g(i)} R_j + ε)      ε = 1e-6, std unbiased as torch.std;
                                                                 a group of one gets mean 0, std 1
    loss = PPO surrogate with the scenario's ε_low, ε_high and dual clip c (standard: 0.2/0.2, c = 3,
           verl's defaults), token-mean

Source: Shao et al. 2024 (DeepSeekMath, arXiv 2402.03300); verl ``compute_grpo_outcome_advantage``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.batch import PolicyBatch
from steerbench.methods.registry import MethodSpec, register
from steerbench.methods.surrogate import SurrogateConfig, ppo_loss


@dataclass
class GRPOConfig(SurrogateConfig):
    norm_adv_by_std: bool = True  # divide by the group's reward std (False: Dr. GRPO's mean-only centring)


def group_normalised_advantages(
    rewards: torch.Tensor, group_index: torch.Tensor, norm_by_std: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    advantages = torch.empty_like(rewards)
    for g in torch.unique(group_index):
        members = group_index == g
        r = rewards[members]
        if r.numel() == 1:
            mean, std = torch.zeros_like(r[0]), torch.ones_like(r[0])
        else:
            mean, std = r.mean(), r.std()
        centred = r - mean
        advantages[members] = centred / (std + eps) if norm_by_std else centred
    return advantages


def grpo_shaper(
    rewards: torch.Tensor, group_index: torch.Tensor, seq_log_prob: torch.Tensor | None, cfg: GRPOConfig
):
    return group_normalised_advantages(rewards, group_index, cfg.norm_adv_by_std)


def grpo_loss(batch: PolicyBatch, cfg: SurrogateConfig) -> tuple[torch.Tensor, dict[str, float]]:
    loss, metrics, _ = ppo_loss(batch, cfg)
    return loss, metrics


register(
    MethodSpec(
        name="grpo",
        kind="baseline",
        config=GRPOConfig,
        loss=grpo_loss,
        shaper=grpo_shaper,
        source="Shao et al. 2024, arXiv 2402.03300; verl core_algos",
        summary="A=(R−mean_g R)/(std_g R+1e-6); PPO clip and dual clip of the scenario; token-mean",
    )
)
