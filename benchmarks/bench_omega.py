"""Cost of the exact first-order estimator: jvp (∇θH·Δθ at every response position) vs. the optimiser step.

One run, no repetition statistics: prints both wall times and their ratio (target ≤ 5×). The step is
forward + loss + backward + SGD update on the same batch; jvp is one forward-mode directional
derivative (math attention kernel) through the same forward.

    .venv/bin/python benchmarks/bench_omega.py [--batch 64] [--d-model 128] [--n-layer 2] [--mode auto]
"""

from __future__ import annotations

import argparse
import time

import torch

from steerbench.analysis.omega.measure import entropy_stats, jvp_entropy_change
from steerbench.local.model import ModelConfig, TinyPolicy
from steerbench.methods import PolicyBatch, compute_policy_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=12)
    ap.add_argument("--response-len", type=int, default=20)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--mode", default="auto", choices=["auto", "forward", "double_backward"])
    args = ap.parse_args()

    torch.manual_seed(0)
    P, T = args.prompt_len, args.response_len
    model = TinyPolicy(ModelConfig(args.vocab, args.n_layer, 4, args.d_model, P + T)).eval()
    tokens = torch.randint(0, args.vocab, (args.batch, P + T))
    mask = torch.ones(args.batch, T)
    adv = torch.randn(args.batch, 1).expand(args.batch, T).contiguous()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        logits = model(tokens[:, :-1])[:, P - 1 :]
        lp, h, _ = entropy_stats(logits, tokens[:, P:], 1.0)
        batch = PolicyBatch(lp, lp.detach(), adv, mask, entropy=h.detach())
        loss, _ = compute_policy_loss("grpo", batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    delta = {n: torch.randn_like(p) * 1e-3 for n, p in model.named_parameters()}

    def jvp() -> None:
        jvp_entropy_change(model, tokens, P, delta, 1.0, mode=args.mode)

    step(), jvp()  # warm-up (allocator, kernels)
    t0 = time.perf_counter()
    step()
    t_step = time.perf_counter() - t0
    t0 = time.perf_counter()
    jvp()
    t_jvp = time.perf_counter() - t0
    print(
        f"batch={args.batch}×{P + T} tokens, V={args.vocab}, d_model={args.d_model}, n_layer={args.n_layer}, "
        f"threads={torch.get_num_threads()}, jvp mode={args.mode}"
    )
    print(f"optimiser step (fwd+bwd+SGD): {t_step * 1e3:8.1f} ms")
    print(f"jvp ∇θH·Δθ, all positions:    {t_jvp * 1e3:8.1f} ms")
    print(f"ratio jvp / step: {t_jvp / t_step:.2f}×  (target ≤ 5×)")


if __name__ == "__main__":
    main()
