"""Clip-Cov at its published recipe (ε = 1/1, c = 10) against a hand computation; the covariance unit."""

from __future__ import annotations

import math

import pytest
import torch

from steerbench.methods import PolicyBatch, compute_policy_loss, get_method

# two sequences × two tokens; A = +2 and −2, so Ā = 0; mean log π = (−0.1 − 3.0 − 0.5 − 2.6)/4 = −1.55
LOG_P = [[-0.1, -3.0], [-0.5, -2.6]]
ADV = [2.0, -2.0]
RATIO = [[1.5, 0.5], [0.3, 12.0]]
# Cov = A·(log π + 1.55):  [[2.9, −2.9], [−2.1, 2.1]]  → tokens (0,0) and (1,1) lie in the window (1, 5)


def hand_batch() -> PolicyBatch:
    log_p = torch.tensor(LOG_P, dtype=torch.float64).requires_grad_(True)
    old = log_p.detach() - torch.log(torch.tensor(RATIO, dtype=torch.float64))
    return PolicyBatch(
        log_prob=log_p,
        old_log_prob=old,
        advantages=torch.tensor(ADV, dtype=torch.float64)[:, None].expand(2, 2).clone(),
        response_mask=torch.ones(2, 2, dtype=torch.float64),
    )


def test_defaults_are_the_published_recipe():
    cfg = get_method("clip_cov").make_config()
    assert (cfg.clip_low, cfg.clip_high, cfg.clip_c) == (1.0, 1.0, 10.0)
    assert (cfg.clip_cov_ratio, cfg.clip_cov_lb, cfg.clip_cov_ub) == (2e-4, 1.0, 5.0)
    assert set(get_method("clip_cov").own_clipping) == {"clip_low", "clip_high", "clip_c"}


def test_clip_cov_at_epsilon_one_matches_the_hand_computation():
    b = hand_batch()
    # ratio 1 picks every candidate, so the random pick cannot matter
    loss, metrics = compute_policy_loss("clip_cov", b, clip_cov_ratio=1.0)
    # by hand, ε = 1 (clip r to [0, 2]), c = 10:
    #   (0,0) A=2,  r=1.5: unclipped (r < 2), Cov 2.9 in window → detached: 0
    #   (0,1) A=2,  r=0.5: ℓ = −2·0.5 = −1
    #   (1,0) A=−2, r=0.3: no lower clip at ε_low = 1, ℓ = 2·0.3 = 0.6   (ε_low = 0.2 would give 1.6)
    #   (1,1) A=−2, r=12:  PPO keeps 24, dual clip caps at 2·10 = 20; Cov 2.1 in window → detached: 0
    assert loss.item() == pytest.approx((0 - 1 + 0.6 + 0) / 4, abs=1e-12)
    assert metrics["cov/frac_detached"] == 0.5
    (grad,) = torch.autograd.grad(loss, b.log_prob)
    # ∂ℓ/∂log π = −A·r on the unclipped, undetached tokens; token-mean divides by 4
    expected = [0.0, -2 * 0.5 / 4, 2 * 0.3 / 4, 0.0]
    assert grad.flatten().tolist() == pytest.approx(expected, abs=1e-12)


def test_a_token_clipped_by_a_tighter_epsilon_is_no_candidate():
    b = hand_batch()
    # at ε_high = 0.2, token (0,0) (A>0, r=1.5 > 1.2) is already clipped, so only (1,1) is detached
    _, metrics = compute_policy_loss("clip_cov", b, clip_cov_ratio=1.0, clip_low=0.2, clip_high=0.2)
    assert metrics["cov/frac_detached"] == 0.25


def test_the_covariance_unit_is_a_knob():
    b = hand_batch()
    _, whole = compute_policy_loss("clip_cov", b, clip_cov_ratio=1.0, cov_group="batch")
    # one sequence per micro-batch: A − Ā = 0 inside each, every Cov is 0, nothing is in the window
    _, per_row = compute_policy_loss("clip_cov", b, clip_cov_ratio=1.0, cov_group_size=1)
    assert whole["cov/frac_detached"] == 0.5 and per_row["cov/frac_detached"] == 0.0
    assert math.isclose(
        compute_policy_loss("clip_cov", b, clip_cov_ratio=1.0, cov_group_size=2)[0].item(),
        -0.1,
        abs_tol=1e-12,
    )


