"""W-REINFORCE and its halves (Zhu et al. 2025): objective w = λ·PSR + NSR, psr, nsr, one knob."""

from __future__ import annotations

import pytest
import torch

from steerbench.methods import MethodError, PolicyBatch, compute_advantages, compute_policy_loss

REWARDS = torch.tensor([1.0, 0.0, -1.0, 1.0])  # correct, wrong (0/1 verifier), wrong (±1 verifier), correct
GROUPS = torch.tensor([0, 0, 1, 1])


@pytest.mark.parametrize(
    "objective, expected",
    [
        ("w", [0.1, -1.0, -1.0, 0.1]),  # λ on correct, −1 on wrong
        ("psr", [1.0, 0.0, 0.0, 1.0]),  # reinforce the correct samples only
        ("nsr", [0.0, -1.0, -1.0, 0.0]),  # penalise the wrong samples only
    ],
)
def test_each_objective_gives_its_published_advantages(objective, expected):
    adv = compute_advantages("w_reinforce", REWARDS, GROUPS, torch.ones(4, 3), objective=objective)
    assert adv[:, 0].tolist() == pytest.approx(expected)
    assert torch.equal(adv[:, 0:1].expand(4, 3), adv)  # one advantage per sequence, no group normalisation


def test_lambda_scales_only_the_w_objective():
    w = compute_advantages("w_reinforce", REWARDS, GROUPS, torch.ones(4, 1), positive_weight=0.5)
    psr = compute_advantages(
        "w_reinforce", REWARDS, GROUPS, torch.ones(4, 1), objective="psr", positive_weight=0.5
    )
    assert w[0, 0].item() == 0.5 and psr[0, 0].item() == 1.0


def test_w_loss_is_lambda_psr_plus_nsr_at_ratio_one():
    # two one-token sequences sampled by the current policy (r = 1, nothing clips): correct, then wrong
    rewards = torch.tensor([1.0, 0.0], dtype=torch.float64)
    losses, grads = {}, {}
    for objective in ("w", "psr", "nsr"):
        adv = compute_advantages(
            "w_reinforce", rewards, torch.zeros(2, dtype=torch.long), torch.ones(2, 1), objective=objective
        )
        log_p = torch.tensor([[-0.7], [-1.2]], dtype=torch.float64, requires_grad=True)
        batch = PolicyBatch(
            log_p, log_p.detach(), adv.to(torch.float64), torch.ones(2, 1, dtype=torch.float64)
        )
        loss, _ = compute_policy_loss("w_reinforce", batch, objective=objective)
        losses[objective] = loss.item()
        grads[objective] = torch.autograd.grad(loss, log_p)[0].flatten().tolist()
    # token-mean of −A·r over the two tokens, by hand
    assert losses["psr"] == pytest.approx(-1 / 2) and losses["nsr"] == pytest.approx(1 / 2)
    assert losses["w"] == pytest.approx(0.1 * losses["psr"] + losses["nsr"])
    assert grads["psr"] == pytest.approx([-0.5, 0.0]) and grads["nsr"] == pytest.approx([0.0, 0.5])


def test_unknown_objective_names_the_choices():
    with pytest.raises(MethodError, match="objective='rloo' is unknown; choose one of w, psr, nsr"):
        compute_advantages("w_reinforce", REWARDS, GROUPS, torch.ones(4, 1), objective="rloo")
