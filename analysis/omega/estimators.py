"""First-order predictions of the per-token entropy change ΔH = H_after(s_t) − H_before(s_t).

Every estimator returns the *predicted ΔH* (positive = the entropy at that prefix rises), shape
``(batch, response_len)``, from per-token tensors collected in :class:`EstimatorInputs`. Notation, per
response token t with sampled token k, state s_t, temperature-scaled policy π = softmax(z/τ):

    π = π_θ(k|s_t),  r = π/π_old,  A = advantage,  H = H(π(·|s_t)),  I_clip = 1 unless PPO clipped the token
    E = Σ_j π_j²(log π_j + H)   (needs the full logits; collected during the measurement)
    η = learning rate,  c_t = the token's aggregation weight in the loss (1/L for token-mean; × STEER's w_t)

    steer_release  −(A/π_old)·π(1−π)(log π + H)                      STEER release Ω, negated; scale-free
                                                                     (no η, no c_t, no I_clip; REFERENCES A.3 c)
    steer_paper    −η·c_t·I_clip·r·A·π(1−π)(log π + H)               Theorem 1 as read by two re-implementations;
                                                                     exact if only the sampled logit moves
                                                                     by η·c_t·r·A·(1−π) (A.3 b)
    softmax_full   −η·c_t·I_clip·r·A·[π(log π + H) − E]               exact first order for a tabular softmax
                                                                     (every logit of s_t moves, SGD on logits;
                                                                     A.3 b; DESIGN "Ω validation")
    cov            −η·(A − Ā)(log π − mean log π) / N                 Cui et al. 2025 (arXiv 2505.22617) per-token
                                                                     centred cross-product, the summand of their
                                                                     ΔH ≈ −η·Cov(log π, A); means over the N valid
                                                                     tokens of the batch
    jvp            ∇_θ H(s_t) · Δθ                                    the real network's exact first order with the
                                                                     real step Δθ (see ``omega.jvp_entropy_change``)

The temperature enters as a factor 1/τ on every logit gradient; η here is the effective step on z/τ,
i.e. the measurement passes η/τ² when τ ≠ 1 (see ``omega``). ``steer_release`` and ``cov`` are
meaningful up to scale only: judge them by Pearson, Spearman and sign agreement, not by slope or MSE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from steerbench.methods.steer import omega_release

PROB_CLAMP = (1e-8, 1.0 - 1e-8)  # the release's clamp on π_θ


@dataclass
class EstimatorInputs:
    """Per-token tensors, all ``(batch, response_len)``, detached; padding positions are ignored.

    log_prob       log π_θ(k|s_t) at the sampling temperature, before the step
    old_log_prob   log π_old(k|s_t) (equal to log_prob for a fresh on-policy step: r = 1)
    advantages     A_t
    entropy        H(π_θ(·|s_t)) before the step, nats
    response_mask  1 on valid response tokens
    expected_term  E_t = Σ_j π_j²(log π_j + H) before the step (softmax_full only)
    clip_active    1 where the token still gets a PPO gradient (I_clip), else 0; None → all 1
    agg_weight     c_t, the token's weight in the loss aggregation; None → token-mean 1/L
    lr             η, the effective SGD step size on the (temperature-scaled) logits
    jvp            ∇θH(s_t)·Δθ, filled by the measurement (the jvp estimator just returns it)
    """

    log_prob: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    entropy: torch.Tensor
    response_mask: torch.Tensor
    expected_term: torch.Tensor | None = None
    clip_active: torch.Tensor | None = None
    agg_weight: torch.Tensor | None = None
    lr: float = 1.0
    jvp: torch.Tensor | None = None

    @property
    def mask(self) -> torch.Tensor:
        return self.response_mask.to(self.log_prob.dtype)

    def step_coef(self) -> torch.Tensor:
        """η·c_t·I_clip·r·A: the coefficient of ∇_z log π_k in the SGD step on state s_t's logits."""
        ratio = torch.exp(torch.clamp(self.log_prob - self.old_log_prob, -20.0, 20.0))
        clip = torch.ones_like(ratio) if self.clip_active is None else self.clip_active.to(ratio.dtype)
        if self.agg_weight is None:
            weight = self.mask / self.mask.sum().clamp_min(1.0)
        else:
            weight = self.agg_weight
        return self.lr * weight * clip * ratio * self.advantages * self.mask


def steer_release(x: EstimatorInputs) -> torch.Tensor:
    """−Ω_release = −(A/π_old)·π(1−π)(log π + H); non-finite → 0. Scale-free (no η, no 1/L)."""
    omega = omega_release(x.advantages, x.entropy, x.old_log_prob, x.log_prob)  # the method's own Ω
    omega = torch.where(torch.isfinite(omega), omega, torch.zeros_like(omega))
    return -omega * x.mask


def sampled_logit_factor(log_prob: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
    """π(1−π)(log π + H) with π clamped as in the release: the paper's per-token probability factor."""
    p = torch.exp(log_prob).clamp(*PROB_CLAMP)
    return p * (1 - p) * (torch.log(p) + entropy)


def steer_paper(x: EstimatorInputs) -> torch.Tensor:
    """−η·c_t·I_clip·r·A·π(1−π)(log π + H): Theorem 1's form (exact if only the sampled logit moves)."""
    return -x.step_coef() * sampled_logit_factor(x.log_prob, x.entropy)


def softmax_full(x: EstimatorInputs) -> torch.Tensor:
    """−η·c_t·I_clip·r·A·[π(log π + H) − Σ_j π_j²(log π_j + H)]: exact first order, tabular softmax + SGD."""
    if x.expected_term is None:
        raise ValueError(
            "softmax_full needs EstimatorInputs.expected_term = Σ_j π_j²(log π_j + H) per position"
        )
    p = torch.exp(x.log_prob)
    return -x.step_coef() * (p * (x.log_prob + x.entropy) - x.expected_term)


def cov(x: EstimatorInputs) -> torch.Tensor:
    """−η·(A − Ā)(log π − mean log π)/N over the N valid tokens (Cui et al. 2025's centred cross-product)."""
    m = x.mask
    n = m.sum().clamp_min(1.0)
    adv_mean = (x.advantages * m).sum() / n
    lp_mean = (x.log_prob * m).sum() / n
    return -x.lr * (x.advantages - adv_mean) * (x.log_prob - lp_mean) * m / n


def jvp(x: EstimatorInputs) -> torch.Tensor:
    """∇θH(s_t)·Δθ, computed by the measurement (forward-mode or double-backward autodiff)."""
    if x.jvp is None:
        raise ValueError(
            "the jvp estimator needs the model and the real step; use omega.measure_entropy_change"
        )
    return x.jvp * x.mask


Estimator = Callable[[EstimatorInputs], torch.Tensor]
ESTIMATORS: dict[str, Estimator] = {
    "steer_release": steer_release,
    "steer_paper": steer_paper,
    "softmax_full": softmax_full,
    "cov": cov,
    "jvp": jvp,
}
SCALE_FREE = ("steer_release",)  # no η / 1/L: only rank/sign statistics are meaningful
