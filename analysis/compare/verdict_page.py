"""The top of the report, on one screen: what a researcher needs to act on.

One headline sentence per compared method (its primary endpoint first, then the others), one sentence for
the positive controls, the design in one line (given: ``effects.design_line``), and the forest plot
(``forest.py``: one panel per scenario); degenerate comparisons (a method with the same config as its
control) are named once, in a note, never tested or plotted.

A method run in several scenarios (the paper grid: up to 3 scenarios × 9 methods, 22 comparisons) still
gets one sentence, so that the headline fits the first screen: the verdict the scenarios share (or the
ones where the effect was detected), each scenario's primary estimate, then the other endpoints' estimates
in the same scenario order:
    "steer: no effect on pass@64 larger than the MDE in any scenario: standard -0.05 [-0.09, -0.02]
     (MDE ±0.14), release ...; entropy +0.01 [-0.16, 0.18] · -0.02 [...] · ..."

Input: ``effects``, one row per (comparison, endpoint), columns ``effects.COLUMNS``. Only the primary
endpoint is tested (Holm within its family), and the sentence says what the test allows:
- detected (Holm p < 0.05):    "pass@64 +0.18 [0.09, 0.27], detected (Holm p 0.003)"
- not detected, 95% CI inside ±MDE: "no effect on pass@64 larger than ±0.05 (MDE): +0.01 [-0.02, 0.04]"
  (an effect that large would have been found with 80% power, and the interval excludes it too)
- not detected, CI reaching past ±MDE:
  "pass@64 inconclusive: +0.06, CI [-0.02, 0.14] is wider than the MDE ±0.05 (Holm p 0.2)"
The other endpoints give the estimate and its 95% CI, untested. Numbers have two decimals, p-values two
significant figures — the precision the seeds support, not three significant figures everywhere.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from steerbench.analysis.compare.effects import COLUMNS
from steerbench.analysis.compare.forest import ForestRow, forest_figure
from steerbench.analysis.compare.matching import ALPHA
from steerbench.analysis.compare.render import Bullets, Figure, Heading, Paragraph, Section
from steerbench.analysis.compare.runs import sorted_methods, sorted_scenarios

COMPARISON = ["kind", "task", "scenario", "method", "variant"]
ENDPOINT_ORDER = ("final_passk", "final_pass1", "final_entropy", "passk_drift", "pass1_rise")
FOREST_FILE = "forest.png"


# ----------------------------------------------------------------------------------------------- numbers


def _two_decimals(x: float) -> float:
    return round(x, 2) + 0.0  # + 0.0 turns -0.0 into 0.0: "-0.004" reads "0.00", never "-0.00"


def num(x: float) -> str:
    return f"{_two_decimals(x):.2f}" if math.isfinite(x) else "n/a"


def signed(x: float) -> str:
    return f"{_two_decimals(x):+.2f}" if math.isfinite(x) else "n/a"


def p_value(p: float) -> str:
    """Two significant figures (one below 0.01), more where rounding would carry p across ALPHA."""
    if not math.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    digits = 1 if p < 0.01 else 2
    while (float(f"{p:.{digits}g}") < ALPHA) != (p < ALPHA):
        digits += 1
    return f"{p:.{digits}g}"


def estimate(r: pd.Series) -> str:
    """``+0.30 [0.21, 0.39]``, or the bare estimate where there is no interval (one seed)."""
    if math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"]):
        return f"{signed(r['effect'])} [{num(r['ci_low'])}, {num(r['ci_high'])}]"
    return f"{signed(r['effect'])} (no interval)"


# ------------------------------------------------------------------------------------------- sentences


def verdict_of(r: pd.Series) -> str:
    """What the test of one comparison's primary endpoint allows (module docstring); "estimate" for a row
    that was not tested."""
    if not math.isfinite(r["effect"]):
        return "n/a"
    if not r["primary"]:
        return "estimate"
    if r["detected"]:
        return "detected"
    if not (math.isfinite(r["mde"]) and math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"])):
        return "untested"
    return "no effect" if -r["mde"] <= r["ci_low"] and r["ci_high"] <= r["mde"] else "inconclusive"


def primary_phrase(r: pd.Series) -> str:
    name, mde, verdict = r["endpoint_label"], r["mde"], verdict_of(r)
    if verdict == "n/a":
        return f"{name} n/a"
    if verdict == "estimate":
        return f"{name} {estimate(r)}"
    if verdict == "detected":
        return f"{name} {estimate(r)}, detected (Holm p {p_value(r['p_adj'])})"
    if verdict == "untested":
        return f"{name} {estimate(r)}, untested (too few seeds)"
    if verdict == "no effect":
        return f"no effect on {name} larger than ±{num(mde)} (MDE): {estimate(r)}"
    return (
        f"{name} inconclusive: {signed(r['effect'])}, CI [{num(r['ci_low'])}, {num(r['ci_high'])}] "
        f"is wider than the MDE ±{num(mde)} (Holm p {p_value(r['p_adj'])})"
    )


# the lead of a method's sentence when every scenario's test allows the same
SHARED_LEAD = {
    "detected": "{name} detected in every scenario",
    "no effect": "no effect on {name} larger than the MDE in any scenario",
    "inconclusive": "{name} inconclusive in every scenario (CI wider than the MDE)",
}


def scenario_item(r: pd.Series, said: str | None) -> str:
    """One scenario's primary estimate; the verdict word only where the lead (``said``) has not given it."""
    verdict = verdict_of(r)
    if verdict in ("n/a", "estimate"):
        return f"{r['scenario']} {estimate(r) if verdict == 'estimate' else 'n/a'}"
    tail = {
        "detected": f"(Holm p {p_value(r['p_adj'])})",
        "untested": "(too few seeds)",
    }.get(verdict, f"(MDE ±{num(r['mde'])})")
    word = "" if verdict == said else f"{verdict} "
    return f"{r['scenario']} {estimate(r)} {word}{tail}"


