"""Unlikeliness reward as He et al.'s release computes it: rank over all G samples, 0/1 scores, then GRPO."""

from __future__ import annotations

import statistics

import pytest
import torch

from steerbench.methods import MethodError, compute_advantages
from steerbench.verl.losses import ADVANTAGE_INPUTS, make_adv_estimator

# mean token log π_old of eight samples of one prompt; ascending order gives the ranks
#   sample:    0     1    2    3    4    5    6    7
#   mean ℓ:  -0.5   -7   -3   -6   -4   -8   -2   -5
#   rank:      7     1    5    2    4    0    6    3
SEQ_MEANS = [-0.5, -7.0, -3.0, -6.0, -4.0, -8.0, -2.0, -5.0]
CORRECT = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # the samples at ranks 7 and 4


def old_log_prob_with_padding() -> tuple[torch.Tensor, torch.Tensor]:
    """Two tokens per sample, both at the sample's mean, plus a padded third token of garbage."""
    means = torch.tensor(SEQ_MEANS, dtype=torch.float64)
    old = torch.stack([means, means, torch.full_like(means, 50.0)], dim=1)
    mask = torch.tensor([[1.0, 1.0, 0.0]] * 8, dtype=torch.float64)
    return old, mask


def test_issue_example_two_correct_samples_at_ranks_4_and_7_differ_by_0_244():
    old, mask = old_log_prob_with_padding()
    rewards = torch.tensor(CORRECT, dtype=torch.float64)
    adv = compute_advantages("unlikeliness", rewards, torch.zeros(8, dtype=torch.long), mask, old, beta=0.25)
    # by hand: rank 7 → 1 − 0.25·7/8 = 0.78125, rank 4 → 1 − 0.25·4/8 = 0.875, incorrect → 0
    shaped = [0.78125, 0, 0, 0, 0.875, 0, 0, 0]
    mean, std = statistics.mean(shaped), statistics.stdev(shaped)
    expected = [(s - mean) / (std + 1e-6) for s in shaped]
    assert adv[:, 0].tolist() == pytest.approx(expected, abs=1e-6)  # shapers work in float32
    assert adv[4, 0] - adv[0, 0] == pytest.approx(0.244, abs=5e-4)
    assert (adv[:, 2] == 0).all()  # padding gets no advantage


def test_plus_minus_one_rewards_shape_exactly_like_zero_one():
    old, mask = old_log_prob_with_padding()
    groups = torch.zeros(8, dtype=torch.long)
    zero_one = torch.tensor(CORRECT, dtype=torch.float64)
    plus_minus = 2 * zero_one - 1
    a = compute_advantages("unlikeliness", zero_one, groups, mask, old)
    b = compute_advantages("unlikeliness", plus_minus, groups, mask, old)
    assert torch.equal(a, b)


def test_verl_estimator_with_plus_minus_one_scores_matches_the_local_shaper():
    old, mask = old_log_prob_with_padding()
    zero_one = torch.tensor(CORRECT, dtype=torch.float64)
    token_rewards = torch.zeros(8, 3, dtype=torch.float64)
    token_rewards[:, 1] = 2 * zero_one - 1  # verl's reward: ±1 on the last valid token
    uids = ["p0"] * 8
    token = ADVANTAGE_INPUTS.set({"old_log_probs": old})
    try:
        verl_adv, _ = make_adv_estimator("unlikeliness")(token_rewards, mask, uids, config=None)
    finally:
        ADVANTAGE_INPUTS.reset(token)
    local = compute_advantages("unlikeliness", zero_one, torch.zeros(8, dtype=torch.long), mask, old)
    assert torch.allclose(verl_adv.float(), local, atol=1e-6)


def test_groups_rank_separately_and_incorrect_samples_share_one_advantage():
    # two groups of four; the second group's likelihoods are the first's shifted, so ranks repeat
    means = torch.tensor([-1.0, -4.0, -2.0, -3.0, -11.0, -14.0, -12.0, -13.0], dtype=torch.float64)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    adv = compute_advantages("unlikeliness", rewards, groups, torch.ones(8, 1), means[:, None], beta=0.5)
    # ranks in each group: [3, 0, 2, 1]; group 0 shaped: 1 − 0.5·3/4, 0, 0, 1 − 0.5·1/4
    for shaped, rows in (([0.625, 0, 0, 0.875], slice(0, 4)), ([0, 1.0, 0.75, 0], slice(4, 8))):
        mean, std = statistics.mean(shaped), statistics.stdev(shaped)
        assert adv[rows, 0].tolist() == pytest.approx([(s - mean) / (std + 1e-6) for s in shaped], abs=1e-6)
    assert adv[1, 0] == adv[2, 0] and adv[4, 0] == adv[7, 0]


def test_beta_zero_is_grpo_on_zero_one_scores_and_old_log_prob_is_required():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    groups = torch.zeros(4, dtype=torch.long)
    old = -torch.rand(4, 3, generator=torch.Generator().manual_seed(0))
    flat = compute_advantages("unlikeliness", rewards, groups, torch.ones(4, 3), old, beta=0.0)
    assert torch.allclose(flat, compute_advantages("grpo", rewards, groups, torch.ones(4, 3)))
    with pytest.raises(MethodError, match="needs old_log_prob"):
        compute_advantages("unlikeliness", rewards, groups, torch.ones(4, 3))
