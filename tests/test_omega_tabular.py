"""Exact testbed: a tabular softmax policy (free logits, one state per position) where first order is closed form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from steerbench.analysis.omega.estimators import EstimatorInputs, softmax_full, steer_paper
from steerbench.analysis.omega.measure import RolloutBatch, entropy_stats, measure_entropy_change


class TabularPolicy(nn.Module):
    """logits[b, l] = table[b, l]: every (sequence, position) is its own state with free logits."""

    def __init__(self, batch: int, length: int, vocab: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(batch, length, vocab, generator=g, dtype=torch.float64) * 1.5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[: tokens.shape[0], : tokens.shape[1]]


def make_batch(
    B: int = 6, P: int = 2, T: int = 5, V: int = 7, seed: int = 0
) -> tuple[TabularPolicy, RolloutBatch]:
    g = torch.Generator().manual_seed(seed)
    model = TabularPolicy(B, P + T - 1, V, seed)
    tokens = torch.randint(0, V, (B, P + T), generator=g)
    mask = torch.ones(B, T)
    mask[0, -2:] = 0  # some padding
    adv = torch.randn(B, 1, generator=g, dtype=torch.float64).expand(B, T).clone()
    return model, RolloutBatch(tokens=tokens, prompt_len=P, response_mask=mask, advantages=adv)


def pg_loss(batch) -> torch.Tensor:  # noqa: ANN001  plain token-mean policy gradient −mean(A·r)
    ratio = torch.exp(batch.log_prob - batch.old_log_prob)
    m = batch.mask
    return -(batch.advantages * ratio * m).sum() / m.sum()


def rel_error(pred: torch.Tensor, meas: torch.Tensor) -> float:
    return float((pred - meas).norm() / meas.norm())


def run(lr: float, loss_fn=pg_loss, method: str = "grpo"):  # noqa: ANN001, ANN201
    model, batch = make_batch()
    return measure_entropy_change(
        model,
        batch,
        method=method,
        optimizer="sgd",
        lr=lr,
        estimators=("softmax_full", "jvp", "steer_paper"),
        loss_fn=loss_fn,
        dtype=torch.float64,
    )


@pytest.mark.parametrize("name", ["softmax_full", "jvp"])
def test_exact_first_order_estimators_match_measured_change_at_small_lr(name: str) -> None:
    res = run(1e-5)
    assert res.measured.abs().max() > 0
    assert rel_error(res.predicted[name], res.measured) < 1e-6


@pytest.mark.parametrize("name", ["softmax_full", "jvp"])
def test_first_order_error_is_second_order_in_lr(name: str) -> None:
    big = run(1e-2)
    err_big = rel_error(big.predicted[name], big.measured)
    small = run(1e-3)
    err_small = rel_error(small.predicted[name], small.measured)
    ratio = err_big / err_small  # relative error is O(lr): ratio ≈ 10
    assert 6.0 < ratio < 15.0


def test_jvp_equals_softmax_full_on_a_tabular_policy() -> None:
    res = run(1e-3)
    torch.testing.assert_close(res.predicted["jvp"], res.predicted["softmax_full"], rtol=1e-9, atol=1e-15)


def test_grpo_loss_through_method_registry_gives_the_same_step() -> None:
    """r = 1 and no clipping on a fresh step: grpo's surrogate equals −mean(A·r)."""
    own = run(1e-5)
    reg = run(1e-5, loss_fn=None, method="grpo")
    torch.testing.assert_close(reg.measured, own.measured, rtol=1e-9, atol=1e-18)
    assert rel_error(reg.predicted["softmax_full"], reg.measured) < 1e-6


def test_steer_paper_is_exact_when_only_the_sampled_logit_moves() -> None:
    """REFERENCES A.3 b: Δz_k = η·r·A·(1−π_k) on the sampled logit only ⇒ ΔH = −η r A π_k(1−π_k)(log π_k + H)."""
    g = torch.Generator().manual_seed(3)
    V, S = 6, 40
    z = torch.randn(S, V, generator=g, dtype=torch.float64) * 2
    k = torch.randint(0, V, (S, 1), generator=g)
    adv = torch.randn(S, 1, generator=g, dtype=torch.float64)
    r = torch.exp(torch.randn(S, 1, generator=g, dtype=torch.float64) * 0.1)
    eta = 1e-6
    lp, h, e = entropy_stats(z[:, None], k, temperature=1.0, dtype=torch.float64)
    p = lp.exp()
    dz = torch.zeros_like(z).scatter(1, k, eta * r * adv * (1 - p))
    _, h1, _ = entropy_stats((z + dz)[:, None], k, temperature=1.0, dtype=torch.float64)
    measured = h1 - h
    x = EstimatorInputs(
        log_prob=lp,
        old_log_prob=lp - torch.log(r),
        advantages=adv,
        entropy=h,
        response_mask=torch.ones_like(lp),
        expected_term=e,
        agg_weight=torch.ones_like(lp),
        lr=eta,
    )
    assert rel_error(steer_paper(x), measured) < 1e-5
    # and it is NOT the full-softmax form (A.3 b: "not interchangeable")
    assert rel_error(softmax_full(x), measured) > 0.1


def test_entropy_stats_closed_form_on_uniform_and_chunking() -> None:
    V = 11
    lp, h, e = entropy_stats(torch.zeros(1, 3, V), torch.zeros(1, 3, dtype=torch.long), 1.0)
    assert torch.allclose(h, torch.full((1, 3), math.log(V)))
    assert torch.allclose(e, torch.zeros(1, 3), atol=1e-6)  # log π_j + H = 0 for every j
    logits = torch.randn(2, 9, 50, generator=torch.Generator().manual_seed(0))
    tgt = torch.randint(0, 50, (2, 9))
    whole = entropy_stats(logits, tgt, 0.7)
    chunked = entropy_stats(logits, tgt, 0.7, chunk=2)
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b)
