"""STEER's Ω forms and weights against the formulas of REFERENCES.md A.3 and C.1–C.7."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from methods_helpers import random_batch

from steerbench.methods import MethodError, PolicyBatch, compute_policy_loss
from steerbench.methods.steer import omega_paper, omega_release, token_weights


def test_release_omega_matches_the_worked_example():
    # REFERENCES A.3(d): H = 1, π = π_old = 0.01 gives |Ω|/|rA| = 3.57; π = 0.5 gives 0.153.
    for p, expected in [(0.01, 3.57), (0.5, 0.153)]:
        lp = torch.tensor([[math.log(p)]], dtype=torch.float64)
        one = torch.ones_like(lp)
        assert omega_release(one, one, lp, lp).abs().item() == pytest.approx(expected, abs=5e-3)
        assert omega_paper(one, one, lp, lp, 0.2, 0.2).abs().item() == pytest.approx(expected * p, abs=5e-3)


def test_paper_omega_is_zero_on_clipped_tokens():
    lp_old = torch.tensor([[-1.0, -1.0]], dtype=torch.float64)
    lp = lp_old + torch.tensor([[math.log(1.5), 0.0]], dtype=torch.float64)
    adv, ent = torch.ones_like(lp), torch.full_like(lp, 1.5)
    omega = omega_paper(adv, ent, lp_old, lp, clip_low=0.2, clip_high=0.28)
    assert omega[0, 0] == 0 and omega[0, 1] != 0


def test_exp_weights_hit_lambda_min_at_the_largest_omega_and_follow_the_power_law():
    b = random_batch(rows=4, cols=6, seed=1)
    w = token_weights(b.advantages, b.entropy, b.old_log_prob, b.log_prob, b.response_mask, 0.5, 1.0, "exp")
    omega = omega_release(b.advantages, b.entropy, b.old_log_prob, b.log_prob).abs()
    valid = b.response_mask.bool()
    top = omega[valid].max()
    assert top > 0.02
    expected = 0.5 ** (omega / top)  # λ = λ_min^{|Ω|/max|Ω|}
    assert torch.allclose(w[valid], expected[valid], rtol=1e-12)
    assert w[valid].min().item() == pytest.approx(0.5)


def test_exp_weights_floor_the_scale_at_0_02():
    lp = torch.full((1, 2), math.log(0.5), dtype=torch.float64)
    adv = torch.tensor([[0.01, 0.005]], dtype=torch.float64)  # |Ω| ≪ 0.02
    ent = torch.full_like(lp, 1.0)
    w = token_weights(adv, ent, lp, lp, torch.ones_like(lp), 0.5, 1.0, "exp")
    omega = omega_release(adv, ent, lp, lp).abs()
    assert torch.allclose(w, 0.5 ** (omega / 0.02))
    assert (w > 0.5).all()


def test_linear_weights_are_descending_min_max_and_midpoint_when_flat():
    b = random_batch(rows=3, cols=4, seed=2)
    w = token_weights(
        b.advantages, b.entropy, b.old_log_prob, b.log_prob, b.response_mask, 0.8, 1.2, "linear"
    )
    omega = omega_release(b.advantages, b.entropy, b.old_log_prob, b.log_prob).abs()
    valid = b.response_mask.bool()
    assert w[valid].max().item() == pytest.approx(1.2) and w[valid].min().item() == pytest.approx(0.8)
    assert w[valid][omega[valid].argmax()].item() == pytest.approx(0.8)
    flat = torch.zeros_like(b.advantages)
    w_flat = token_weights(flat, b.entropy, b.old_log_prob, b.log_prob, b.response_mask, 0.8, 1.2, "linear")
    assert torch.allclose(w_flat[valid], torch.full_like(w_flat[valid], 1.0))


def test_steer_with_unit_band_equals_grpo_exactly():
    b = random_batch(seed=4)
    ours, _ = compute_policy_loss("steer", b, lambda_min=1.0, lambda_max=1.0)
    grpo, _ = compute_policy_loss("grpo", b)
    assert torch.equal(ours, grpo)


def test_weights_multiply_the_clipped_loss_and_carry_no_gradient():
    b = random_batch(seed=5, drift=0.6)
    loss, _ = compute_policy_loss("steer", b, lambda_min=0.5, group="batch")
    w = token_weights(b.advantages, b.entropy, b.old_log_prob, b.log_prob, b.response_mask, 0.5, 1.0, "exp")
    from steerbench.methods.surrogate import SurrogateConfig, clipped_surrogate

    per_token = clipped_surrogate(b, SurrogateConfig()).losses
    expected = (per_token * w * b.mask).sum() / b.mask.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert not w.requires_grad
    (g_loss,) = torch.autograd.grad(loss, b.log_prob)
    (g_expected,) = torch.autograd.grad(expected, b.log_prob)
    assert torch.allclose(g_loss, g_expected)


def test_microbatch_group_normalises_each_slice_separately():
    b = random_batch(rows=6, cols=5, seed=6)
    _, per_batch = compute_policy_loss("steer", b, lambda_min=0.5, group="batch")
    _, per_micro = compute_policy_loss("steer", b, lambda_min=0.5, group="microbatch", group_size=3)
    # Each micro-batch maps its own max|Ω| to λ_min, so the mean weight is lower than over the batch.
    assert per_micro["steer/weight_mean"] < per_batch["steer/weight_mean"]
    assert per_micro["steer/weight_min"] == pytest.approx(0.5)


def test_nonfinite_omega_is_zeroed_and_counted():
    b = random_batch(rows=2, cols=3, seed=7)
    entropy = b.entropy.clone()
    entropy[0, 0] = float("inf")  # bypass PolicyBatch validation to emulate an overflow inside Ω
    omega_batch = PolicyBatch(
        b.log_prob, b.old_log_prob, b.advantages, b.response_mask, entropy=b.entropy, old_entropy=b.entropy
    )
    object.__setattr__(omega_batch, "old_entropy", entropy)
    loss, metrics = compute_policy_loss("steer", omega_batch, lambda_min=0.5)
    assert torch.isfinite(loss)
    assert metrics["omega/nonfinite"] == 1.0


@pytest.mark.parametrize(
    "knobs, fragment",
    [
        ({"lambda_min": 0.0}, r"lambda_min=0.0 is out of range; it must be in \(0, 1\]"),
        ({"lambda_min": 1.5}, r"lambda_min=1.5 is out of range"),
        ({"lambda_min": 0.9, "lambda_max": 0.8}, "below lambda_min"),
        ({"mapping": "cubic"}, "mapping='cubic'"),
        ({"omega": "v2"}, "omega='v2'"),
    ],
)
def test_bad_steer_knobs_name_the_value_and_range(knobs, fragment):
    with pytest.raises(MethodError, match=fragment):
        compute_policy_loss("steer", random_batch(), **knobs)


def test_steer_requires_entropy():
    b = random_batch()
    with pytest.raises(MethodError, match="needs PolicyBatch.entropy"):
        compute_policy_loss("steer", PolicyBatch(b.log_prob, b.old_log_prob, b.advantages, b.response_mask))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    lambda_min=st.floats(0.05, 1.0),
    extra=st.floats(0.0, 1.0),
    mapping=st.sampled_from(["exp", "linear"]),
    scale=st.floats(1e-6, 1e3),
)
def test_weights_stay_finite_in_band_and_decrease_with_omega(seed, lambda_min, extra, mapping, scale):
    lambda_max = 1.0 if mapping == "exp" else lambda_min + extra
    b = random_batch(rows=4, cols=4, seed=seed, drift=1.0)
    adv = b.advantages * scale
    w = token_weights(
        adv, b.entropy, b.old_log_prob, b.log_prob, b.response_mask, lambda_min, lambda_max, mapping
    )
    valid = b.response_mask.bool()
    assert torch.isfinite(w).all()
    assert (w[valid] >= lambda_min - 1e-12).all() and (w[valid] <= lambda_max + 1e-12).all()
    omega = omega_release(adv, b.entropy, b.old_log_prob, b.log_prob).abs()[valid]
    order = torch.argsort(omega)
    assert (torch.diff(w[valid][order]) <= 1e-12).all()
