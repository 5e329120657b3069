"""Ω validation during training: every K steps, one measured step on a fresh batch, logged as metrics.

The measurement works on a deep copy of the policy and draws from its own generator, so the run's
trajectory (and its bit-reproducibility) is the same with or without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from steerbench.analysis.estimators import ESTIMATORS
from steerbench.analysis.omega import measure_entropy_change
from steerbench.analysis.rollouts import make_batch
from steerbench.analysis.stats import point_stats

LOGGED = ("pearson", "spearman", "sign_agreement")


def omega_step_metrics(
    policy: nn.Module,
    prompts: torch.Tensor,
    reward_fn: Any,
    method: str,
    knobs: dict[str, Any],
    *,
    group_size: int,
    max_new_tokens: int,
    temperature: float,
    eos_id: int,
    seed: int,
    lr: float,
) -> dict[str, float]:
    """``omega/<estimator>/{pearson,spearman,sign_agreement}`` of one SGD step at ``lr``."""
    generator = torch.Generator().manual_seed(seed)
    batch = make_batch(
        policy, prompts, group_size, max_new_tokens, temperature, eos_id, reward_fn, method, generator, knobs
    )
    result = measure_entropy_change(policy, batch, method, "sgd", lr, temperature, tuple(ESTIMATORS), knobs)
    valid = result.response_mask.numpy()
    measured = result.measured.numpy()[valid]
    metrics: dict[str, float] = {}
    for name, predicted in result.predicted.items():
        stats = point_stats(predicted.numpy()[valid], measured)
        for key in LOGGED:
            if np.isfinite(stats[key]):
                metrics[f"omega/{name}/{key}"] = stats[key]
    return metrics
