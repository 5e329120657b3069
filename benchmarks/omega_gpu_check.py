"""≤ 5-minute GPU check of ``validate-omega`` on a tiny random Qwen2 (no download, no user weights).

    python benchmarks/omega_gpu_check.py [--data ../shared/datasets/math500.parquet] [--out /tmp/omega_gpu]

Builds a random 4-layer Qwen2 (hidden 128) with a BPE tokenizer trained offline on the dataset's prompts,
then runs the real command on ``--device cuda`` three ways and checks each:

1. float64, SGD lr 1e-3: ``jvp`` Pearson ≥ 0.99 (the exact first order, now through CUDA kernels);
2. float32 at lr 1e-2 with ``--row-chunk 2`` (the memory-aware path): jvp Pearson ≥ 0.95 (float32 rounding
   of a random model's tiny ΔH costs a few points at lr 1e-3);
3. bfloat16 weights (float32 statistics): runs and reports dtype bfloat16;
4. when vLLM is installed, float32 with rollouts from vLLM (``--sampler vllm``): jvp Pearson ≥ 0.95.
The first three sample with ``generate``.

Prints wall time and peak GPU memory per run, and a Markdown block for ``benchmarks/RESULTS.md``.
Exit 1 if a check fails, 2 without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import torch

RUNS = {
    "float64": ["--dtype", "float64", "--lr", "1e-3", "--sampler", "generate"],
    "float32 row-chunk 2": [
        "--dtype",
        "float32",
        "--lr",
        "1e-2",
        "--row-chunk",
        "2",
        "--sampler",
        "generate",
    ],
    "bfloat16": ["--dtype", "bfloat16", "--lr", "1e-2", "--sampler", "generate"],
}
VLLM_RUN = {"float32 vLLM rollouts": ["--dtype", "float32", "--lr", "1e-2", "--sampler", "vllm"]}
COMMON = [
    "--batches", "3", "--prompts", "4", "--group-size", "4",
    "--max-new-tokens", "64", "--max-prompt-tokens", "256", "--n-boot", "20", "--json",
]  # fmt: skip


def run_cli(argv: list[str]) -> dict:
    from steerbench.cli import main

    sys.argv = ["steerbench", "validate-omega", *argv]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main()
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(f"validate-omega exited {exc.code}") from None
    return json.loads(buf.getvalue())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared/datasets/math500.parquet")
    )
    ap.add_argument("--out", default="/tmp/omega_gpu_check")
    ap.add_argument("--device", default="cuda", help="cuda (the check); cpu only dry-runs this script")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: this check needs one", file=sys.stderr)
        return 2
    import pandas as pd

    from steerbench.local.tiny_hf import save_tiny_qwen2

    texts = [m["content"] for p in pd.read_parquet(args.data).prompt[:2000] for m in p]
    model = save_tiny_qwen2(Path(args.out) / "model", texts, layers=4, hidden=128, vocab_size=2000)
    from steerbench.analysis.vllm_sampling import vllm_installed

    runs = {**RUNS, **(VLLM_RUN if cuda and vllm_installed() else {})}
    rows, ok = [], True
    for name, flags in runs.items():
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        report = run_cli(
            ["--model", str(model), "--data", args.data, "--device", args.device, *COMMON, *flags]
        )
        wall = time.perf_counter() - t0
        peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if cuda else "n/a"
        s, jvp = report["setup"], report["estimators"]["jvp"]
        passed = s["device"].startswith(args.device) and s["tokens"] > 0
        passed = passed and s["sampler"] == flags[flags.index("--sampler") + 1]
        if name != "bfloat16":
            floor = 0.99 if name == "float64" else 0.95
            passed = passed and jvp["pearson"] is not None and jvp["pearson"] >= floor
        else:
            passed = passed and s["dtype"] == "bfloat16"
        ok = ok and passed
        rows.append(
            f"| {name} | {s['tokens']} | {jvp['pearson']:.4f} | "
            f"{report['estimators']['steer_release']['pearson']:.3f} | {wall:.1f} s | {peak} | "
            f"{'ok' if passed else 'FAIL'} |"
        )
    print(f"## validate-omega GPU check ({torch.cuda.get_device_name() if cuda else 'CPU dry run'})\n")
    print("`python benchmarks/omega_gpu_check.py` (random 4-layer Qwen2, hidden 128, BPE vocab 2000):\n")
    print("| run | tokens | jvp Pearson | steer_release Pearson | wall | peak GPU memory | check |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