def official_pick(batch: PolicyBatch, rows: slice, ratio: float, lb: float, ub: float) -> torch.Tensor:
    """The official loss's pick on one micro-batch (verl core_algos.compute_policy_loss_clip_cov, ε = 1/1,
    nothing clipped here): nonzero over the window, randperm, the first max(1, ⌊ratio·N⌋)."""
    adv, logp, m = batch.advantages[rows], batch.log_prob[rows].detach(), batch.response_mask[rows]
    cov = (adv - (adv * m).sum() / m.sum()) * (logp - (logp * m).sum() / m.sum())
    idx = torch.nonzero((cov > lb) & (cov < ub) & (m > 0))
    n = max(int(ratio * m.sum().item()), 1)
    corr = torch.ones_like(adv)
    picked = idx[torch.randperm(len(idx))[: min(n, len(idx))]]
    corr[picked[:, 0], picked[:, 1]] = 0
    return corr


def covariance_batch(rows: int = 20, length: int = 12) -> PolicyBatch:
    g = torch.Generator().manual_seed(3)
    log_p = -torch.rand(rows, length, generator=g, dtype=torch.float64) * 4
    mask = (torch.rand(rows, length, generator=g) > 0.2).double()
    return PolicyBatch(
        log_prob=log_p,
        old_log_prob=log_p.clone(),  # r = 1: nothing clipped at ε = 1
        advantages=torch.randn(rows, 1, generator=g, dtype=torch.float64).expand(rows, length).mul(3).clone(),
        response_mask=mask,
    )


PICKS = ["pick_by_permutation", "pick_by_rank"]  # the CPU's official loop; every unit at once (accelerators)


def pick(name: str, b: PolicyBatch, cfg) -> torch.Tensor:
    from steerbench.methods import clip_cov

    terms = clip_cov.clipped_surrogate(b, cfg)
    return getattr(clip_cov, name)(b, ~(terms.clipped_high | terms.clipped_low), cfg)


@pytest.mark.parametrize("name", PICKS)
def test_each_micro_batch_detaches_as_many_tokens_as_the_official_loss_and_only_its_candidates(name):
    from steerbench.methods.clip_cov import ClipCovConfig

    b = covariance_batch()  # 20 rows: micro-batches of 8, 8 and a short last one of 4
    for ratio, lb in ((0.05, 0.2), (0.5, 0.2), (1e-4, 1.0)):
        cfg = ClipCovConfig(clip_cov_ratio=ratio, clip_cov_lb=lb)
        ours = pick(name, b, cfg)
        for start in (0, 8, 16):
            rows = slice(start, start + 8)
            theirs = official_pick(b, rows, ratio, lb, cfg.clip_cov_ub)
            assert int((ours[rows] == 0).sum()) == int((theirs == 0).sum()) > 0, (ratio, start)
            # the candidates are the official ones: with ratio 1 both detach all of them
            every = official_pick(b, rows, 1.0, lb, cfg.clip_cov_ub)
            assert bool(((ours[rows] == 0) <= (every == 0)).all())


@pytest.mark.parametrize("name", PICKS)
def test_the_pick_is_uniform_over_the_candidates(name):
    """Over 4,000 draws each candidate of a micro-batch is picked with probability n / #candidates."""
    from steerbench.methods.clip_cov import ClipCovConfig

    b = covariance_batch(rows=8)
    cfg = ClipCovConfig(clip_cov_ratio=0.05, clip_cov_lb=0.2)
    candidates = official_pick(b, slice(0, 8), 1.0, 0.2, cfg.clip_cov_ub) == 0
    n = max(1, int(0.05 * b.response_mask.sum().item()))
    torch.manual_seed(0)
    draws = 4000
    counts = sum((pick(name, b, cfg) == 0).double() for _ in range(draws))
    p = n / int(candidates.sum())
    assert counts[~candidates].sum() == 0
    freq = counts[candidates] / draws
    # binomial: 5 standard errors, so a correct pick fails about once in a million candidates
    assert float((freq - p).abs().max()) < 5 * math.sqrt(p * (1 - p) / draws), (freq.min(), freq.max(), p)


def test_on_the_cpu_the_pick_is_the_official_loops_draw_for_draw():
    """The committed CPU runs' draws: the same seed gives the official loop's picks exactly."""
    from steerbench.methods.clip_cov import ClipCovConfig, clip_cov_mask

    b, cfg = covariance_batch(), ClipCovConfig(clip_cov_ratio=0.05, clip_cov_lb=0.2)
    torch.manual_seed(7)
    ours = clip_cov_mask(b, cfg)
    torch.manual_seed(7)
    theirs = torch.cat([official_pick(b, slice(s, s + 8), 0.05, 0.2, cfg.clip_cov_ub) for s in (0, 8, 16)])
    assert torch.equal(ours, theirs)
    torch.manual_seed(7)
    assert torch.equal(ours, clip_cov_mask(b, cfg))
