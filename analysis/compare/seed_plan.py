"""Seeds per cell from a finished Welch grid's spreads: the fewest runs each method cell needs for its MDE
against its grpo control (size-corrected Welch at the family's strictest Holm level α/m, 80% power, the
control's runs as they are) to be within a third of grpo's effect on every endpoint.

It reads the runs' sds only, never a difference between cells: a variance-only sample-size re-estimation,
which leaves the level of the tests that follow alone. The target is grpo's effect as the grid planned it
(``design.pilot`` in grid.json, ``--target planned``) or as the grid's own grpo runs measured it in each
scenario (``--target own``: stricter where grpo does less)::

    python -m steerbench.analysis.compare.seed_plan runs/paper [--target planned|own] [--control-runs N]

prints the cells that need more seeds than they have, as a ``method_seeds`` block for the grid's YAML
(seeds 0..n−1; a cell beyond ``--most`` is named in a comment instead). ``--control-runs N`` plans with N
runs in every grpo control (the block then gives grpo N seeds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from steerbench.analysis.compare import design
from steerbench.analysis.compare.inference import min_detectable_welch
from steerbench.analysis.compare.matching import ALPHA, CONTROL, POWER, VERDICT_STATS
from steerbench.analysis.compare.runs import finished_only, load_runs
from steerbench.analysis.compare.summary import run_stats
from steerbench.errors import UsageError
from steerbench.grid import MANIFEST

CELL = ["task", "scenario", "variant", "method"]


def seeds_needed(
    per_run: pd.DataFrame,
    targets: dict[tuple, dict[str, float]],
    family: int,
    most: int = 64,
    control_runs: int = 0,
) -> pd.DataFrame:
    """Per method cell: its runs, and the fewest (≥ its runs) whose MDE on every endpoint of ``targets``
    (keyed by task, scenario, variant) is within it (None beyond ``most``), against its control's runs or
    ``control_runs`` if more (at the control's sd)."""
    rows = []
    for (task, scenario, variant, method), cell in per_run.groupby(CELL, sort=False):
        control = per_run[
            (per_run["method"] == CONTROL)
            & (per_run["task"] == task)
            & (per_run["scenario"] == scenario)
            & (per_run["variant"] == variant)
        ]
        target = targets.get((task, scenario, variant), {})
        if method == CONTROL or len(control) < 2 or not target:
            continue
        control_n = max(len(control), control_runs)
        spreads = [(cell[s].std(ddof=1), control[s].std(ddof=1), third) for s, third in target.items()]
        needed = next(
            (
                n
                for n in range(len(cell), most + 1)
                if all(
                    min_detectable_welch(sd_x, n, sd_c, control_n, ALPHA / family, POWER) <= third
                    for sd_x, sd_c, third in spreads
                )
            ),
            None,
        )
        rows.append(
            {"method": method, "scenario": scenario, "variant": variant, "runs": len(cell), "needed": needed}
        )
    return pd.DataFrame(rows)


def targets_of(declared: dict, per_run: pd.DataFrame, frame: pd.DataFrame, which: str) -> dict:
    """A third of grpo's effect per (task, scenario, variant) and endpoint: planned (the grid's declared
    design pilot) or own."""
    if which == "own":
        own = design.own_effects(design.grpo_effects(frame))
        return {key: {s: abs(e) / 3 for s, e in effects.items()} for key, effects in own.items()}
    pilot = declared.get("pilot") or {}
    if not pilot:
        raise UsageError(f"the grid's {MANIFEST} declares no design.pilot; use --target own")
    planned = {s: abs(p["effect"]) / 3 for s, p in pilot.items() if s in VERDICT_STATS}
    return {key: planned for key in per_run.groupby(["task", "scenario", "variant"]).groups}


def method_seeds_block(needed: pd.DataFrame, methods_alone: set[str], control_runs: int = 0) -> list[str]:
    """YAML lines for the cells that need more runs: ``method`` where it has one scenario, else
    ``method/scenario``; grpo's ``control_runs`` seeds first if given."""
    lines = ["method_seeds:"]
    if control_runs:
        lines.append(f"  {CONTROL}: [{', '.join(str(s) for s in range(control_runs))}]")
    for r in needed[needed["needed"].isna() | (needed["needed"] > needed["runs"])].itertuples():
        key = r.method if r.method in methods_alone else f"{r.method}/{r.scenario}"
        if pd.isna(r.needed):
            lines.append(f"  # {key}: more than the most seeds asked for ({r.runs} now)")
        else:
            lines.append(f"  {key}: [{', '.join(str(s) for s in range(int(r.needed)))}]   # {r.runs} now")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grid_dir", type=Path, help="a grid folder (grid.json beside its runs)")
    parser.add_argument("--target", choices=("planned", "own"), default="planned")
    parser.add_argument("--most", type=int, default=64, help="the most seeds a cell may be given")
    parser.add_argument(
        "--control-runs", type=int, default=0, help="plan with this many runs per grpo control"
    )
    args = parser.parse_args(argv)
    if args.most < 2 or args.control_runs < 0:
        parser.error("--most must be ≥ 2 and --control-runs ≥ 0")
    manifest = args.grid_dir / MANIFEST
    try:
        declared = json.loads(manifest.read_text()).get("design", {})
        family = int(declared.get("family", {}).get("size", 0))
        frame = finished_only(load_runs([args.grid_dir]).frame)[0]
        per_run = run_stats(frame)
        targets = targets_of(declared, per_run, frame, args.target)
    except UsageError as exc:  # before ValueError, its base
        parser.error(str(exc))
    except (OSError, ValueError) as exc:
        parser.error(f"{manifest}: not a readable grid manifest ({exc}); give a grid folder")  # exit 2
    needed = seeds_needed(per_run, targets, max(1, family), args.most, args.control_runs)
    if needed.empty:
        parser.error(
            f"{args.grid_dir}: no method cell beside a grpo control with two or more runs to plan from"
        )
    scenarios = needed.groupby("method")["scenario"].nunique()
    print("\n".join(method_seeds_block(needed, set(scenarios[scenarios == 1].index), args.control_runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
