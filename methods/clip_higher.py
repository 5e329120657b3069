"""Clip-higher (DAPO): decouple the clip range, ε_low = 0.2, ε_high = 0.28.

    ℓ_t = max(−A·r, −A·clip(r, 1−ε_low, 1+ε_high))     with GRPO advantages and dual clip c = 3

A larger ε_high keeps the gradient of positive-advantage tokens whose ratio grew, mostly low-probability
tokens, which raise entropy. Source: Yu et al. 2025 (DAPO, arXiv 2503.14476), Section 3.1.
"""

from __future__ import annotations

from dataclasses import dataclass

from steerbench.methods.grpo import GRPOConfig, grpo_loss, grpo_shaper
from steerbench.methods.registry import MethodSpec, register


@dataclass
class ClipHigherConfig(GRPOConfig):
    clip_high: float = 0.28  # DAPO's decoupled upper clip


register(
    MethodSpec(
        name="clip_higher",
        kind="clipping",
        config=ClipHigherConfig,
        loss=grpo_loss,
        shaper=grpo_shaper,
        source="Yu et al. 2025 (DAPO), arXiv 2503.14476",
        summary="PPO clip with ε_low=0.2, ε_high=0.28",
    )
)
