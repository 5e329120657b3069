"""Unlikeliness reward: scale each 0/1 score down by the sample's likelihood rank in its group.

    s_i     = 1 if R_i > 0 else 0                       (0/1 correctness: the release's scores, on both backends)
    rank_i  = argsort(argsort(ℓ_g))_i over ALL G samples of i's group g, ℓ_i = mean token log π_old of i
              (least likely = rank 0, most likely = G − 1; ties broken by position, stably)
    s'_i    = s_i · (1 − β · rank_i / G),    β = 0.25   (incorrect samples stay 0)
    A       = GRPO group normalisation of s' (unbiased std, ε = 1e-6)

Example (G = 8, β = 0.25): two correct samples at ranks 4 and 7 score 0.875 and 0.78125, the other six 0;
their advantages differ by 0.09375 / std(s') = 0.244.
Ranks run over every sample, so a correct sample is pushed down by the incorrect ones more likely than
it. A ±1 verifier (the verl reward) is mapped to 0/1 here, because the shaping is not affine-invariant.
A sequence-level counter to the sharpening of likely solutions (pass@k rises with diversity).
Source: He et al. 2025, "Rewarding the Unlikely", arXiv 2506.02355; release code
``verl/trainer/ppo/ray_lean_trainer.py::_compute_advantages`` (AndreHe02/rewarding-unlikely-release).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.batch import MethodError
from steerbench.methods.grpo import GRPOConfig, group_normalised_advantages, grpo_loss
from steerbench.methods.registry import MethodSpec, register


@dataclass
class UnlikelinessConfig(GRPOConfig):
    beta: float = 0.25  # β (the release's rank_penalty): the most likely sample keeps 1 − β·(G−1)/G

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.beta <= 1.0:
            raise MethodError(f"beta={self.beta} is out of range; it must be in [0, 1]")


def likelihood_rank_fractions(seq_log_prob: torch.Tensor, group_index: torch.Tensor) -> torch.Tensor:
    """rank/G of each sample among all samples of its group by likelihood (0 = least likely)."""
    fractions = torch.zeros_like(seq_log_prob)
    for g in torch.unique(group_index):
        members = torch.nonzero(group_index == g).flatten()
        order = torch.argsort(seq_log_prob[members], stable=True)
        ranks = torch.empty_like(order)
        ranks[order] = torch.arange(len(members))
        fractions[members] = ranks.to(seq_log_prob.dtype) / len(members)
    return fractions


def unlikeliness_advantages(
    rewards: torch.Tensor,
    group_index: torch.Tensor,
    seq_log_prob: torch.Tensor | None,
    cfg: UnlikelinessConfig,
) -> torch.Tensor:
    assert seq_log_prob is not None
    scores = (rewards > 0).to(rewards.dtype)
    fractions = likelihood_rank_fractions(seq_log_prob.to(rewards.dtype), group_index)
    return group_normalised_advantages(scores * (1 - cfg.beta * fractions), group_index, cfg.norm_adv_by_std)


register(
    MethodSpec(
        name="unlikeliness",
        kind="shaper",
        config=UnlikelinessConfig,
        loss=grpo_loss,
        shaper=unlikeliness_advantages,
        source="He et al. 2025, arXiv 2506.02355 (release: ray_lean_trainer.py)",
        summary="0/1 score × (1 − β·rank/G), rank over all G by mean log π_old (least likely = 0), then GRPO; "
        "β=0.25",
        needs=("seq_log_prob",),
    )
)
