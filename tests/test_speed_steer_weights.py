"""STEER's all-groups-at-once weights equal the per-group definition, group by group (REFERENCES C.3–C.5)."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from steerbench.methods import PolicyBatch, compute_policy_loss
from steerbench.methods.steer import MIN_OMEGA_SCALE, group_weights, omega_release


def one_group(omega, mask, lambda_min, lambda_max, mapping):  # type: ignore[no-untyped-def]
    """The definition on one group, written out with boolean indexing (the pre-vectorised form)."""
    valid = mask.bool()
    magnitude = torch.where(torch.isfinite(omega), omega, torch.zeros_like(omega)).abs()
    if not valid.any():
        return torch.ones_like(omega)
    top = magnitude[valid].max()
    if mapping == "exp":
        k = -math.log(lambda_min) / torch.clamp(top, min=MIN_OMEGA_SCALE)
        mapped = torch.clamp(torch.exp(-k * magnitude), lambda_min, lambda_max)
    else:
        bottom = magnitude[valid].min()
        if top == bottom:
            mapped = torch.full_like(magnitude, (lambda_min + lambda_max) / 2)
        else:
            span = (magnitude - bottom) * (lambda_max - lambda_min) / (top - bottom)
            mapped = torch.clamp(lambda_max - span, lambda_min, lambda_max)
    return torch.where(valid, mapped, torch.ones_like(mapped))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 13),
    cols=st.integers(1, 9),
    rows_per_group=st.integers(1, 6),
    mapping=st.sampled_from(["exp", "linear"]),
    seed=st.integers(0, 10_000),
)
def test_grouped_weights_equal_the_per_group_definition(rows, cols, rows_per_group, mapping, seed):
    g = torch.Generator().manual_seed(seed)
    omega = torch.randn(rows, cols, generator=g) * torch.rand(rows, 1, generator=g)
    omega[torch.rand(rows, cols, generator=g) < 0.1] = float("nan")
    omega[torch.rand(rows, cols, generator=g) < 0.05] = float("inf")
    mask = (torch.rand(rows, cols, generator=g) < 0.7).float()
    mask[rows // 2] = 0  # a row, and for rows_per_group = 1 a whole group, without valid tokens
    lambda_max = 1.0 if mapping == "exp" else 1.2
    weights, magnitude, nonfinite = group_weights(omega, mask, rows_per_group, 0.7, lambda_max, mapping)
    for start in range(0, rows, rows_per_group):
        part = slice(start, start + rows_per_group)
        expected = one_group(omega[part], mask[part], 0.7, lambda_max, mapping)
        assert torch.equal(weights[part], expected)
    assert nonfinite == int((~torch.isfinite(omega) & mask.bool()).sum())
    assert torch.equal(magnitude, torch.nan_to_num(omega, nan=0.0, posinf=0.0).abs())


def test_steer_loss_uses_microbatch_groups_of_group_size_rows():
    # two groups of 2 rows: a token's weight depends only on the max |Ω| of its own group
    g = torch.Generator().manual_seed(3)
    lp = -torch.rand(4, 5, generator=g, dtype=torch.float64) * 3
    old = lp + 0.01 * torch.randn(4, 5, generator=g, dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 4.0, -4.0], dtype=torch.float64)[:, None].expand(4, 5).contiguous()
    ent = torch.rand(4, 5, generator=g, dtype=torch.float64)
    mask = torch.ones(4, 5)
    leaf = lp.clone().requires_grad_(True)
    batch = PolicyBatch(
        log_prob=leaf, old_log_prob=old, advantages=adv, response_mask=mask, entropy=ent, old_entropy=ent
    )
    loss, metrics = compute_policy_loss("steer", batch, group_size=2, lambda_min=0.5)
    loss.backward()
    omega = omega_release(adv, ent, old, lp)
    weights = torch.cat(
        [one_group(omega[:2], mask[:2], 0.5, 1.0, "exp"), one_group(omega[2:], mask[2:], 0.5, 1.0, "exp")]
    )
    assert metrics["steer/weight_mean"] == weights.mean().item()
    assert metrics["steer/weight_min"] == weights.min().item() == 0.5
    # token-mean of w·(−A·r) with r = exp(lp − old): d/dlp = −w·A·r / N (no token is clipped at |lp−old| ≤ 0.05)
    ratio = torch.exp(lp - old)
    assert (lp - old).abs().max() < 0.05
    assert torch.allclose(leaf.grad, -weights * adv * ratio / 20, rtol=1e-12, atol=0)
