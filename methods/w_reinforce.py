"""W-REINFORCE and its two halves, PSR and NSR: fixed, sign-dependent advantages, no group normalisation.

Zhu et al. split the RLVR objective into Positive and Negative Sample Reinforcement. With 0/1
correctness (R > 0 counts as correct):

    objective  correct  incorrect  trains on
    w          λ        −1         every sample (λ·L_PSR + L_NSR; λ = 0.1)
    psr        +1       0          correct samples only (the release drops the incorrect ones)
    nsr        0        −1         incorrect samples only (the release drops the correct ones)

The release drops the other samples from the batch before the update (``batch.subset``); here they stay
with A = 0, so they carry no gradient but still count in the loss's normaliser: under token-mean the
update is the release's scaled by the kept share of tokens (the same on both backends; Adam's
normalisation absorbs most of a constant scale). Down-weighting positive samples keeps entropy up
(the positive samples are what sharpen the policy).
Source: Zhu et al. 2025, "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning",
arXiv 2506.01347; release ``compute_psr_nsr_outcome_advantage`` (TianHongZXY/RLVR-Decomposed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.batch import MethodError, validate_choice
from steerbench.methods.grpo import GRPOConfig, grpo_loss
from steerbench.methods.registry import MethodSpec, register

OBJECTIVES = ("w", "psr", "nsr")


@dataclass
class WReinforceConfig(GRPOConfig):
    objective: str = "w"  # "w" (λ·PSR + NSR) | "psr" (correct samples only) | "nsr" (incorrect samples only)
    positive_weight: float = 0.1  # λ: advantage of a correct response in objective w

    def __post_init__(self) -> None:
        super().__post_init__()
        validate_choice("objective", self.objective, OBJECTIVES)
        if self.positive_weight < 0:
            raise MethodError(f"positive_weight={self.positive_weight} is out of range; it must be ≥ 0")


def w_reinforce_advantages(
    rewards: torch.Tensor, group_index: torch.Tensor, seq_log_prob: torch.Tensor | None, cfg: WReinforceConfig
) -> torch.Tensor:
    correct = rewards > 0
    positive = {"w": cfg.positive_weight, "psr": 1.0, "nsr": 0.0}[cfg.objective]
    negative = 0.0 if cfg.objective == "psr" else -1.0
    return torch.where(correct, torch.full_like(rewards, positive), torch.full_like(rewards, negative))


register(
    MethodSpec(
        name="w_reinforce",
        kind="shaper",
        config=WReinforceConfig,
        loss=grpo_loss,
        shaper=w_reinforce_advantages,
        source="Zhu et al. 2025, arXiv 2506.01347 (release: RLVR-Decomposed)",
        summary="objective w: A=λ correct, −1 incorrect (λ=0.1); psr: +1 on correct only; nsr: −1 on incorrect "
        "only; no group normalisation",
    )
)
