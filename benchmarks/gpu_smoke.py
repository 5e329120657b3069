"""GPU smoke test of the verl backend: one GPU, ≤ 8 minutes, nothing downloaded.

    python benchmarks/gpu_smoke.py --out /tmp/steerbench_gpu_smoke            # on a machine with a GPU
    python benchmarks/gpu_smoke.py --out /tmp/steerbench_gpu_smoke --check    # anywhere: build and validate only

Stages (each asserts; the first failure stops the run with exit 1):
  0. inputs   a tiny random Qwen2 (head dim 64) + offline byte-level tokenizer; add (train) / countdown (val) parquet
  1. probe    a num_gpus=1 Ray actor started with steerbench's runtime env sees exactly one device
  2. steer    2 steps, scenario=random_reward (a random model scores nothing otherwise): exit 0, 2 rows,
              steer/weight_mean < 1, finite entropy and loss, grad norm > 0, validation metrics present,
              no "gen_batch_size defaulted to 1" in the driver log (verl's sync trainer kept)
  3. resume   the same run to step 3: verl resumes from its step-2 checkpoint; rows 1, 2, 3
  4. others   one step each of kl, unlikeliness, clip_cov, while the time budget lasts
  5. omega    one step with trainer.omega_every=1: omega/<estimator>/pearson logged (skip with --no-omega)

Runs go through the path users run: compose() → build_verl_launch(cfg, run_dir) → verl → import_verl_logs.
``--check`` does stage 0 and composes and validates every stage's command against verl's config (CPU is
enough); it prints the commands. ``--extra KEY=VALUE`` adds raw verl overrides (e.g. an attention backend).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from steerbench.config import compose
from steerbench.verl.importer import import_verl_logs
from steerbench.verl.launch import build_verl_launch
from steerbench.verl.tiny import tiny_run_inputs

BUDGET_S = 8 * 60
# small batch and lengths; a checkpoint every step for the resume stage; validation every step
SMOKE_OVERRIDES = [
    "data.train_batch_size=4",
    "data.max_prompt_length=128",
    "data.max_response_length=64",
    "actor_rollout_ref.rollout.n=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.rollout.gpu_memory_utilization=0.3",
    "actor_rollout_ref.rollout.enforce_eager=true",
    "trainer.val_before_train=false",
    "trainer.test_freq=1",
    "trainer.save_freq=1",
]


class SmokeFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailed(message)


def run_config(inputs: dict[str, Path], method: str, steps: int, extra: list[str], *more: str):
    overrides = ",".join(f"'{o}'" for o in [*SMOKE_OVERRIDES, *extra])
    return compose(
        [
            "backend=verl",
            f"method={method}",
            "scenario=random_reward",
            f"model.hf_path={inputs['model']}",
            f"verl.train_files={inputs['train']}",
            f"verl.val_files={inputs['val']}",
            "verl.n_gpus_per_node=1",
            f"trainer.steps={steps}",
            f"verl.overrides=[{overrides}]",
            *more,
        ]
    )


def train(cfg, run_dir: Path, timeout_s: float) -> tuple[list[dict], str]:
    """Run verl to the end as train_verl does, keeping the driver log; returns (metrics rows, log text)."""
    launch = build_verl_launch(cfg, run_dir)
    Path(launch.log_path).parent.mkdir(parents=True, exist_ok=True)
    log = run_dir / f"driver-{launch.meta['attempt']:03d}.log"
    with open(log, "w") as fh:
        proc = subprocess.run(
            launch.command,
            env={**os.environ, **launch.env},
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
        )
    text = log.read_text(errors="replace")
    check(proc.returncode == 0, f"verl exited with {proc.returncode}; see {log}")
    import_verl_logs(None, run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    return rows, text


def finite(row: dict, key: str) -> bool:
    return key in row and math.isfinite(float(row[key]))


def stage_probe() -> dict:
    import ray

    from steerbench.verl.hook import HOOK

    ray.init(num_gpus=1, include_dashboard=False, runtime_env={"worker_process_setup_hook": HOOK})
    try:

        @ray.remote(num_gpus=1)
        class Probe:
            def devices(self) -> dict:
                import os

                import torch

                return {
                    "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
                    "device_count": torch.cuda.device_count(),
                    "plugin_env": os.environ.get("VERL_USE_EXTERNAL_MODULES"),
                }

        seen = ray.get(Probe.remote().devices.remote(), timeout=120)
    finally:
        ray.shutdown()
    check(seen["device_count"] == 1, f"a num_gpus=1 actor sees {seen['device_count']} devices: {seen}")
    check("steerbench.verl_plugin" in (seen["plugin_env"] or ""), f"the setup hook did not run: {seen}")
    return seen


def stage_steer(inputs, out: Path, extra: list[str], left: float) -> dict:
    rows, log = train(run_config(inputs, "steer", 2, extra), out / "steer", left)
    check([r["step"] for r in rows] == [1, 2], f"steps {[r['step'] for r in rows]}, expected [1, 2]")
    for r in rows:
        check(r.get("steer/weight_mean", 1.0) < 1.0, f"steer/weight_mean not < 1 at step {r['step']}")
        check(finite(r, "entropy/mean") and finite(r, "loss/pg"), f"entropy/loss not finite at {r['step']}")
        check(r.get("grad/norm", 0.0) > 0.0, f"grad norm not > 0 at step {r['step']}")
        check(any(k.startswith("val/pass@1") for k in r), f"no validation metrics at step {r['step']}")
        check("steer/entropy_rollout_mean" in r, "steer did not report π_old's entropy (entropy=rollout)")
    check("gen_batch_size defaulted to 1" not in log, "verl switched to the async path: gen_batch_size=1")
    return {"rows": len(rows), "weight_mean": [r["steer/weight_mean"] for r in rows]}


def stage_resume(inputs, out: Path, extra: list[str], left: float) -> dict:
    rows, _ = train(run_config(inputs, "steer", 3, extra), out / "steer", left)
    check([r["step"] for r in rows] == [1, 2, 3], f"after resume steps {[r['step'] for r in rows]}")
    attempts = sorted((out / "steer" / "verl_logs").glob("attempt-*.jsonl"))
    steps = [json.loads(line)["step"] for line in attempts[-1].read_text().splitlines() if line]
    check(steps == [3], f"the resumed attempt logged steps {steps}, expected only step 3")
    return {"attempts": len(attempts)}


def stage_one_step(inputs, out: Path, method: str, extra: list[str], left: float, *more: str) -> dict:
    rows, _ = train(run_config(inputs, method, 1, extra, *more), out / method, left)
    check(len(rows) == 1 and rows[0].get("grad/norm", 0.0) > 0.0, f"{method}: one step with grad norm > 0")
    if "trainer.omega_every=1" in more:
        check(
            finite(rows[0], "omega/steer_release/pearson"),
            "omega_every=1 logged no omega/steer_release/pearson",
        )
    return {"grad_norm": rows[0]["grad/norm"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--check", action="store_true", help="build inputs and validate every command; no GPU")
    ap.add_argument("--no-omega", action="store_true", help="skip the step with trainer.omega_every=1")
    ap.add_argument("--extra", action="append", default=[], help="raw verl override, repeatable")
    args = ap.parse_args()
    start = time.monotonic()
    results: dict[str, object] = {}
    inputs = tiny_run_inputs(args.out / "inputs")
    results["inputs"] = {k: str(v) for k, v in inputs.items()}
    plan: list[tuple[str, str, int, tuple[str, ...]]] = [
        ("steer", "steer", 2, ()),
        ("resume", "steer", 3, ()),
        *([] if args.no_omega else [("omega", "steer", 1, ("trainer.omega_every=1",))]),
        ("kl", "kl", 1, ()),
        ("unlikeliness", "unlikeliness", 1, ()),
        ("clip_cov", "clip_cov", 1, ()),
    ]
    if args.check:
        for name, method, steps, more in plan:
            cfg = run_config(inputs, method, steps, args.extra, *more)
            launch = build_verl_launch(cfg, args.out / "check" / name)  # validated against verl's config
            results[name] = " ".join(launch.command)
        print(json.dumps(results, indent=2))
        return 0

    def left() -> float:
        return BUDGET_S - (time.monotonic() - start)

    try:
        results["probe"] = stage_probe()
        results["steer"] = stage_steer(inputs, args.out, args.extra, left())
        results["resume"] = stage_resume(inputs, args.out, args.extra, left())
        for name, method, _, more in plan[2:]:
            if left() < 90:
                results[name] = "skipped: time budget"
                continue
            out = args.out / "omega" if name == "omega" else args.out
            results[name] = stage_one_step(inputs, out, method, args.extra, left(), *more)
    except (SmokeFailed, subprocess.TimeoutExpired) as exc:
        results["failed"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(results, indent=2, default=str))
        return 1
    results["elapsed_s"] = round(time.monotonic() - start, 1)
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
