"""STEER: attenuate each token's PG loss by its estimated first-order entropy change Ω.

Ω forms (both ∝ −ΔH; only |Ω| enters the weights):

    release  Ω = (A / π_old) · π_θ(1 − π_θ) · (log π_θ + H)          (STEER code, core_algos.py L580–676)
    paper    Ω = I_clip · r · A · π_θ(1 − π_θ) · (log π_θ + H)        (Theorem 1 as read by two re-implementations)

with π_θ clamped to [1e-8, 1 − 1e-8], π_old to [1e-8, 1], non-finite Ω set to 0 (and counted), all
without gradient. The release form is the paper's divided by π_θ, so it peaks on rare tokens.

Weights over a normalisation group (the release: one micro-batch of 8 sequences), valid tokens only:

    exp     k = −ln λ_min / max(max|Ω|, 0.02);  w = clamp(exp(−k·|Ω|), λ_min, λ_max)   (λ_max = 1.0)
    linear  w = λ_max − (|Ω| − min|Ω|)·(λ_max − λ_min)/(max|Ω| − min|Ω|)            (λ_max = 1.2)
            all |Ω| equal → (λ_min + λ_max)/2

The weights are constants that multiply the per-token loss after PPO clipping and dual clip, before
aggregation; no renormalisation. Clipping comes from the scenario like every method's: the release ran
ε_low=0.2, ε_high=0.28, c=10, which is the ``release`` scenario ("STEER as published").
H is chosen by ``entropy``: ``rollout`` (default, the release) is π_old's entropy at sampling time
(``PolicyBatch.old_entropy``), fixed for every mini-batch of the step; ``current`` is π_θ's (detached),
recomputed each mini-batch. They agree (to float rounding: π_old's comes from the KV-cached sampler) on the first mini-batch of
an on-policy step only. The metric
``steer/entropy_<rollout|current>_mean`` names the one used.
Source: STEER (zz-haooo/STEER b31df71), REFERENCES.md A.3, A.6 and C.1–C.7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from steerbench.methods.aggregation import masked_mean
from steerbench.methods.batch import MethodError, PolicyBatch, blocks, validate_choice, validate_unit
from steerbench.methods.grpo import GRPOConfig, grpo_shaper
from steerbench.methods.registry import MethodSpec, register
from steerbench.methods.surrogate import importance_ratio, ppo_loss

MAPPINGS = ("exp", "linear")
OMEGA_FORMS = ("release", "paper")
ENTROPY_SOURCES = ("rollout", "current")
MIN_OMEGA_SCALE = 0.02  # the release's floor on max|Ω| in exp mode


@dataclass
class SteerConfig(GRPOConfig):
    lambda_min: float = 0.8  # weight of the token with the largest |Ω| (release run_exp.sh)
    lambda_max: float | None = None  # None → 1.0 for exp, 1.2 for linear (release scripts)
    mapping: str = "exp"  # "exp" | "linear"
    omega: str = "release"  # "release" | "paper"
    group: str = (
        "microbatch"  # normalise max|Ω| over "microbatch" (group_size sequences) or the whole "batch"
    )
    group_size: int = 8  # sequences per micro-batch (the release's ppo_micro_batch_size_per_gpu)
    entropy: str = "rollout"  # H in Ω: "rollout" (π_old's, as the release) | "current" (π_θ's, detached)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lambda_max is None:
            self.lambda_max = 1.0 if self.mapping == "exp" else 1.2
        validate_band(self.lambda_min, self.lambda_max, self.mapping)
        validate_choice("omega", self.omega, OMEGA_FORMS)
        validate_unit("group", self.group, "group_size", self.group_size)
        validate_choice("entropy", self.entropy, ENTROPY_SOURCES)


def validate_band(lambda_min: float, lambda_max: float, mapping: str) -> None:
    validate_choice("mapping", mapping, MAPPINGS)
    if not 0.0 < lambda_min <= 1.0:
        raise MethodError(f"lambda_min={lambda_min} is out of range; it must be in (0, 1]")
    if lambda_max < lambda_min:
        raise MethodError(
            f"lambda_max={lambda_max} is below lambda_min={lambda_min}; need lambda_min ≤ lambda_max"
        )


def omega_release(
    advantages: torch.Tensor, entropy: torch.Tensor, old_log_prob: torch.Tensor, log_prob: torch.Tensor
) -> torch.Tensor:
    """(A/π_old)·π(1−π)(log π + H), exactly as the release computes it (NaN/Inf kept for the caller)."""
    with torch.no_grad():  # the release's expression, evaluated in place: three full-size buffers, not ten
        p = torch.exp(log_prob.detach()).clamp_(1e-8, 1 - 1e-8)
        omega = torch.div(advantages, torch.exp(old_log_prob).clamp_(1e-8, 1.0)).mul_(p)
        log_p_plus_h = torch.log(p).add_(entropy.detach())
        return omega.mul_(p.neg_().add_(1)).mul_(log_p_plus_h)  # −p + 1 is 1 − p exactly


def omega_paper(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> torch.Tensor:
    """I_clip·r·A·π(1−π)(log π + H): zero where clipping already removed the token's gradient."""
    with torch.no_grad():
        p = torch.exp(log_prob.detach()).clamp(1e-8, 1 - 1e-8)
        r = importance_ratio(log_prob.detach(), old_log_prob)
        still_active = ~(((advantages > 0) & (r > 1 + clip_high)) | ((advantages < 0) & (r < 1 - clip_low)))
        return still_active * r * advantages * p * (1 - p) * (torch.log(p) + entropy.detach())


