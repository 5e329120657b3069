"""The verdict in long form: one row per (comparison, endpoint), methods and positive controls alike, with
the family each primary test belongs to and the smallest effect it could have found (``effects.csv``; the
report's headline and forest plot read it).

Columns: task, scenario, method, variant, label, kind ("method" | "control"), endpoint, endpoint_label,
primary, family, family_size, seeds, prompts, k, effect, ci_low, ci_high, p, p_adj (Holm within the family,
primary rows only), mde (80% power at the family's strictest level α/m), detected, expected, degenerate,
and for pass@1 ``train_share``: the share of the paired differences' variance that is seed-to-seed training
variation rather than evaluation noise (``design.variance_components``, from the per-prompt records).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from steerbench.analysis.compare import design
from steerbench.analysis.compare.findings import label as method_label
from steerbench.analysis.compare.matching import ALPHA, CONTROL, POWER, VERDICT_STATS, Family
from steerbench.analysis.compare.runs import Runs
from steerbench.analysis.compare.wording import wording
from steerbench.grid import MANIFEST
from steerbench.runstore import read_json_mapping

COLUMNS = [
    "task", "scenario", "method", "variant", "label", "kind", "endpoint", "endpoint_label", "primary",
    "family", "family_size", "seeds", "prompts", "k", "effect", "ci_low", "ci_high", "p", "p_adj", "mde",
    "detected", "expected", "degenerate", "train_share",
]  # fmt: skip
CONTROL_LABELS = {"final_entropy": "entropy", "passk_drift": "|Δ pass@k|", "pass1_rise": "pass@1 gain"}


def grid_family(runs: Runs) -> Family:
    """The family the runs' grids declared (``grid.json`` beside each run: the union if several), else
    the comparisons present with pass@k as the primary endpoint."""
    declared: dict[Path, dict[str, Any]] = {}
    for path in runs.paths.values():
        manifest = path.parent / MANIFEST
        if manifest.parent not in declared and manifest.is_file():
            try:
                fam = json.loads(manifest.read_text()).get("design", {}).get("family")
            except ValueError:
                fam = None
            if fam and int(fam.get("size", 0)):  # a grid that tests nothing (grpo alone) joins no family
                declared[manifest.parent] = fam
    if not declared:
        return Family()
    primaries = {f["primary"] for f in declared.values()}
    tests = {f.get("test", "paired") for f in declared.values()}
    if len(primaries) > 1 or len(tests) > 1:  # grids that disagree on the question or its test: the default
        return Family()
    names = " + ".join(sorted(f["name"] for f in declared.values()))
    return Family(names, primaries.pop(), sum(int(f["size"]) for f in declared.values()), tests.pop())


def evaluation_shape(runs: Runs) -> tuple[float, float]:
    """(prompts J, k) of the runs' last per-prompt evaluation record (NaN if none was written)."""
    for path in runs.paths.values():
        rec = last_record(path)
        if rec:
            return float(len(rec["correct"])), float(rec["k"])
    return math.nan, math.nan


def cpu_minutes(runs: Runs, names: list[str]) -> float:
    """What the runs cost: the sum of their ``summary.json`` ``wall_s`` (one thread a run, so CPU time), in
    minutes; NaN if none recorded it. A resumed run counts its last attempt; the cell that built the shared
    warm start carries it."""
    seconds = [
        float(wall)
        for name in names
        if (path := runs.paths.get(name)) is not None
        and isinstance(wall := read_json_mapping(path / "summary.json").get("wall_s"), int | float)
    ]
    return sum(seconds) / 60 if seconds else math.nan


def last_record(path: Path) -> dict[str, Any] | None:
    """A run's last per-prompt evaluation record (``evaluations/step<N>.json``), or None."""
    records = sorted((path / "evaluations").glob("step*.json"))
    try:
        return json.loads(records[-1].read_text()) if records else None
    except (OSError, ValueError):
        return None


def pass1_train_share(runs: Runs, per_run: pd.DataFrame, v: pd.Series) -> float:
    """design.variance_components of a comparison's pass@1: the seed-to-seed part's share of the variance of
    its paired differences (``paired``), or of each cell's runs, pooled over the two cells (``welch``)."""

    def cell(method: str, scenario: str, variant: str) -> pd.DataFrame:
        same = (
            (per_run["method"] == method)
            & (per_run["scenario"] == scenario)
            & (per_run["variant"] == variant)
        )
        return per_run[same & (per_run["task"] == v["task"])].set_index("seed")

    def noise(frame: pd.DataFrame, seed: int) -> float:
        run = frame.at[seed, "run"]
        rec = last_record(runs.paths[run]) if run in runs.paths else None
        return design.pass1_eval_variance(rec["correct"], rec["k"]) if rec else math.nan

    mine = cell(v["method"], v["scenario"], v["variant"])
    theirs = cell(CONTROL, v["control_scenario"], v["control_variant"])
    if v.get("test", "paired") == "welch":
        parts = [
            design.variance_components(f["final_pass1"].tolist(), [noise(f, s) for s in f.index])
            for f in (mine, theirs)
        ]
        if any(p.n_seeds < 2 or p.var_eval != p.var_eval for p in parts):
            return math.nan
        return design.Components(
            min(p.n_seeds for p in parts),
            sum(p.var_d for p in parts) / 2,
            sum(p.var_eval for p in parts) / 2,
            sum(p.var_train for p in parts) / 2,
        ).train_share
    diffs, noises = [], []
    for seed in sorted(set(mine.index) & set(theirs.index)):
        pair_noise = noise(mine, seed) + noise(theirs, seed)
        if pair_noise != pair_noise:
            return math.nan
        diffs.append(mine.at[seed, "final_pass1"] - theirs.at[seed, "final_pass1"])
        noises.append(pair_noise)
    return design.variance_components(diffs, noises).train_share if len(diffs) > 1 else math.nan


