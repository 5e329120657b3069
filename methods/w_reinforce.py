"""W-REINFORCE: a fixed, sign-dependent advantage with no group normalisation.

    A_i = λ   if response i is correct (reward > 0),     A_i = −1 otherwise,     λ = 0.1

Down-weighting positive samples keeps entropy up (the positive samples are what sharpen the policy).
Source: Zhu et al. 2025, "The Surprising Effectiveness of Negative Reinforcement", arXiv 2506.01347.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.batch import MethodError
from steerbench.methods.grpo import GRPOConfig, grpo_loss
from steerbench.methods.registry import MethodSpec, register


@dataclass
class WReinforceConfig(GRPOConfig):
    positive_weight: float = 0.1  # λ: advantage of a correct response (incorrect ones get −1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.positive_weight < 0:
            raise MethodError(f"positive_weight={self.positive_weight} is out of range; it must be ≥ 0")


def w_reinforce_advantages(
    rewards: torch.Tensor, group_index: torch.Tensor, seq_log_prob: torch.Tensor | None, cfg: WReinforceConfig
) -> torch.Tensor:
    correct = rewards > 0
    return torch.where(correct, torch.full_like(rewards, cfg.positive_weight), torch.full_like(rewards, -1.0))


register(
    MethodSpec(
        name="w_reinforce",
        kind="shaper",
        config=WReinforceConfig,
        loss=grpo_loss,
        shaper=w_reinforce_advantages,
        source="Zhu et al. 2025, arXiv 2506.01347",
        summary="A=λ for correct, A=−1 for incorrect, no group normalisation; λ=0.1",
    )
)
