"""STEER's entropy source: π_old's rollout-time entropy (the release, default) or the current policy's."""

from __future__ import annotations

import json
import math

import pytest
import torch

from steerbench.methods import MethodError, PolicyBatch, compute_policy_loss

P = [0.5, 0.25]  # π_θ = π_old of two tokens of one correct sequence (A = 1), so r = 1 and nothing clips
H_ROLLOUT = [1.0, 2.0]
H_CURRENT = [2.0, 1.5]


def two_token_batch(with_rollout: bool = True) -> PolicyBatch:
    log_p = torch.log(torch.tensor([P], dtype=torch.float64))
    return PolicyBatch(
        log_prob=log_p.clone().requires_grad_(True),
        old_log_prob=log_p,
        advantages=torch.ones(1, 2, dtype=torch.float64),
        response_mask=torch.ones(1, 2, dtype=torch.float64),
        entropy=torch.tensor([H_CURRENT], dtype=torch.float64),
        old_entropy=torch.tensor([H_ROLLOUT], dtype=torch.float64) if with_rollout else None,
    )


def hand_loss(entropy: list[float], lambda_min: float) -> float:
    """Release Ω with π_θ = π_old: (1−π)(log π + H); exp weights λ_min^(|Ω|/max|Ω|); loss = mean(−w·A·r)."""
    omega = [abs((1 - p) * (math.log(p) + h)) for p, h in zip(P, entropy, strict=True)]
    weights = [lambda_min ** (o / max(omega)) for o in omega]
    return -sum(weights) / len(weights)


def test_default_uses_the_rollout_entropy_as_the_release_does():
    loss, metrics = compute_policy_loss("steer", two_token_batch(), lambda_min=0.5)
    assert loss.item() == pytest.approx(hand_loss(H_ROLLOUT, 0.5), rel=1e-12)
    assert loss.item() != pytest.approx(hand_loss(H_CURRENT, 0.5), rel=1e-3)
    assert metrics["steer/entropy_rollout_mean"] == pytest.approx(1.5)
    assert "steer/entropy_current_mean" not in metrics


def test_current_uses_the_policy_entropy_and_says_so():
    loss, metrics = compute_policy_loss("steer", two_token_batch(), lambda_min=0.5, entropy="current")
    assert loss.item() == pytest.approx(hand_loss(H_CURRENT, 0.5), rel=1e-12)
    assert metrics["steer/entropy_current_mean"] == pytest.approx(1.75)


def test_rollout_without_old_entropy_is_a_clear_error_and_unknown_source_is_rejected():
    with pytest.raises(MethodError, match="method.entropy=current"):
        compute_policy_loss("steer", two_token_batch(with_rollout=False))
    loss, _ = compute_policy_loss("steer", two_token_batch(with_rollout=False), entropy="current")
    assert torch.isfinite(loss)
    with pytest.raises(MethodError, match="entropy='old'"):
        compute_policy_loss("steer", two_token_batch(), entropy="old")


def test_the_local_trainer_hands_steer_the_rollout_entropy(tmp_path):
    from local_helpers import TINY

    from steerbench.config import compose
    from steerbench.execute import execute

    # one mini-batch over two PPO epochs: the second is off-policy, yet STEER must still see π_old's
    # entropy, whose token mean the trainer logs as entropy/mean
    cfg = compose([*TINY, "method=steer", "trainer.steps=1", "trainer.minibatches=1", "trainer.ppo_epochs=2"])
    execute(cfg, tmp_path / "run")
    row = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert row["steer/entropy_rollout_mean"] == pytest.approx(row["entropy/mean"], rel=1e-6)
