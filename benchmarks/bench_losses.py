"""Each method's policy loss (forward + backward) against grpo's, on B × T per-token tensors.

    python benchmarks/bench_losses.py [--batch 512] [--length 4096] [--repeats 7] [--threads 2]

One synthetic batch shaped like a long-response RL batch: log π_θ (a leaf with gradient), log π_old
= log π_θ + N(0, 0.05²) clamped ≤ 0, group-normalised ±1 advantages broadcast over the response,
random response lengths, entropy in (0, 3) nats (with gradient for methods that need it) and π_old's
sampling entropy beside it (STEER's default H), a reference log-prob for KL. Every method runs with its
registered defaults. Timing: the median of `repeats` calls of `compute_policy_loss(...)` +
`loss.backward()`, methods timed round-robin (one call of each per round) so a busy machine slows all
alike. Prints seconds and the ratio to grpo.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import OtherLoad, describe

from steerbench.methods import REGISTRY, PolicyBatch, compute_policy_loss, get_method


def synthetic_batch(batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    log_prob = -torch.empty(batch, length).exponential_(2.0, generator=g)
    old = (log_prob + 0.05 * torch.randn(batch, length, generator=g)).clamp(max=0.0)
    groups = batch // 8 if batch >= 8 else 1
    group_index = torch.arange(batch) % groups
    rewards = torch.bernoulli(torch.full((batch,), 0.5), generator=g)
    lengths = torch.randint(length // 4, length + 1, (batch,), generator=g)
    mask = (torch.arange(length) < lengths[:, None]).float()
    advantages = ((rewards - 0.5) * 2)[:, None].expand(batch, length).contiguous()
    entropy = 3 * torch.rand(batch, length, generator=g)
    old_entropy = (entropy + 0.05 * torch.randn(batch, length, generator=g)).clamp(min=0.0)
    ref = (log_prob + 0.1 * torch.randn(batch, length, generator=g)).clamp(max=0.0)
    return {
        "log_prob": log_prob,
        "old_log_prob": old,
        "advantages": advantages,
        "response_mask": mask,
        "entropy": entropy,
        "old_entropy": old_entropy,
        "ref_log_prob": ref,
        "group_index": group_index,
        "rewards": rewards,
    }


def loss_call(name: str, data: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
    needs = get_method(name).needs
    log_prob = data["log_prob"].clone().requires_grad_(True)
    entropy = data["entropy"].clone().requires_grad_("entropy_grad" in needs)
    batch = PolicyBatch(
        log_prob=log_prob,
        old_log_prob=data["old_log_prob"],
        advantages=data["advantages"],
        response_mask=data["response_mask"],
        entropy=entropy,
        ref_log_prob=data["ref_log_prob"],
        group_index=data["group_index"],
        rewards=data["rewards"],
        old_entropy=data["old_entropy"],
    )

    def run() -> None:
        log_prob.grad = None
        entropy.grad = None
        loss, _ = compute_policy_loss(name, batch)
        loss.backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = synthetic_batch(args.batch, args.length)
    calls = {name: loss_call(name, data) for name in sorted(REGISTRY)}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up
        call()
    with OtherLoad() as load:
        for _ in range(args.repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    print(
        f"loss forward + backward, B×T = {args.batch}×{args.length}, {args.threads} threads, "
        f"median of {args.repeats} round-robin calls"
    )
    for name in sorted(median, key=median.get):  # type: ignore[arg-type]
        print(f"{name:18s} {median[name] * 1e3:9.1f} ms   {median[name] / median['grpo']:5.2f}× grpo")
    print(describe(load.share))


if __name__ == "__main__":
    main()
