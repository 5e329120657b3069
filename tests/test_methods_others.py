"""Shapers, loss terms and covariance surrogates, each against an independent computation."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from methods_helpers import random_batch

from steerbench.methods import PolicyBatch, compute_advantages, compute_policy_loss, get_method
from steerbench.methods.batch import MethodError
from steerbench.methods.kl import k3_kl
from steerbench.methods.kl_cov import kl_cov_selection


def test_grpo_advantages_match_hand_computed_group_statistics():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    adv = compute_advantages("grpo", rewards, groups, torch.ones(6, 2))
    mean, std = 1 / 3, (((2 / 3) ** 2 + 2 * (1 / 3) ** 2) / 2) ** 0.5
    assert adv[0, 0].item() == pytest.approx((1 - mean) / (std + 1e-6))
    assert adv[1, 1].item() == pytest.approx((0 - mean) / (std + 1e-6))
    assert torch.all(adv[3:] == 0)  # all-correct group: no signal


def test_w_reinforce_gives_lambda_to_correct_and_minus_one_to_wrong():
    rewards = torch.tensor([1.0, 0.0, -1.0, 1.0])
    adv = compute_advantages("w_reinforce", rewards, torch.tensor([0, 0, 1, 1]), torch.ones(4, 3))
    assert adv[:, 0].tolist() == pytest.approx([0.1, -1.0, -1.0, 0.1])
    scaled = compute_advantages(
        "w_reinforce", rewards, torch.zeros(4, dtype=torch.long), torch.ones(4, 1), positive_weight=0.5
    )
    assert scaled[0, 0].item() == 0.5


def test_kl_k3_is_nonnegative_and_zero_at_the_reference():
    b = random_batch()
    assert torch.all(k3_kl(b.log_prob, b.ref_log_prob) >= 0)
    assert torch.all(k3_kl(b.old_log_prob, b.old_log_prob) == 0)
    grpo, _ = compute_policy_loss("grpo", b)
    with_kl, metrics = compute_policy_loss("kl", b, beta=0.5)
    # k3 by hand, in float64, token-mean over the response mask (the default loss_agg_mode)
    d = (b.ref_log_prob - b.log_prob).double()
    k3 = torch.exp(d) - d - 1
    mask = b.response_mask.double()
    expected_kl = ((k3 * mask).sum() / mask.sum()).item()
    assert with_kl.item() == pytest.approx(grpo.item() + 0.5 * expected_kl, rel=1e-5)
    assert metrics["kl/mean"] == pytest.approx(expected_kl, rel=1e-5) and expected_kl > 0


def test_entropy_bonus_carries_gradient_to_the_entropy():
    b = random_batch(entropy_grad=True)
    loss, _ = compute_policy_loss("entropy_bonus", b, alpha=0.1)
    loss.backward()
    assert b.entropy.grad is not None
    assert torch.allclose(b.entropy.grad, -0.1 * b.mask / b.mask.sum())


def test_entropy_bonus_refuses_a_detached_entropy():
    with pytest.raises(MethodError, match="carries gradient"):
        compute_policy_loss("entropy_bonus", random_batch(entropy_grad=False))


def test_pos_adv_reweight_at_one_equals_grpo_and_scales_positive_tokens():
    b = random_batch(seed=9)
    full, _ = compute_policy_loss("pos_adv_reweight", b, weight=1.0)
    grpo, _ = compute_policy_loss("grpo", b)
    assert torch.equal(full, grpo)
    zero, _ = compute_policy_loss("pos_adv_reweight", b, weight=0.0)
    negatives_only = PolicyBatch(b.log_prob, b.old_log_prob, b.advantages.clamp(max=0), b.response_mask)
    expected, _ = compute_policy_loss("grpo", negatives_only)
    assert zero.item() == pytest.approx(expected.item())


def test_pos_adv_reweight_schedules():
    spec = get_method("pos_adv_reweight")
    cfg = spec.make_config(schedule="entropy_guided")
    assert cfg.weight == 0.0
    up = spec.schedule(cfg, {"step": 0, "total_steps": 10, "entropy": 0.5})
    assert up.weight == pytest.approx(0.05)
    down = spec.schedule(spec.make_config(weight=0.02), {"step": 0, "total_steps": 10, "entropy": 0.1})
    assert down.weight == 0.0  # clipped at 0
    stage = spec.make_config(schedule="stage")
    weights = [
        spec.schedule(stage, {"step": s - 1, "total_steps": 11, "entropy": 0}).weight for s in range(11)
    ]
    assert weights[:5] == [0.0] * 5 and weights[-1] == 1.0
    assert all(a <= b for a, b in zip(weights, weights[1:], strict=False))
    epoch = spec.make_config(schedule="epoch", num_epochs=3)
    ew = [spec.schedule(epoch, {"step": s - 1, "total_steps": 9, "entropy": 0}).weight for s in range(9)]
    assert ew == [0.0] * 3 + [0.5] * 3 + [1.0] * 3


def test_clip_cov_with_ratio_zero_equals_the_surrogate():
    b = random_batch(seed=10)
    ours, metrics = compute_policy_loss("clip_cov", b, clip_cov_ratio=0.0)
    grpo, _ = compute_policy_loss("grpo", b, clip_low=1.0, clip_high=1.0, clip_c=10.0)
    assert torch.equal(ours, grpo) and metrics["cov/frac_detached"] == 0


def test_clip_cov_detaches_only_tokens_in_the_covariance_window():
    b = random_batch(rows=8, cols=6, seed=11, drift=0.0)
    scaled = PolicyBatch(b.log_prob, b.old_log_prob, b.advantages * 3, b.response_mask)
    torch.manual_seed(0)
    loss, metrics = compute_policy_loss("clip_cov", scaled, clip_cov_ratio=0.1)
    loss.backward()
    grad = b.log_prob.grad
    adv, logp, m = scaled.advantages, scaled.log_prob.detach(), scaled.mask
    cov = (adv - (adv * m).sum() / m.sum()) * (logp - (logp * m).sum() / m.sum())
    zeroed = (grad == 0) & m.bool() & (adv != 0)
    assert zeroed.sum() == int(0.1 * m.sum())
    assert torch.all((cov[zeroed] > 1) & (cov[zeroed] < 5))
    assert metrics["cov/frac_detached"] == pytest.approx(zeroed.sum().item() / m.sum().item())


def test_kl_cov_adds_the_brake_on_top_covariance_tokens_only():
    b = random_batch(rows=5, cols=4, seed=12, drift=0.4)
    loss, _ = compute_policy_loss("kl_cov", b, kl_cov_ratio=0.2, kl_coef=1.0)
    adv, logp, old, m = b.advantages, b.log_prob.detach(), b.old_log_prob, b.mask
    cov = (adv - (adv * m).sum() / m.sum()) * (logp - (logp * m).sum() / m.sum())
    flat = torch.where(m.bool(), cov, torch.tensor(-float("inf"), dtype=cov.dtype)).flatten()
    k = int(0.2 * m.sum())
    top = torch.zeros_like(flat, dtype=torch.bool)
    top[flat.argsort(descending=True)[:k]] = True
    top = top.view_as(cov)
    per_token = -adv * torch.exp(logp - old) + top * (logp - old).abs()
    assert loss.item() == pytest.approx(((per_token * m).sum() / m.sum()).item())
    assert torch.equal(kl_cov_selection(b, 0.2), top)


def test_kl_cov_variant_is_explicit():
    spec = get_method("kl_cov")
    assert (spec.make_config(variant="verl").kl_cov_ratio, spec.make_config(variant="verl").kl_coef) == (
        2e-4,
        0.1,
    )
    assert spec.make_config(variant="paper_repo").kl_coef == 1.0
    with pytest.raises(MethodError, match="variant='x'"):
        spec.make_config(variant="x")


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 5000),
    name=st.sampled_from(["grpo", "steer", "clip_cov", "kl_cov", "kl", "pos_adv_reweight"]),
)
def test_every_loss_is_finite_with_finite_gradients(seed, name):
    b = random_batch(seed=seed, drift=2.0)
    loss, metrics = compute_policy_loss(name, b)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(b.log_prob.grad).all()
    assert all(isinstance(v, float) for v in metrics.values())
