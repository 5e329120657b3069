"""Clip-Cov: detach the gradient of a random few high-covariance tokens; the covariance rule replaces
ratio clipping.

    per unit u (one micro-batch of ``cov_group_size`` sequences, as verl calls the loss; or the batch):
      Cov_t = (A_t − Ā_u)(log π_t − mean_u log π)          (Eq. 11; means over u's valid tokens)
      candidates = valid tokens of u not already clipped, with lb < Cov_t < ub
      n = max(1, ⌊ratio · N_valid(u)⌋) (0 when ratio = 0);  pick n candidates uniformly at random
    loss = aggregate(corr_t · ℓ_t),  corr_t = 0 on the picked tokens, 1 elsewhere
    ratio = 2e-4, lb = 1, ub = 5;  ε_low = ε_high = 1, c = 10      (recipe/dapo/7b_clip_cov.sh, 32b_clip_cov.sh)

High-covariance tokens (confident and rewarded) are the ones that lower entropy. The published recipe
sets ε = 1/1 (r may fall to 0 and rise to 2) and c = 10, so PPO clipping is nearly off; that clipping is
this method's own (``own_clipping``) and stays in every scenario. Differences from the official loss:
ℓ includes the shared dual clip (c = 10 bounds A<0 tokens at r > 10), and ratio = 0 picks nothing.
The unit: verl calls the loss once per micro-batch, so the official covariance is over one micro-batch
(the recipe's dynamic batching packs ≤ 20,480 tokens per GPU; ``ppo_micro_batch_size_per_gpu`` = 8);
``cov_group=microbatch`` takes it over consecutive slices of ``cov_group_size`` sequences of whatever
batch the loss gets, ``cov_group=batch`` over all of it.
The random pick uses torch's global generator (of the batch's device), so a seeded run is reproducible.
Source: Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs", arXiv 2505.22617.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.aggregation import masked_mean
from steerbench.methods.batch import MethodError, PolicyBatch, blocks, unit_rows, unit_slices, validate_unit
from steerbench.methods.covariance import token_covariance
from steerbench.methods.grpo import GRPOConfig, grpo_shaper
from steerbench.methods.registry import MethodSpec, register
from steerbench.methods.surrogate import clipped_surrogate, ppo_loss


@dataclass
class ClipCovConfig(GRPOConfig):
    clip_low: float = 1.0  # the recipe's ε_low: no lower ratio clip
    clip_high: float = 1.0  # the recipe's ε_high: r clipped at 2
    clip_c: float = 10.0  # the recipe's clip_ratio_c
    clip_cov_ratio: float = 2e-4  # fraction of valid tokens whose gradient is detached (per unit)
    clip_cov_lb: float = 1.0  # lower bound of the covariance window
    clip_cov_ub: float = 5.0  # upper bound of the covariance window
    cov_group: str = "microbatch"  # the covariance unit: "microbatch" (as verl calls the loss) | "batch"
    cov_group_size: int = 8  # sequences per micro-batch (the recipe's ppo_micro_batch_size_per_gpu)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.clip_cov_ratio <= 1.0:
            raise MethodError(f"clip_cov_ratio={self.clip_cov_ratio} is out of range; it must be in [0, 1]")
        if self.clip_cov_lb >= self.clip_cov_ub:
            raise MethodError(f"clip_cov_lb={self.clip_cov_lb} must be below clip_cov_ub={self.clip_cov_ub}")
        validate_unit("cov_group", self.cov_group, "cov_group_size", self.cov_group_size)


def clip_cov_mask(batch: PolicyBatch, cfg: ClipCovConfig) -> torch.Tensor:
    """corr: 0 on the randomly picked high-covariance tokens, 1 elsewhere.

    On the CPU the official loop (``nonzero`` + ``randperm`` per unit: the draws every committed run made);
    on an accelerator, where each iteration of that loop waits for the host, every unit at once
    (:func:`pick_by_rank`): the same distribution, another random stream."""
    if cfg.clip_cov_ratio == 0:
        return torch.ones_like(batch.advantages)
    terms = clipped_surrogate(batch, cfg)
    unclipped = ~(terms.clipped_high | terms.clipped_low)
    pick = pick_by_permutation if batch.advantages.device.type == "cpu" else pick_by_rank
    return pick(batch, unclipped, cfg)


def pick_by_permutation(batch: PolicyBatch, unclipped: torch.Tensor, cfg: ClipCovConfig) -> torch.Tensor:
    """The official pick, one unit at a time: a random permutation of the unit's candidates, its first n."""
    corr = torch.ones_like(batch.advantages)
    for rows in unit_slices(batch.log_prob.shape[0], cfg.cov_group, cfg.cov_group_size):
        mask = batch.response_mask[rows]
        cov = token_covariance(batch.advantages[rows], batch.log_prob[rows], batch.mask[rows])
        window = (cov > cfg.clip_cov_lb) & (cov < cfg.clip_cov_ub) & mask.bool() & unclipped[rows]
        candidates = torch.nonzero(window)
        n_pick = max(1, int(cfg.clip_cov_ratio * int(mask.sum())))
        if len(candidates):
            picked = candidates[torch.randperm(len(candidates))[:n_pick]]
            corr[rows][picked[:, 0], picked[:, 1]] = 0.0
    return corr


def pick_by_rank(batch: PolicyBatch, unclipped: torch.Tensor, cfg: ClipCovConfig) -> torch.Tensor:
    """The same pick for every unit at once, without a host synchronisation: each token gets a uniform
    random key (non-candidates the key 2), and a unit's n candidates with the smallest keys are picked,
    a uniform random subset of min(n, #candidates)."""
    rows, length = batch.log_prob.shape
    size = unit_rows(rows, cfg.cov_group, cfg.cov_group_size)
    with torch.no_grad():
        mask = blocks(batch.mask, size, 0.0)
        count = mask.sum(1, keepdim=True).clamp_min(1)

        def centred(x: torch.Tensor) -> torch.Tensor:  # x − its unit's mean over valid tokens
            x = blocks(x.detach(), size, 0.0)
            return x - (x * mask).sum(1, keepdim=True) / count

        cov = centred(batch.advantages) * centred(batch.log_prob)
        valid = blocks(batch.response_mask.bool(), size, False)
        window = (cov > cfg.clip_cov_lb) & (cov < cfg.clip_cov_ub) & valid & blocks(unclipped, size, False)
        n_pick = (valid.sum(1, keepdim=True).double() * cfg.clip_cov_ratio).floor().clamp_min(1)
        keys = torch.rand(window.shape, device=window.device).masked_fill_(~window, 2.0)
        rank = keys.argsort(1).argsort(1)
        picked = (window & (rank < n_pick)).reshape(-1, length)[:rows]
    return torch.where(picked, 0.0, 1.0).to(batch.advantages.dtype)


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
        source="Cui et al. 2025, arXiv 2505.22617 (Clip-Cov; recipe/dapo/*clip_cov.sh)",
        summary="Cov=(A−Ā)(log π−mean log π) per micro-batch; detach a random r=2e-4 of unclipped tokens with "
        "Cov in (1,5); its recipe's clipping ε=1/1, c=10",
        own_clipping=("clip_low", "clip_high", "clip_c"),
    )
)
