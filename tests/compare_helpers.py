"""Run stores in steerbench.execute's format (config.yaml, meta.json with identity, metrics.jsonl, summary.json),
written by hand so that compare's numbers can be checked against independent computations."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

# the effective clipping per scenario (contract C1) and the knobs of the methods used here
SCENARIO_CLIP = {
    "standard": (0.2, 0.2, 3.0),
    "release": (0.2, 0.28, 10.0),
    "extreme": (0.99, 5.0, 10.0),
}
OWN_KNOBS = {
    "grpo": {},
    "clip_higher": {},
    "kl": {"beta": 0.01},
    "steer": {
        "lambda_min": 0.8,
        "lambda_max": None,
        "mapping": "exp",
        "omega": "release",
        "group": "microbatch",
    },
}


def config(name: str, scenario: str, task: str, seed: int, steps: int, **extra: dict) -> dict:
    """The resolved config of a ``name`` run; ``extra`` updates sections, e.g. ``trainer={"lr": 1e-3}``."""
    low, high, c = SCENARIO_CLIP.get(scenario, (0.2, 0.2, 3.0))
    if name == "clip_higher":
        high = 0.28  # its mechanism is the clipping rule, so it keeps its own
    cfg = {
        "backend": "local",
        "method": {
            "name": name,
            "clip_low": low,
            "clip_high": high,
            "clip_c": c,
            "loss_agg_mode": "token-mean",
            "norm_adv_by_std": True,
            **OWN_KNOBS.get(name, {}),
        },
        "scenario": {"name": scenario, "random_reward": False},
        "task": {"name": task, "digits": 1},
        "model": {"d_model": 32, "n_layer": 1},
        "trainer": {"seed": seed, "steps": steps, "lr": 3e-4, "threads": 1},
        "warm_start": {"steps": 20, "cache_dir": None},
    }
    for section, values in extra.items():
        cfg[section] = {**cfg[section], **values}
    return cfg


def write_run(
    root: Path,
    method: str,
    scenario: str,
    seed: int,
    entropy: list[float],
    *,
    task: str = "arith",
    variant: str = "",
    pass1: dict[int, float] | None = None,
    passk: dict[int, float] | None = None,
    clip: tuple[float, float] = (0.01, 0.02),
    with_summary: bool = True,
    extra_lines: str = "",
    status: str = "done",
    folder: str | None = None,
    cfg: dict | None = None,
) -> Path:
    """A run store as steerbench.execute writes it; ``passk`` defaults to min(1, pass@1 + 0.2)."""
    run = root / (folder or f"run-{method}-{scenario}-{task}-{seed}-{variant or 'plain'}")
    run.mkdir(parents=True)
    cfg = cfg or config(method, scenario, task, seed, len(entropy))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    identity = {"method": method, "scenario": scenario, "task": task, "seed": seed, "variant": variant}
    (run / "meta.json").write_text(
        json.dumps({"status": status, "identity": {**identity, "backend": "local"}})
    )
    lines = []
    prev = None
    for step, h in enumerate(entropy, start=1):
        row = {
            "step": step,
            "entropy/mean": h,
            "entropy/delta": 0.0 if prev is None else h - prev,
            "reward/mean": 0.5,
            "acc/train": 0.5,
            "clip/frac_low": clip[0],
            "clip/frac_high": clip[1],
            "time/step_s": 0.5,
        }
        if pass1 and step in pass1:
            row["val/pass@1"] = pass1[step]
            row["val/pass@k"] = passk[step] if passk else min(1.0, pass1[step] + 0.2)
        lines.append(json.dumps(row))
        prev = h
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n" + extra_lines)
    if with_summary:
        summary = {**identity, "steps": len(entropy), "final": {"entropy/mean": entropy[-1]}}
        (run / "summary.json").write_text(json.dumps(summary))
    return run
