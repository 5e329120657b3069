"""Plain sentences, with numbers, answering the questions a comparison is for.

"clearly" appears only where the Holm-corrected test separates a method from its matched control
(``matching.separates``); everything else is descriptive and says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from steerbench.analysis.compare.matching import CONTROL, VERDICT_STATS, separates
from steerbench.analysis.compare.runs import sorted_methods
from steerbench.analysis.compare.wording import wording


def fmt(x: Any, digits: int = 3) -> str:
    """Three significant figures; "n/a" for missing values."""
    if x is None or isinstance(x, str) or not np.isfinite(x):
        return "n/a" if not isinstance(x, str) else x
    return f"{x:.{digits}g}"


def fmt_signed(x: float) -> str:
    return "n/a" if not np.isfinite(x) else ("+" if x > 0 else "") + fmt(x)


def label(method: str, variant: str) -> str:
    return f"{method} [{variant}]" if variant else method


def _where(scenario: str, task: str, multi_task: bool) -> str:
    return f"[{scenario}" + (f", task {task}" if multi_task else "") + "]"


def collapse(summary: pd.DataFrame) -> list[str]:
    """How grpo's entropy evolves in each scenario: the collapse the interventions are meant to prevent."""
    out = []
    multi_task = summary["task"].nunique() > 1
    for _, g in summary[summary["method"] == CONTROL].iterrows():
        h0, h1 = g["initial_entropy_mean"], g["final_entropy_mean"]
        if not np.isfinite(h1):
            continue
        drop = 1 - h1 / h0 if h0 and np.isfinite(h0) else math.nan
        halved, n = int(g["steps_to_half_n"]), int(g["n_seeds"])
        verdict = (
            "it collapses" if halved == n else ("it partly collapses" if halved else "it does not collapse")
        )
        when = (
            f", halving by step {fmt(g['steps_to_half_mean'])} on average ({halved}/{n} seeds)"
            if halved
            else f" (halved in 0/{n} seeds)"
        )
        who = label(CONTROL, g["variant"])
        out.append(
            f"{_where(g['scenario'], g['task'], multi_task)} Under {who}, entropy goes from {fmt(h0)} to "
            f"{fmt(h1)} ({fmt(100 * drop, 2)}% lower){when}: {verdict}."
        )
    return out


def _effect(row: pd.Series, stat: str) -> str:
    name = VERDICT_STATS[stat]
    diff = row[f"{stat}_diff"]
    if not np.isfinite(diff):
        return f"{name} n/a"
    interval = f"[{fmt(row[f'{stat}_diff_low'])}, {fmt(row[f'{stat}_diff_high'])}]"
    p = row[f"{stat}_p_holm"]
    if separates(row, stat):
        verdict = "clearly " + ("higher" if diff > 0 else "lower")
    elif row[f"{stat}_diff_low"] == row[f"{stat}_diff_high"]:  # the same difference in every seed
        return f"{name} {fmt_signed(diff)} in every seed" + ("" if diff == 0 else ": no spread, no t-test")
    elif stat != row.get("primary") or row.get("degenerate"):
        return f"{name} {fmt_signed(diff)} {interval}, p = {fmt(row[f'{stat}_p'])} (secondary, uncorrected)"
    else:
        mdd = row[f"{stat}_mdd"]
        verdict = "not clearly different" + (f" (detectable: ±{fmt(mdd)})" if np.isfinite(mdd) else "")
    return f"{name} {fmt_signed(diff)} {interval}, Holm p = {fmt(p)}: {verdict}"


def against_controls(verdicts: pd.DataFrame, multi_task: bool) -> list[str]:
    """One sentence per method cell: its effect against the matched control, or why there is none."""
    out = []
    for _, r in verdicts.iterrows():
        w = wording(r.get("test"))
        sizes = w.sizes_of(r, r.get("primary"))  # of the primary endpoint
        who = label(r["method"], r["variant"])
        where = _where(r["scenario"], r["task"], multi_task)
        if r["control_variant"] is None:
            out.append(f"{where} {who}: no grpo run to compare with.")
        elif not r["matched"]:
            nearest = f"grpo in {r['control_scenario']}" + (
                f" [{r['control_variant']}]" if r["control_variant"] else ""
            )
            out.append(
                f"{where} {who}: no matched grpo control; the nearest ({nearest}) differs in {r['differs']}, "
                "so no test is run."
            )
        elif min(sizes) < 2:
            out.append(f"{where} {who}: {w.too_few.format(*sizes)}")
        else:
            control = label(CONTROL, r["control_variant"])
            effects = "; ".join(_effect(r, stat) for stat in VERDICT_STATS)
            apart = f" Degenerate ({r['degenerate']}): outside the family." if r.get("degenerate") else ""
            out.append(f"{where} {who} − {control} over {w.over.format(*sizes)}: {effects}.{apart}")
    return out


def steer_band(summary: pd.DataFrame) -> list[str]:
    """Descriptive: steer's per-step |ΔH| band against the other methods of its scenario."""
    out = []
    multi_task = summary["task"].nunique() > 1
    for (task, variant, scenario), df in summary.groupby(["task", "variant", "scenario"], sort=False):
        by = {r["method"]: r for _, r in df.iterrows()}
        s = by.get("steer")
        if s is None or not np.isfinite(s["dH_abs_p90_mean"]):
            continue
        others = [(m, r) for m, r in by.items() if m != "steer" and np.isfinite(r["dH_abs_p90_mean"])]
        if not others:
            continue
        narrower = [m for m, r in others if s["dH_abs_p90_mean"] < r["dH_abs_p90_mean"]]
        g = by.get(CONTROL)
        ref = ""
        if g is not None and np.isfinite(g["dH_abs_p90_mean"]) and g["dH_abs_p90_mean"] > 0:
            ref = (
                f" vs {fmt(g['dH_abs_p90_mean'])} for grpo ({fmt(s['dH_abs_p90_mean'] / g['dH_abs_p90_mean'])}×; "
                f"median {fmt(s['dH_abs_median_mean'])} vs {fmt(g['dH_abs_median_mean'])})"
            )
        verdict = (
            "a narrower band than every other method"
            if len(narrower) == len(others)
            else f"narrower than {len(narrower)} of {len(others)} other methods"
            + (f" ({', '.join(sorted_methods(narrower))})" if narrower else "")
        )
        out.append(
            f"{_where(scenario, task, multi_task)} {label('steer', variant)}'s per-step |ΔH| "
            f"90th percentile (seed mean) is {fmt(s['dH_abs_p90_mean'])}{ref}: {verdict}."
        )
    return out


def findings(summary: pd.DataFrame, verdicts: pd.DataFrame) -> list[str]:
    multi_task = summary["task"].nunique() > 1
    out = collapse(summary)
    if not verdicts.empty:
        out += against_controls(verdicts, multi_task)
    return out + steer_band(summary)
