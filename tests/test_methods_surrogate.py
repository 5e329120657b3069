"""The shared PPO surrogate and the aggregation modes, against definitions written out by hand."""

import math

import pytest
import torch
from methods_helpers import random_batch

from steerbench.methods import PolicyBatch, aggregate, compute_policy_loss
from steerbench.methods.batch import MethodError


def one_token(log_prob: float, old: float, adv: float) -> PolicyBatch:
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    return PolicyBatch(
        log_prob=t(log_prob).requires_grad_(True),
        old_log_prob=t(old),
        advantages=t(adv),
        response_mask=t(1.0),
    )


@pytest.mark.parametrize(
    "ratio, adv, expected",
    [
        (1.5, 1.0, -1.2),  # A>0, r above 1+ε: clipped at 1.2
        (0.5, 1.0, -0.5),  # A>0, r below 1−ε: unclipped (pessimistic min)
        (0.5, -1.0, 0.8),  # A<0, r below 1−ε: clipped at 0.8
        (2.0, -1.0, 2.0),  # A<0, r above: unclipped
        (5.0, -1.0, 3.0),  # A<0, dual clip caps the loss at −A·c = 3
    ],
)
def test_clipped_surrogate_matches_hand_values(ratio, adv, expected):
    batch = one_token(math.log(ratio) - 1.0, -1.0, adv)
    loss, _ = compute_policy_loss("grpo", batch)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_clip_fractions_count_tokens_without_gradient():
    batch = one_token(math.log(1.5) - 1.0, -1.0, 1.0)
    loss, metrics = compute_policy_loss("grpo", batch)
    loss.backward()
    assert batch.log_prob.grad.item() == 0.0
    assert metrics["clip/frac_high"] == 1.0 and metrics["clip/frac_low"] == 0.0
    _, higher = compute_policy_loss("clip_higher", one_token(math.log(1.25) - 1.0, -1.0, 1.0))
    assert higher["clip/frac_high"] == 0.0


def test_aggregation_modes_match_their_definitions():
    g = torch.Generator().manual_seed(3)
    loss = torch.randn(3, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.float64)
    rows = [[loss[0, j].item() for j in range(4)], [loss[1, 0].item(), loss[1, 1].item()]]
    flat = rows[0] + rows[1]
    assert aggregate(loss, mask, "token-mean").item() == pytest.approx(sum(flat) / 6)
    assert aggregate(loss, mask, "token-sum").item() == pytest.approx(sum(flat))
    assert aggregate(loss, mask, "seq-mean-token-sum").item() == pytest.approx(
        (sum(rows[0]) + sum(rows[1])) / 2
    )
    assert aggregate(loss, mask, "seq-mean-token-mean").item() == pytest.approx(
        (sum(rows[0]) / 4 + sum(rows[1]) / 2) / 2
    )
    assert aggregate(loss, mask, "seq-mean-token-sum-norm").item() == pytest.approx(
        (sum(rows[0]) + sum(rows[1])) / 2 / 4
    )


def test_grpo_equals_verl_vanilla_bit_for_bit():
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos", reason="verl not installed")
    from verl.workers.config import ActorConfig  # noqa: F401

    batch = random_batch(drift=0.5)
    ours, _ = compute_policy_loss("grpo", batch, clip_low=0.2, clip_high=0.28, clip_c=3.0)
    config = type(
        "Cfg",
        (),
        {
            "clip_ratio": 0.2,
            "clip_ratio_low": 0.2,
            "clip_ratio_high": 0.28,
            "global_batch_info": {},
            "get": lambda self, k, d=None: {"clip_ratio_c": 3.0}.get(k, d),
        },
    )()
    theirs, _ = core_algos.compute_policy_loss_vanilla(
        old_log_prob=batch.old_log_prob,
        log_prob=batch.log_prob,
        advantages=batch.advantages,
        response_mask=batch.response_mask,
        loss_agg_mode="token-mean",
        config=config,
    )
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    "knobs, fragment",
    [
        ({"clip_low": 1.5}, "clip_low=1.5"),
        ({"clip_c": 0.5}, "clip_c=0.5"),
        ({"loss_agg_mode": "mean"}, "loss_agg_mode='mean'"),
        ({"not_a_knob": 1}, "unknown knob(s) not_a_knob"),
    ],
)
def test_bad_knobs_name_the_value(knobs, fragment):
    with pytest.raises(MethodError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        compute_policy_loss("grpo", random_batch(), **knobs)


def test_unknown_method_lists_the_available_ones():
    with pytest.raises(MethodError, match="unknown method 'stear'.*steer"):
        compute_policy_loss("stear", random_batch())


def test_malformed_batches_are_rejected():
    b = random_batch()
    with pytest.raises(MethodError, match="shape"):
        PolicyBatch(b.log_prob, b.old_log_prob[:, :-1], b.advantages, b.response_mask)
    with pytest.raises(MethodError, match="dtype"):
        PolicyBatch(b.log_prob, b.old_log_prob.float(), b.advantages, b.response_mask)
    with pytest.raises(MethodError, match="all zero"):
        PolicyBatch(b.log_prob, b.old_log_prob, b.advantages, torch.zeros_like(b.response_mask))
    bad = b.advantages.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(MethodError, match="NaN or Inf"):
        PolicyBatch(b.log_prob, b.old_log_prob, bad, b.response_mask)
