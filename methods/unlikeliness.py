"""Unlikeliness reward: among a group's correct samples, reward the unlikely ones more.

    rank_i  = position of sample i among the group's correct samples, sorted by mean token log π_old
              ascending (least likely correct sample = rank 0)
    R'_i    = R_i · (1 − β · rank_i / G)   for correct i,    R'_i = R_i otherwise,    β = 0.25
    A       = GRPO group normalisation of R'

A sequence-level counter to the sharpening of likely solutions (pass@k rises with diversity).
Source: He et al. 2025, "Rewarding the Unlikely", arXiv 2506.02355.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.batch import MethodError
from steerbench.methods.grpo import GRPOConfig, group_normalised_advantages, grpo_loss
from steerbench.methods.registry import MethodSpec, register


@dataclass
class UnlikelinessConfig(GRPOConfig):
    beta: float = 0.25  # β_rank: how much the most likely correct sample's reward shrinks

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.beta <= 1.0:
            raise MethodError(f"beta={self.beta} is out of range; it must be in [0, 1]")


def likelihood_ranks(
    seq_log_prob: torch.Tensor, group_index: torch.Tensor, correct: torch.Tensor
) -> torch.Tensor:
    """Rank of each correct sample within its group by likelihood (0 = least likely); 0 for incorrect."""
    ranks = torch.zeros_like(seq_log_prob)
    for g in torch.unique(group_index):
        members = torch.nonzero((group_index == g) & correct).flatten()
        order = torch.argsort(seq_log_prob[members], stable=True)
        ranks[members[order]] = torch.arange(len(members), dtype=ranks.dtype)
    return ranks


def unlikeliness_advantages(
    rewards: torch.Tensor,
    group_index: torch.Tensor,
    seq_log_prob: torch.Tensor | None,
    cfg: UnlikelinessConfig,
) -> torch.Tensor:
    assert seq_log_prob is not None
    correct = rewards > 0
    group_sizes = torch.zeros_like(rewards)
    for g in torch.unique(group_index):
        members = group_index == g
        group_sizes[members] = members.sum().to(rewards.dtype)
    ranks = likelihood_ranks(seq_log_prob.to(rewards.dtype), group_index, correct)
    shaped = torch.where(correct, rewards * (1 - cfg.beta * ranks / group_sizes), rewards)
    return group_normalised_advantages(shaped, group_index, cfg.norm_adv_by_std)


register(
    MethodSpec(
        name="unlikeliness",
        kind="shaper",
        config=UnlikelinessConfig,
        loss=grpo_loss,
        shaper=unlikeliness_advantages,
        source="He et al. 2025, arXiv 2506.02355",
        summary="correct R × (1 − β·rank/G), rank by mean log π_old in group (least likely = 0), then GRPO; β=0.25",
        needs=("seq_log_prob",),
    )
)
