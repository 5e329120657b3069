"""The PPO clipped surrogate with dual clip, shared by every method.

    r_t  = exp(clamp(log π_θ − log π_old, −20, 20))
    ℓ_t  = max(−A·r, −A·clip(r, 1−ε_low, 1+ε_high))            (Schulman et al. 2017; DAPO's ε_low/ε_high)
    ℓ_t  = min(ℓ_t, −A·c)   where A < 0                         (dual clip, Ye et al. 2020, c > 1)
    L    = aggregate(w_t · ℓ_t)                                 (w: a method's detached token weights)

Same arithmetic as verl 0.9.1's ``vanilla`` policy loss, so ``grpo`` equals it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerbench.methods.aggregation import AGG_MODES, aggregate, masked_mean
from steerbench.methods.batch import MethodError, PolicyBatch, validate_choice

CLIP_KNOBS = ("clip_low", "clip_high", "clip_c")  # the clipping a scenario sets (steerbench/clipping.py)


@dataclass
class SurrogateConfig:
    """Knobs shared by every method's PPO surrogate.

    The clipping defaults here are only the fallback: after ``steerbench.config.compose`` the run's
    scenario sets ``clip_low``, ``clip_high`` and ``clip_c`` for every method, except the knobs a method
    declares as its own mechanism (``MethodSpec.own_clipping``); see ``steerbench/clipping.py``.
    """

    clip_low: float = 0.2  # ε_low: r may fall to 1−ε_low before A<0 tokens stop getting gradient
    clip_high: float = 0.2  # ε_high: r may rise to 1+ε_high before A>0 tokens stop getting gradient
    clip_c: float = 3.0  # dual-clip bound c (>1) on the loss of A<0 tokens
    loss_agg_mode: str = "token-mean"  # one of AGG_MODES

    def __post_init__(self) -> None:
        if not 0.0 <= self.clip_low <= 1.0:  # 1: r may fall to 0, no lower clip (Clip-Cov's recipe)
            raise MethodError(f"clip_low={self.clip_low} is out of range; it must be in [0, 1]")
        if self.clip_high < 0.0:
            raise MethodError(f"clip_high={self.clip_high} is out of range; it must be ≥ 0")
        if self.clip_c <= 1.0:
            raise MethodError(f"clip_c={self.clip_c} is out of range; dual clip needs c > 1")
        validate_choice("loss_agg_mode", self.loss_agg_mode, AGG_MODES)


@dataclass
class SurrogateTerms:
    """Per-token pieces of the surrogate, for methods that reweight or mask it."""

    losses: torch.Tensor  # ℓ_t after clipping and dual clip
    ratio: torch.Tensor  # r_t
    clipped_high: torch.Tensor  # A>0 and r>1+ε_high: no gradient (bool)
    clipped_low: torch.Tensor  # A<0 and r<1−ε_low: no gradient (bool)
    clipped_dual: torch.Tensor  # A<0 and the dual clip is active (bool)


def importance_ratio(log_prob: torch.Tensor, old_log_prob: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0))


def clipped_surrogate(batch: PolicyBatch, cfg: SurrogateConfig) -> SurrogateTerms:
    adv = batch.advantages
    ratio = importance_ratio(batch.log_prob, batch.old_log_prob)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    ppo = torch.maximum(unclipped, clipped)
    dual_bound = -adv * cfg.clip_c
    losses = torch.where(adv < 0, torch.minimum(dual_bound, ppo), ppo)
    with torch.no_grad():
        clip_active = clipped > unclipped
        return SurrogateTerms(
            losses=losses,
            ratio=ratio,
            clipped_high=clip_active & (adv > 0),
            clipped_low=clip_active & (adv < 0),
            clipped_dual=(ppo > dual_bound) & (adv < 0),
        )


def surrogate_metrics(batch: PolicyBatch, terms: SurrogateTerms) -> dict[str, float]:
    m = batch.mask
    with torch.no_grad():
        return {
            "clip/frac_high": masked_mean(terms.clipped_high.to(m.dtype), m).item(),
            "clip/frac_low": masked_mean(terms.clipped_low.to(m.dtype), m).item(),
            "clip/frac_dual": masked_mean(terms.clipped_dual.to(m.dtype), m).item(),
            "kl/approx_old": masked_mean(batch.old_log_prob - batch.log_prob.detach(), m).item(),
            "ratio/mean": masked_mean(terms.ratio.detach(), m).item(),
        }


def ppo_loss(
    batch: PolicyBatch, cfg: SurrogateConfig, token_weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, float], SurrogateTerms]:
    """Aggregate the clipped surrogate, optionally multiplied by detached per-token weights."""
    terms = clipped_surrogate(batch, cfg)
    losses = terms.losses if token_weights is None else terms.losses * token_weights.detach()
    loss = aggregate(losses, batch.mask, cfg.loss_agg_mode)
    metrics = surrogate_metrics(batch, terms)
    metrics["loss/pg"] = loss.item()
    return loss, metrics, terms
