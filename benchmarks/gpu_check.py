"""One GPU check of the paths users run at scale: ≤ 5 minutes on one GPU, nothing downloaded, no vLLM or Ray.

    python benchmarks/gpu_check.py                          # on a GPU; prints Markdown for RESULTS.md
    python benchmarks/gpu_check.py --device cpu --depths 2  # the CPU dry run CI runs: same code, small shapes

1. Ω on a depth ladder: ``validate-omega --model`` (sgd, ``--sampler generate``, random rewards) on random
   Qwen2 and Llama models of 12, 24 and 28 layers (hidden 256, GQA 8/2 on a GPU; 32, 4/2 on the CPU), with
   float32 and bfloat16 weights (rollouts from ``generate``; from vLLM too where it is installed). Checks:
   jvp Pearson ≥ 0.95 in float32, finite in bfloat16; prints peak memory.
2. Loss cost: every method's forward + backward on B × T per-token tensors on the device (512 × 4096 on a
   GPU), the median of round-robin calls, as a ratio to grpo's. Check on a GPU: every ratio ≤ 2.
3. verl's loss path: ``verl.workers.utils.losses.ppo_loss`` through steerbench's shim on a jagged
   micro-batch laid out as verl's engine passes it, for every method, equals ``compute_policy_loss`` on
   the padded tensors, with finite gradients. Said, not failed, when verl is not importable.

Each step prints as it goes. Exit 1 if a check fails, 2 when ``--device cuda`` finds no GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_losses import loss_call, synthetic_batch

from steerbench.methods import REGISTRY

SHAPES = {"cuda": dict(hidden=256, heads=8, kv_heads=2), "cpu": dict(hidden=32, heads=4, kv_heads=2)}
LOSS_SHAPE = {"cuda": (512, 4096), "cpu": (64, 512)}
OMEGA_FLAGS = [
    "--batches", "3", "--prompts", "2", "--group-size", "4", "--max-new-tokens", "24",
    "--optimizer", "sgd", "--lr", "1e-2", "--rewards", "random",
    "--estimators", "steer_release,jvp", "--n-boot", "20", "--json",
]  # fmt: skip
JVP_FLOOR = 0.95  # float32; bfloat16 must only be finite


def validate_omega(argv: list[str]) -> dict:
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


def peak_memory(device: str) -> str:
    if device != "cuda":
        return "n/a"
    return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"


def omega_ladder(device: str, depths: list[int], root: Path) -> tuple[list[str], bool]:
    from steerbench.local.tiny_hf import save_tiny_qwen2
    from steerbench.verl.prepare import PrepareSpec, prepare

    data = prepare(PrepareSpec(task="add", out=root / "add", train_size=4, val_size=16))["val"]
    from steerbench.analysis.omega.vllm_sampling import vllm_installed

    rows, ok = [], True
    for family in ("qwen2", "llama"):
        for layers in depths:
            model = save_tiny_qwen2(
                root / f"{family}{layers}", layers=layers, family=family, **SHAPES[device]
            )
            runs = [("float32", "generate"), ("bfloat16", "generate")]
            if device == "cuda" and vllm_installed() and layers == depths[0]:
                runs.append(("float32", "vllm"))  # rollouts from the real engine, where it is installed
            for dtype, sampler in runs:
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                try:
                    report = validate_omega(["--model", str(model), "--data", str(data), "--device", device,
                                             "--dtype", dtype, "--sampler", sampler, *OMEGA_FLAGS])  # fmt: skip
                    r = report["estimators"]["jvp"]["pearson"]
                    tokens, error = report["setup"]["tokens"], ""
                except Exception as exc:  # a failed run is a failed check, reported with the others
                    r, tokens, error = None, 0, f"{type(exc).__name__}: {exc}"
                passed = r is not None and math.isfinite(r) and (dtype != "float32" or r >= JVP_FLOOR)
                ok &= passed
                row = (f"| {family} | {layers} | {dtype} | {sampler} | {tokens} | {'—' if r is None else f'{r:.4f}'} | "
                       f"{peak_memory(device)} | {time.perf_counter() - start:.1f} s | "
                       f"{'ok' if passed else 'FAIL ' + error[:120]} |")  # fmt: skip
                print(row, flush=True)
                rows.append(row)
    return rows, ok


def loss_costs(device: str, repeats: int) -> tuple[list[str], bool]:
    batch, length = LOSS_SHAPE[device]
    data = {k: v.to(device) for k, v in synthetic_batch(batch, length).items()}
    calls = {name: loss_call(name, data) for name in sorted(REGISTRY)}
    times: dict[str, list[float]] = {name: [] for name in calls}

    def timed(call) -> float:  # type: ignore[no-untyped-def]
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for call in calls.values():  # warm-up
        timed(call)
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(timed(call))
    median = {name: statistics.median(ts) for name, ts in times.items()}
    rows, ok = [], True
    for name in sorted(median, key=median.__getitem__):
        ratio = median[name] / median["grpo"]
        passed = device != "cuda" or ratio <= 2.0
        ok &= passed
        rows.append(f"| {name} | {median[name] * 1e3:.2f} ms | {ratio:.2f}× | {'ok' if passed else 'FAIL'} |")
        print(rows[-1], flush=True)
    return rows, ok


def verl_loss_path(device: str, root: Path) -> tuple[list[str], bool]:
    try:
        import steerbench.verl_plugin  # noqa: F401  (registers steerbench_<method> with verl)
        from steerbench.verl.shim import extra_inputs_ppo_loss
        from steerbench.verl.tiny import engine_micro_batch, padded_reference_loss, worker_actor_config
    except ImportError as exc:
        print(f"verl's loss path: not run, verl is not importable here ({exc})", flush=True)
        return [f"| all | not run: verl not importable ({exc}) |"], True
    rows, ok = [], True
    for method in sorted(REGISTRY):
        config = worker_actor_config(root / "verl", method)
        data, output = engine_micro_batch(b=8, p=4, t=32, seed=1, device=device)
        torch.manual_seed(0)  # clip_cov's random pick: the same draw on both sides
        loss, _ = extra_inputs_ppo_loss(config, output, data)
        (grad,) = torch.autograd.grad(loss, output["log_probs"])
        torch.manual_seed(0)
        expected = padded_reference_loss(method, config, data, output)
        loss, expected = float(loss.detach()), float(expected.detach())
        diff = abs(loss - expected)
        passed = diff <= 1e-5 * max(1.0, abs(expected)) and bool(torch.isfinite(grad).all())
        ok &= passed
        rows.append(
            f"| {method} | {float(loss):.6f} | {float(expected):.6f} | {'ok' if passed else 'FAIL'} |"
        )
        print(rows[-1], flush=True)
    return rows, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--depths", default="12,24,28", help="layers of the Ω ladder, comma-separated")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per method")
    ap.add_argument(
        "--out", type=Path, default=None, help="folder for the models and data (default: a temp dir)"
    )
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: run with --device cpu for the dry run", file=sys.stderr)
        return 2
    depths = [int(d) for d in args.depths.split(",")]
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU dry run"
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        root = args.out or Path(tmp)
        sections = []
        print("## 1. Ω depth ladder", flush=True)
        omega_rows, omega_ok = omega_ladder(args.device, depths, root)
        sections.append(("Ω depth ladder: `validate-omega --model`, jvp Pearson",
                         "| family | layers | dtype | sampler | tokens | jvp r | peak memory | wall | check |", omega_rows))  # fmt: skip
        print("## 2. loss cost", flush=True)
        loss_rows, loss_ok = loss_costs(args.device, args.repeats)
        b, t = LOSS_SHAPE[args.device]
        sections.append((f"Loss forward + backward, {b} × {t}, ratio to grpo",
                         "| method | median | × grpo | check |", loss_rows))  # fmt: skip
        print("## 3. verl's loss path", flush=True)
        verl_rows, verl_ok = verl_loss_path(args.device, root)
        sections.append(("verl's ppo_loss on a jagged micro-batch vs compute_policy_loss",
                         "| method | verl | steerbench | check |", verl_rows))  # fmt: skip
    print(f"\n## GPU check ({name}, torch {torch.__version__})\n")
    print(f"`python benchmarks/gpu_check.py --device {args.device} --depths {args.depths}`\n")
    for title, header, rows in sections:
        columns = header.count("|") - 1
        print(f"**{title}**\n\n{header}\n|{' --- |' * columns}\n" + "\n".join(rows) + "\n")
    ok = omega_ok and loss_ok and verl_ok
    print("all checks ok" if ok else "FAILED checks above")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
