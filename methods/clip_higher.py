"""Clip-higher (DAPO): decouple the clip range, ε_high = 0.28 above the scenario's ε_low.

    ℓ_t = max(−A·r, −A·clip(r, 1−ε_low, 1+ε_high))     with GRPO advantages; ε_low and c from the scenario

A larger ε_high keeps the gradient of positive-advantage tokens whose ratio grew, mostly low-probability
tokens, which raise entropy. ε_high is this method's mechanism, so it keeps 0.28 in every scenario
(``own_clipping``); in ``extreme`` (ε_high = 5 for the others) that makes it the tighter clip.
Source: Yu et al. 2025 (DAPO, arXiv 2503.14476), Section 3.1.
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
        summary="PPO clip with ε_high=0.28 (its own, in every scenario); ε_low and c from the scenario",
        own_clipping=("clip_high",),
    )
)