def group_weights(
    omega: torch.Tensor,
    response_mask: torch.Tensor,
    rows_per_group: int,
    lambda_min: float,
    lambda_max: float,
    mapping: str,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Weights normalised within each block of `rows_per_group` rows (the last may be shorter), all blocks
    at once; returns (weights, |Ω| with non-finite Ω zeroed, number of valid non-finite Ω)."""
    with torch.no_grad():
        rows = omega.shape[0]
        valid = response_mask.bool()
        magnitude = torch.nan_to_num(omega, nan=0.0, posinf=0.0, neginf=0.0).abs_()
        nonfinite = 0
        if not torch.isfinite(omega.sum()):  # one pass when all Ω are finite; else (or on overflow) count
            nonfinite = int(torch.isfinite(omega).logical_not_().logical_and_(valid).sum())

        def per_row(extreme: str, fill: float) -> torch.Tensor:  # the group's max/min |Ω| over valid tokens
            masked = blocks(torch.where(valid, magnitude, fill), rows_per_group, fill)  # pad: neutral value
            stat = getattr(masked, extreme)(1)
            return stat.repeat_interleave(rows_per_group)[:rows].view(-1, *[1] * (omega.dim() - 1))

        top = per_row("amax", -math.inf)  # −inf only in a group without valid tokens: all weights stay 1
        if mapping == "exp":
            k = -math.log(lambda_min) / torch.clamp(top, min=MIN_OMEGA_SCALE)
            mapped = torch.exp(-k * magnitude).clamp_(lambda_min, lambda_max)
        else:
            bottom = per_row("amin", math.inf)
            span = (magnitude - bottom) * (lambda_max - lambda_min) / (top - bottom)
            mapped = torch.clamp(lambda_max - span, lambda_min, lambda_max)
            mapped = torch.where(top == bottom, (lambda_min + lambda_max) / 2, mapped)
        return mapped.masked_fill_(~valid, 1.0), magnitude, nonfinite


def token_weights(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    response_mask: torch.Tensor,
    lambda_min: float = 0.8,
    lambda_max: float = 1.0,
    mapping: str = "exp",
    *,
    omega: str = "release",
    clip_low: float = 0.2,
    clip_high: float = 0.2,
) -> torch.Tensor:
    """STEER's detached per-token weights, normalised over all valid tokens of the tensors given."""
    validate_band(lambda_min, lambda_max, mapping)
    omega_values = compute_omega(omega, advantages, entropy, old_log_prob, log_prob, clip_low, clip_high)
    rows = omega_values.shape[0]  # one normalisation group: every row given
    return group_weights(omega_values, response_mask, rows, lambda_min, lambda_max, mapping)[0]


def compute_omega(
    form: str,
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> torch.Tensor:
    validate_choice("omega", form, OMEGA_FORMS)
    if form == "release":
        return omega_release(advantages, entropy, old_log_prob, log_prob)
    return omega_paper(advantages, entropy, old_log_prob, log_prob, clip_low, clip_high)


def steer_entropy(batch: PolicyBatch, source: str) -> torch.Tensor:
    entropy = batch.old_entropy if source == "rollout" else batch.entropy
    if entropy is None:
        raise MethodError(
            "steer with entropy='rollout' needs PolicyBatch.old_entropy (π_old's token entropy at sampling); "
            "pass it, or set method.entropy=current to use the current policy's"
        )
    return entropy.detach()


def steer_loss(batch: PolicyBatch, cfg: SteerConfig) -> tuple[torch.Tensor, dict[str, float]]:
    assert cfg.lambda_max is not None
    entropy = steer_entropy(batch, cfg.entropy)
    omega = compute_omega(
        cfg.omega,
        batch.advantages,
        entropy,
        batch.old_log_prob,
        batch.log_prob,
        cfg.clip_low,
        cfg.clip_high,
    )
    rows = batch.log_prob.shape[0]
    weights, finite_abs, nonfinite = group_weights(
        omega,
        batch.response_mask,
        cfg.group_size if cfg.group == "microbatch" else rows,
        cfg.lambda_min,
        cfg.lambda_max,
        cfg.mapping,
    )
    loss, metrics, _ = ppo_loss(batch, cfg, token_weights=weights)
    m = batch.mask
    valid = batch.response_mask.bool()
    metrics.update(
        {
            "steer/weight_mean": masked_mean(weights, m).item(),
            "steer/weight_min": weights.masked_fill(~valid, math.inf).min().item(),
            "steer/weight_max": weights.masked_fill(~valid, -math.inf).max().item(),
            "omega/abs_mean": masked_mean(finite_abs, m).item(),
            "omega/nonfinite": float(nonfinite),
            f"steer/entropy_{cfg.entropy}_mean": masked_mean(entropy, m).item(),
        }
    )
    return loss, metrics


register(
    MethodSpec(
        name="steer",
        kind="token weights",
        config=SteerConfig,
        loss=steer_loss,
        shaper=grpo_shaper,
        source="STEER (zz-haooo/STEER b31df71, release code); the release's clipping is the release scenario",
        summary="w=clamp(exp(−k|Ω|),λ_min,1), k=−ln λ_min/max(max|Ω|,0.02), Ω=(A/π_old)π(1−π)(log π+H); "
        "or linear min-max to [λ_min, λ_max]; H = π_old's rollout entropy (entropy=rollout) or π_θ's",
        needs=("entropy",),
    )
)