def _endpoint_label(endpoint: str, k: float) -> str:
    if endpoint == "final_passk":
        return f"pass@{int(k)}" if k == k else "pass@k"
    return VERDICT_STATS.get(endpoint, endpoint).replace("final ", "")


def method_rows(verdicts: pd.DataFrame, prompts: float, k: float, shares: dict) -> list[dict[str, Any]]:
    rows = []
    for i, v in verdicts[verdicts["matched"]].iterrows():
        for endpoint in VERDICT_STATS:
            primary = endpoint == v["primary"]
            p_adj = v[f"{endpoint}_p_holm"]
            rows.append(
                {
                    "task": v["task"], "scenario": v["scenario"], "method": v["method"],
                    "variant": v["variant"], "label": method_label(v["method"], v["variant"]), "kind": "method",
                    "endpoint": endpoint, "endpoint_label": _endpoint_label(endpoint, k), "primary": primary,
                    "family": v["family"], "family_size": int(v["family_size"]),
                    "seeds": int(wording(v.get("test")).sizes_of(v, endpoint)[0] or 0),
                    "prompts": prompts, "k": k, "effect": v[f"{endpoint}_diff"],
                    "ci_low": v[f"{endpoint}_diff_low"], "ci_high": v[f"{endpoint}_diff_high"],
                    "p": v[f"{endpoint}_p"], "p_adj": p_adj, "mde": v[f"{endpoint}_mdd"],
                    "detected": bool(primary and p_adj == p_adj and p_adj < ALPHA), "expected": "",
                    "degenerate": v["degenerate"],
                    "train_share": shares.get(i, math.nan) if endpoint == "final_pass1" else math.nan,
                }
            )  # fmt: skip
    return rows


def control_rows(results: list[dict[str, Any]], prompts: float, k: float) -> list[dict[str, Any]]:
    """Each positive control is the primary test of its own claim; together they are one family."""
    size = len(results)
    rows = []
    for r in results:
        method, scenario = r["treatment"].split("/")
        rows.append(
            {
                "task": r["task"], "scenario": scenario, "method": method, "variant": r["variant"],
                "label": _control_label(r), "kind": "control", "endpoint": r["statistic"],
                "endpoint_label": CONTROL_LABELS.get(r["statistic"], r["statistic"]), "primary": True,
                "family": "positive controls", "family_size": size, "seeds": len(r["seeds"]),
                "prompts": prompts, "k": k, "effect": r["effect"], "ci_low": r["ci_low"],
                "ci_high": r["ci_high"], "p": r["p_value"], "p_adj": r.get("p_adj", r["p_value"]),
                "mde": r.get("mde", math.nan), "detected": r["verdict"] == "detected",
                "expected": r["expected"], "degenerate": "", "train_share": math.nan,
            }
        )  # fmt: skip
    return rows


def _control_label(result: dict[str, Any]) -> str:
    """ "kl β=0.05": the control and, for a graded dose, the knob it sets (without its ``method.`` prefix)."""
    dose = " ".join(
        part.removeprefix("method.") for part in str(result["variant"]).split() if part.startswith("method.")
    )
    return f"{result['control']} {dose}".strip()


def effects_table(
    verdicts: pd.DataFrame,
    controls: list[dict[str, Any]],
    runs: Runs | None = None,
    per_run: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``runs`` and ``per_run`` (compare's per-run statistics) give the prompts, k and the variance split."""
    prompts, k = evaluation_shape(runs) if runs is not None else (math.nan, math.nan)
    shares = {}
    if runs is not None and per_run is not None and not verdicts.empty:
        shares = {i: pass1_train_share(runs, per_run, v) for i, v in verdicts[verdicts["matched"]].iterrows()}
    methods = method_rows(verdicts, prompts, k, shares) if not verdicts.empty else []
    return pd.DataFrame(methods + control_rows(controls, prompts, k), columns=COLUMNS)


def _span(counts: list[int]) -> str:
    return f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]}"


def design_line(
    effects: pd.DataFrame, seeds: list[int], family: Family, control_seeds: list[int] | None = None
) -> str:
    """The design in one line: seeds (and the control's, under ``welch``), prompts, k, family, test."""
    if effects.empty:
        return ""
    first = effects.iloc[0]
    prompts = (
        f"{int(first['prompts'])} held-out prompts"
        if first["prompts"] == first["prompts"]
        else "prompts: n/a"
    )
    k = f"k = {int(first['k'])}" if first["k"] == first["k"] else "k: n/a"
    size = int(effects.loc[effects["kind"] == "method", "family_size"].max() or 0)
    shares = effects["train_share"].dropna()
    w = wording(family.test)
    split = (
        f" · {w.variance_of}: {shares.median():.0%} seed-to-seed training variation, the rest "
        "evaluation noise (median over comparisons)"
        if len(shares)
        else ""
    )
    per_method = effects.loc[(effects["kind"] == "method") & effects["primary"], "seeds"]
    seed_text = w.seeds.format(  # each test's wording picks what it states
        per_method=_span(sorted({int(n) for n in per_method}) or [len(seeds)]),
        per_control=_span(sorted(control_seeds or [0])),
        n=len(seeds),
        listed=", ".join(str(s) for s in seeds),
    )
    return (
        f"Design: {seed_text} · {prompts}, the same for every run · {k} · family "
        f"“{family.name}”: {size} tests of {_endpoint_label(family.primary, first['k'])}, Holm at α = {ALPHA} · "
        f"{design.TEST_NAMES.get(family.test, family.test)} · MDE at {int(POWER * 100)}% power{split}"
    )
