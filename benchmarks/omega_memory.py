"""Measure the memory of one Ω measurement (``measure_entropy_change``: forward, backward, JVP) and fit the
bytes-per-token model ``steerbench.analysis.omega.measure.MEMORY_MODEL`` that chooses ``--row-chunk`` by default.

    python benchmarks/omega_memory.py            # ~3 min on 2 CPU cores; prints the fit and each point

Each point runs in a fresh process: a random Llama (layers × hidden, vocabulary V) scores a batch of
``rows`` sequences of ``length`` tokens in float32 with ``row_chunk = rows``; its peak resident memory above
the resident memory just before the call is the cost. The fit, by least squares over the points:

    peak − before ≈ a · parameter bytes + rows · length · (b · 4V + c · layers · hidden · 4) + d

(a: the model's copy, its gradient and the step; b: float32 copies of the logits' vocabulary row; c:
activations per layer and hidden unit; d: a fixed overhead). It prints the four coefficients, each
point's measured and predicted cost, and the worst relative error.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

POINTS = [  # layers, hidden, vocab, rows, length
    (2, 64, 16384, 4, 64),
    (2, 64, 16384, 8, 128),
    (2, 64, 49152, 4, 96),
    (8, 256, 4096, 4, 128),
    (8, 256, 4096, 8, 256),
    (16, 384, 8192, 4, 128),
    (4, 576, 49152, 4, 128),
    (30, 576, 4096, 2, 128),
]

CHILD = """
import json, resource, sys, torch, transformers
from steerbench.analysis.omega.measure import RolloutBatch, measure_entropy_change
from steerbench.local.hf import HFPolicy

layers, hidden, vocab, rows, length = map(int, sys.argv[1:])
torch.manual_seed(0)
cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=3 * hidden,
                               num_hidden_layers=layers, num_attention_heads=hidden // 64 or 1,
                               num_key_value_heads=hidden // 192 or 1, max_position_embeddings=2 * length)
policy = HFPolicy(transformers.LlamaForCausalLM(cfg))
prompt = 8
tokens = torch.randint(0, vocab, (rows, prompt + length))
batch = RolloutBatch(tokens=tokens, prompt_len=prompt, response_mask=torch.ones(rows, length),
                     advantages=torch.randn(rows, 1).expand(rows, length).contiguous())
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
before = rss()
measure_entropy_change(policy, batch, row_chunk=rows, estimators=("steer_release", "jvp"))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
params = sum(p.numel() for p in policy.parameters()) * 4
print(json.dumps({"cost": peak - before, "params": params}))
"""


def measure(point: tuple[int, ...]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, point)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    for point in POINTS:
        m = measure(point)
        layers, hidden, vocab, n, length = point
        rows.append(
            (m["params"], n * length * 4 * vocab, n * length * layers * hidden * 4, 1.0, m["cost"], point)
        )
        print(f"{point}: {m['cost'] / 2**20:.0f} MiB", flush=True)
    X = np.array([r[:4] for r in rows], dtype=float)
    y = np.array([r[4] for r in rows], dtype=float)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    pred = X @ coef
    print(
        f"\na = {coef[0]:.2f} (× parameter bytes), b = {coef[1]:.2f} (× 4V per token), "
        f"c = {coef[2]:.2f} (× 4·L·H per token), d = {coef[3] / 2**20:.0f} MiB"
    )
    print("| layers | hidden | vocab | rows | length | measured MiB | predicted MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r, p in zip(rows, pred, strict=True):
        print("| " + " | ".join(map(str, r[5])) + f" | {r[4] / 2**20:.0f} | {p / 2**20:.0f} |")
    print(f"worst relative error: {float(np.max(np.abs(pred - y) / y)):.2f}")


if __name__ == "__main__":
    main()
