"""Random PolicyBatch factory shared by the method tests."""

from __future__ import annotations

import torch

from steerbench.methods import PolicyBatch


def random_batch(
    rows: int = 6, cols: int = 5, seed: int = 0, drift: float = 0.3, entropy_grad: bool = False
) -> PolicyBatch:
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(rows, cols, generator=g, dtype=torch.float64) * 3 - 0.01
    log_prob = (old + drift * torch.randn(rows, cols, generator=g, dtype=torch.float64)).clamp(max=-1e-3)
    log_prob.requires_grad_(True)
    mask = torch.ones(rows, cols, dtype=torch.float64)
    mask[0, -2:] = 0
    mask[-1, -1:] = 0
    adv = torch.randn(rows, 1, generator=g, dtype=torch.float64).expand(rows, cols).clone()
    entropy = torch.rand(rows, cols, generator=g, dtype=torch.float64) * 2
    if entropy_grad:
        entropy.requires_grad_(True)
    return PolicyBatch(
        log_prob=log_prob,
        old_log_prob=old,
        advantages=adv,
        response_mask=mask,
        entropy=entropy,
        ref_log_prob=old - 0.1 * torch.rand(rows, cols, generator=g, dtype=torch.float64),
        group_index=torch.arange(rows) // 3,
        rewards=torch.randint(0, 2, (rows,), generator=g).to(torch.float64),
        old_entropy=entropy.detach().clone(),  # on-policy first mini-batch: π_old's entropy is π_θ's
    )