def by_scenario(arm: list[pd.DataFrame]) -> str:
    """A method's sentence over its scenarios (module docstring), without the method's name."""
    primaries = [rows.iloc[0] for rows in arm]
    verdicts = [verdict_of(r) for r in primaries]
    name = primaries[0]["endpoint_label"]
    detected = [r["scenario"] for r, v in zip(primaries, verdicts, strict=True) if v == "detected"]
    said: str | None
    if len(set(verdicts)) == 1 and verdicts[0] in SHARED_LEAD:
        said, lead = verdicts[0], SHARED_LEAD[verdicts[0]].format(name=name)
    elif detected:
        said, lead = "detected", f"{name} detected in {' and '.join(detected)} only"
    else:
        said, lead = None, f"{name} by scenario"
    parts = [f"{lead}: {', '.join(scenario_item(r, said) for r in primaries)}"]
    for endpoint, label in arm[0].iloc[1:][["endpoint", "endpoint_label"]].itertuples(index=False):
        rows = [rows[rows["endpoint"] == endpoint] for rows in arm]
        parts.append(f"{label} " + " · ".join(estimate(r.iloc[0]) if len(r) else "n/a" for r in rows))
    return "; ".join(parts)


def _order(rows: pd.DataFrame) -> pd.DataFrame:
    """Primary endpoint first, then the others in a fixed order."""
    rank = rows["endpoint"].map({e: i for i, e in enumerate(ENDPOINT_ORDER)}).fillna(len(ENDPOINT_ORDER))
    return rows.assign(_rank=rank, _primary=~rows["primary"].astype(bool)).sort_values(
        ["_primary", "_rank"], kind="mergesort"
    )


def _who(r: pd.Series, rows: pd.DataFrame) -> str:
    """The label, prefixed with the scenario and task where the comparisons of its kind span several."""
    where = [r["scenario"]] if rows["scenario"].nunique() > 1 else []
    where += [f"task {r['task']}"] if rows["task"].nunique() > 1 else []
    return (f"[{', '.join(where)}] " if where else "") + r["label"]


def tested(effects: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows of ``kind`` ("method" or "control") outside the degenerate comparisons."""
    return effects[(effects["kind"] == kind) & (effects["degenerate"] == "")]


def comparisons(effects: pd.DataFrame, kind: str) -> list[pd.DataFrame]:
    """The non-degenerate comparisons of ``kind`` in report order, each with its rows primary first."""
    rows = tested(effects, kind)
    scen = {s: i for i, s in enumerate(sorted_scenarios(rows["scenario"]))}
    meth = {m: i for i, m in enumerate(sorted_methods(rows["method"]))}
    keys = sorted(
        {tuple(k) for k in rows[COMPARISON[1:]].itertuples(index=False)},
        key=lambda k: (k[0], scen[k[1]], meth[k[2]], k[3]),
    )
    by_key = dict(iter(rows.groupby(COMPARISON[1:], sort=False)))
    return [_order(by_key[k]) for k in keys]


def arms(effects: pd.DataFrame, kind: str) -> list[list[pd.DataFrame]]:
    """The comparisons of ``kind`` grouped by arm (task, method, variant), each arm's in scenario order."""
    groups: dict[tuple, list[pd.DataFrame]] = {}
    for rows in comparisons(effects, kind):
        r = rows.iloc[0]
        groups.setdefault((r["task"], r["method"], r["variant"]), []).append(rows)
    meth = {m: i for i, m in enumerate(sorted_methods(k[1] for k in groups))}
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], meth[k[1]], k[2]))]


