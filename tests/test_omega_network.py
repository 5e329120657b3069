"""Measurement on a real (tiny) transformer: jvp vs finite differences, both autodiff modes, every method."""

from __future__ import annotations

import pytest
import torch
from omega_helpers import ToyLM
from torch import nn

from steerbench.analysis.omega.estimators import ESTIMATORS, EstimatorInputs, cov, steer_release
from steerbench.analysis.omega.measure import (
    RolloutBatch,
    jvp_entropy_change,
    measure_entropy_change,
    quadrant_labels,
    response_stats,
)
from steerbench.errors import UsageError
from steerbench.local.model import ModelConfig, TinyPolicy


def tiny_setup(seed: int = 0) -> tuple[TinyPolicy, RolloutBatch]:
    torch.manual_seed(seed)
    model = TinyPolicy(ModelConfig(vocab_size=17, n_layer=1, n_head=2, d_model=16, max_seq_len=16)).eval()
    g = torch.Generator().manual_seed(seed)
    B, P, T = 6, 3, 5
    tokens = torch.randint(0, 17, (B, P + T), generator=g)
    mask = torch.ones(B, T)
    mask[1, 3:] = 0
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    adv = ((rewards - 0.5) * 2)[:, None] * mask
    return model, RolloutBatch(
        tokens=tokens,
        prompt_len=P,
        response_mask=mask,
        advantages=adv,
        rewards=rewards,
        group_index=torch.tensor([0, 0, 0, 1, 1, 1]),
    )


def test_forward_and_double_backward_jvp_agree_and_match_finite_differences() -> None:
    _, b = tiny_setup()
    torch.manual_seed(0)
    model = ToyLM()
    g = torch.Generator().manual_seed(5)
    delta = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in model.named_parameters()}
    fwd = jvp_entropy_change(model, b.tokens, b.prompt_len, delta, 1.3, torch.float64, mode="forward")
    dbl = jvp_entropy_change(model, b.tokens, b.prompt_len, delta, 1.3, torch.float64, mode="double_backward")
    torch.testing.assert_close(fwd, dbl, rtol=1e-9, atol=1e-12)
    eps = 1e-6  # central differences, independent of autodiff
    state = {n: p.detach().clone() for n, p in model.named_parameters()}
    hs = []
    for sgn in (1.0, -1.0):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(state[n] + sgn * eps * delta[n])
        hs.append(response_stats(model, b.tokens, b.prompt_len, 1.3, torch.float64)[1])
    torch.testing.assert_close(fwd, (hs[0] - hs[1]) / (2 * eps), rtol=1e-6, atol=1e-9)


def _jvp_error(model: nn.Module, b: RolloutBatch, optimizer: str, lr: float) -> float:
    res = measure_entropy_change(model, b, "grpo", optimizer, lr, dtype=torch.float64)
    m = res.response_mask
    assert res.measured[m].abs().max() > 0
    assert (res.measured[~m] == 0).all()
    return float((res.predicted["jvp"][m] - res.measured[m]).norm() / res.measured[m].norm())


@pytest.mark.parametrize(("optimizer", "lr", "tol"), [("sgd", 1e-4, 5e-3), ("adam", 1e-5, 1e-2)])
def test_jvp_predicts_the_measured_change_of_the_real_step(optimizer: str, lr: float, tol: float) -> None:
    """TinyPolicy's float32 logits set a noise floor near 1e-3 relative; the rest is O(lr)."""
    model, b = tiny_setup()
    assert _jvp_error(model, b, optimizer, lr) < tol


def test_jvp_error_on_a_network_is_first_order_in_lr() -> None:
    torch.manual_seed(1)
    model = ToyLM()
    _, b = tiny_setup()
    ratio = _jvp_error(model, b, "sgd", 1e-1) / _jvp_error(model, b, "sgd", 1e-2)
    assert 6.0 < ratio < 15.0


def test_the_callers_model_is_not_modified() -> None:
    model, b = tiny_setup()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    measure_entropy_change(model, b, "grpo", "adam", 1e-2)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n])


@pytest.mark.parametrize("method", ["steer", "clip_higher", "entropy_bonus", "pos_adv_reweight", "kl_cov"])
def test_every_estimator_runs_with_other_methods(method: str) -> None:
    model, b = tiny_setup()
    res = measure_entropy_change(model, b, method, "sgd", 1e-3)
    assert set(res.predicted) == set(ESTIMATORS)
    for pred in res.predicted.values():
        assert torch.isfinite(pred).all()


def test_steer_release_is_the_negated_release_omega_and_cov_is_centred() -> None:
    g = torch.Generator().manual_seed(0)
    lp = -torch.rand(3, 4, generator=g) * 3
    old = lp - 0.1
    adv = torch.randn(3, 4, generator=g)
    h = torch.rand(3, 4, generator=g) * 2
    x = EstimatorInputs(lp, old, adv, h, torch.ones(3, 4), lr=0.5)
    p, p_old = lp.exp(), old.exp()
    torch.testing.assert_close(steer_release(x), -(adv / p_old) * p * (1 - p) * (lp + h))
    expected = -0.5 * (adv - adv.mean()) * (lp - lp.mean()) / 12
    torch.testing.assert_close(cov(x), expected)


def test_quadrants_follow_sign_of_advantage_and_log_prob_plus_entropy() -> None:
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0])
    lp = torch.log(torch.tensor([0.9, 0.01, 0.9, 0.01, 0.5]))
    h = torch.full((5,), 1.0)
    assert quadrant_labels(adv, lp, h) == ["A>0,high", "A>0,low", "A<0,high", "A<0,low", "A=0"]


def test_bad_options_are_usage_errors() -> None:
    model, b = tiny_setup()
    with pytest.raises(UsageError, match="lr"):
        measure_entropy_change(model, b, lr=0.0)
    with pytest.raises(UsageError, match="estimator"):
        measure_entropy_change(model, b, estimators=("omega_magic",))
    with pytest.raises(UsageError, match="optimizer"):
        measure_entropy_change(model, b, optimizer="lion")
