"""The seed plan: the fewest runs per method cell whose MDE against its grpo control is within a third of
grpo's effect (analysis/compare/seed_plan.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from compare_helpers import write_run

from steerbench.analysis.compare import seed_plan
from steerbench.analysis.compare.inference import min_detectable_welch


def _runs(method: str, scenario: str, values: list[float]) -> list[dict]:
    return [
        {
            "task": "t",
            "scenario": scenario,
            "variant": "",
            "method": method,
            "seed": s,
            "final_pass1": v,
            "final_passk": v + 0.3,
            "final_entropy": 0.2,
        }  # fmt: skip
        for s, v in enumerate(values)
    ]


def test_each_cell_gets_the_fewest_runs_whose_mde_is_within_the_target():
    rng = np.random.default_rng(0)
    grpo = list(0.3 + 0.02 * rng.standard_normal(8))
    noisy = list(0.3 + 0.05 * rng.standard_normal(4))
    quiet = list(0.3 + 0.005 * rng.standard_normal(4))
    per_run = pd.DataFrame(_runs("grpo", "s", grpo) + _runs("kl", "s", noisy) + _runs("steer", "s", quiet))
    target = {("t", "s", ""): {"final_pass1": 0.06}}
    got = seed_plan.seeds_needed(per_run, target, family=2).set_index("method")

    def mde(x: list[float], n: int) -> float:
        return min_detectable_welch(np.std(x, ddof=1), n, np.std(grpo, ddof=1), 8, 0.05 / 2)

    n = int(got.loc["kl", "needed"])
    assert n > 4 and mde(noisy, n) <= 0.06 < mde(noisy, n - 1)
    assert got.loc["steer", "needed"] == 4  # already within: its own runs
    more_control = seed_plan.seeds_needed(per_run, target, family=2, control_runs=32).set_index("method")
    assert more_control.loc["kl", "needed"] <= n
    capped = seed_plan.seeds_needed(per_run, target, family=2, most=n - 1).set_index("method")
    assert capped["needed"].isna()["kl"] and capped.loc["steer", "needed"] == 4


def test_the_command_prints_a_method_seeds_block_from_the_grids_planned_effect(tmp_path, capsys):
    grid = tmp_path / "g"
    rng = np.random.default_rng(1)
    for method, sd, seeds in (("grpo", 0.02, 6), ("kl", 0.06, 3)):
        for seed in range(seeds):
            final = 0.5 + sd * rng.standard_normal()
            write_run(
                grid, method, "standard", seed, [1.0, 0.5], pass1={1: 0.3, 2: final}, passk={1: 0.9, 2: 0.7}
            )
    pilot = {"final_pass1": {"sd": 0.03, "effect": 0.3}}
    (grid / "grid.json").write_text(json.dumps({"design": {"pilot": pilot, "family": {"size": 1}}}))
    assert seed_plan.main([str(grid)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "method_seeds:" and lines[1].startswith("  kl: [0, 1, 2, 3") and "# 3 now" in lines[1]
    (grid / "grid.json").write_text(json.dumps({"design": {"family": {"size": 1}}}))
    with pytest.raises(SystemExit) as usage:
        seed_plan.main([str(grid)])
    assert usage.value.code == 2 and "declares no design.pilot; use --target own" in capsys.readouterr().err
    with pytest.raises(SystemExit) as missing:
        seed_plan.main([str(tmp_path / "nowhere")])
    assert missing.value.code == 2 and "not a readable grid manifest" in capsys.readouterr().err
    with pytest.raises(SystemExit) as negative:
        seed_plan.main([str(grid), "--control-runs", "-1"])
    assert negative.value.code == 2 and "--control-runs ≥ 0" in capsys.readouterr().err