def _arm_label(r: pd.Series, rows: pd.DataFrame) -> str:
    """The label, prefixed with the task where the comparisons of its kind span several."""
    return (f"[task {r['task']}] " if rows["task"].nunique() > 1 else "") + r["label"]


def headline(effects: pd.DataFrame) -> list[str]:
    """One sentence per method (arm), over the scenarios it ran in: its primary endpoint's verdict, then
    the other estimates; a method run in one scenario of several names it."""
    methods = tested(effects, "method")
    several = methods["scenario"].nunique() > 1
    out = []
    for arm in arms(effects, "method"):
        first = arm[0].iloc[0]
        if len(arm) > 1:
            out.append(f"{_arm_label(first, methods)}: {by_scenario(arm)}")
            continue
        only = f" [{first['scenario']} only]" if several else ""
        parts = [primary_phrase(first)]
        parts += [f"{r['endpoint_label']} {estimate(r)}" for _, r in arm[0].iloc[1:].iterrows()]
        out.append(f"{_arm_label(first, methods)}{only}: {'; '.join(parts)}")
    return out


def controls_sentence(effects: pd.DataFrame) -> str | None:
    """How many positive controls the design detected in their expected direction, naming the misses."""
    primaries = [rows.iloc[0] for rows in comparisons(effects, "control") if rows.iloc[0]["primary"]]
    if not primaries:
        return None
    missed = [r for r in primaries if not r["detected"]]
    text = f"Positive controls: {len(primaries) - len(missed)} of {len(primaries)} detected in their expected direction"
    if not missed:
        return text + "."
    named = "; ".join(
        f"{r['label']} ({r['endpoint_label']}, expected {r['expected']}: {estimate(r)}, MDE ±{num(r['mde'])})"
        for r in missed
    )
    return f"{text}; not detected: {named}."


def degenerate_note(effects: pd.DataFrame) -> str | None:
    rows = effects[effects["degenerate"] != ""].drop_duplicates(COMPARISON)
    if rows.empty:
        return None
    named = "; ".join(f"{r['label']} [{r['scenario']}]: {r['degenerate']}" for _, r in rows.iterrows())
    return f"Not tested, outside every family (degenerate): {named}."


# ------------------------------------------------------------------------------------------- the figure


def forest_rows(effects: pd.DataFrame) -> list[ForestRow]:
    """The primary endpoint of every non-degenerate comparison: the methods in the headline's order
    (labelled by arm, in the panel of their scenario), then the controls (the scenario in the label)."""
    out = []
    methods = [rows for arm in arms(effects, "method") for rows in arm]
    for rows in methods + comparisons(effects, "control"):
        r = rows.iloc[0]
        if not r["primary"]:
            continue
        verdict = "detected" if r["detected"] else "not detected"
        if r["kind"] == "control":
            who = f"{_who(r, tested(effects, 'control'))}, {r['endpoint_label']}"
            note = f"expect {r['expected']}: {estimate(r)}  {verdict}"
        else:
            who = _arm_label(r, tested(effects, "method"))
            note = f"{r['endpoint_label']} {estimate(r)}  {verdict}"
        out.append(
            ForestRow(
                label=who,
                endpoint=r["endpoint_label"],
                effect=float(r["effect"]),
                low=float(r["ci_low"]),
                high=float(r["ci_high"]),
                mde=float(r["mde"]),
                detected=bool(r["detected"]),
                note=note,
                control=r["kind"] == "control",
                panel=r["scenario"],
            )
        )
    return out


# ------------------------------------------------------------------------------------------- the section


def verdict_section(effects: pd.DataFrame | None, design: str | None, out: Path) -> list[Section]:
    """The report's first screen, writing ``forest.png`` into ``out``; empty when there are no effects.

    ``design``: the design in one line (seeds, prompts, k, family, test), shown under the headline."""
    if effects is None or effects.empty:
        return []
    missing = [c for c in COLUMNS if c not in effects]
    if missing:
        raise ValueError(f"effects lacks the column(s) {missing}; expected {COLUMNS}")
    effects = effects.assign(
        degenerate=effects["degenerate"].fillna(""), variant=effects["variant"].fillna("")
    )
    items: list[Section] = [
        Heading("Verdict at a glance: primary endpoint first (tested, Holm), then estimates [95% CI]"),
        Bullets(tuple(headline(effects) + list(filter(None, [controls_sentence(effects)])))),
        *([Paragraph(design)] if design else []),
    ]
    if forest_figure(forest_rows(effects), Path(out) / FOREST_FILE):
        items.append(
            Figure(
                FOREST_FILE,
                "Primary effects with 95% CIs; shaded: ±MDE of each row; filled: detected after Holm.",
            )
        )
    note = degenerate_note(effects)
    return items + ([Paragraph(note)] if note else [])
