"""Dose–response: the entropy–performance frontier of swept knobs, against the matched grpo control.

For runs whose variant is one swept knob (`alpha=0.05`, `method.beta=0.01`: a `dose_*` grid), each
point is one method × knob value (seed mean): final entropy, final pass@1 and final pass@k. Relative to
grpo of the same task and scenario (no variant), at the point's seeds (all of grpo's when none match):

    Δpass@1 = pass@1 − pass@1(grpo)     (what the knob costs, usually ≤ 0)
    Δpass@k = pass@k − pass@k(grpo)     (what it buys, the diversity grpo loses)
    kept    = Δpass@k / −Δpass@1        (pass@k kept per unit of pass@1 given up; only when Δpass@1 < 0)

`frontier.png` plots final entropy against pass@1 and against pass@k, one curve per method ordered by
knob value, grpo as a star; `frontier.csv` holds the table.

Best doses without the winner's curse (``best_doses``, `best_doses.csv`): where a method has several doses
run on the same seeds as grpo, its best dose is chosen on the *selection* seeds (the lower half of those
seeds, fixed before looking) by Δpass@k, then tested against grpo on the other, *fresh* seeds only: a
paired t-test of Δpass@k, Holm over the methods. A dose picked and tested on the same seeds is biased
towards whatever those seeds favoured.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from steerbench.analysis.compare.controls import run_statistics  # noqa: E402
from steerbench.analysis.compare.inference import holm, paired_t  # noqa: E402
from steerbench.analysis.compare.plots import save_png  # noqa: E402

KNOB = re.compile(r"^(?:.*__)?(?:method\.)?(?P<knob>[A-Za-z_]+)=(?P<value>[-+0-9.eE]+)$")
COLUMNS = [
    "task", "scenario", "method", "knob", "value", "n_seeds", "final_entropy", "pass1", "passk",
    "d_pass1", "d_passk", "kept",
]  # fmt: skip


def knob_of(variant: str) -> tuple[str, float] | None:
    """`alpha=0.05` or `method.beta=1e-3` → (knob, value); anything else (several knobs, text) → None."""
    m = KNOB.match(str(variant))
    if m is None:
        return None
    try:
        return m["knob"], float(m["value"])
    except ValueError:
        return None


def frontier_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per task × scenario × method × knob value (seed means), with the deltas to grpo."""
    per_run = run_statistics(frame)
    if per_run.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for (task, scenario), runs in per_run.groupby(["task", "scenario"], sort=True):
        ref = runs[(runs["method"] == "grpo") & (runs["variant"] == "")]
        for (method, variant), cell in runs.groupby(["method", "variant"], sort=True):
            knob = knob_of(variant)
            if knob is None:
                continue
            paired = ref[ref["seed"].isin(cell["seed"])]  # every dose against grpo of its own seeds
            g1, gk = paired[["final_pass1", "final_passk"]].mean() if len(paired) else (math.nan, math.nan)
            p1, pk = cell["final_pass1"].mean(), cell["final_passk"].mean()
            d1, dk = p1 - g1, pk - gk
            rows.append(
                {
                    "task": task,
                    "scenario": scenario,
                    "method": method,
                    "knob": knob[0],
                    "value": knob[1],
                    "n_seeds": len(cell),
                    "final_entropy": cell["final_entropy"].mean(),
                    "pass1": p1,
                    "passk": pk,
                    "d_pass1": d1,
                    "d_passk": dk,
                    "kept": dk / -d1 if d1 < 0 else math.nan,
                }  # fmt: skip
            )
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["task", "scenario", "method", "value"], kind="mergesort").reset_index(drop=True)


def frontier_figure(frame: pd.DataFrame, table: pd.DataFrame, path: Path) -> bool:
    """final entropy vs pass@1 and vs pass@k, one line per method (by knob value), grpo starred."""
    if table.empty:
        return False
    per_run = run_statistics(frame)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False)
    for ax, col, label in zip(axes[0], ("pass1", "passk"), ("final pass@1", "final pass@k"), strict=True):
        for method, curve in table.groupby("method", sort=True):
            ax.plot(
                curve["final_entropy"], curve[col], marker="o", label=f"{method} ({curve['knob'].iloc[0]})"
            )
            for _, r in curve.iterrows():
                ax.annotate(f"{r['value']:g}", (r["final_entropy"], r[col]), fontsize=7)
        ref = _reference_runs(per_run, table)
        if not ref.empty:
            stat = "final_pass1" if col == "pass1" else "final_passk"
            ax.plot(ref["final_entropy"].mean(), ref[stat].mean(), "k*", markersize=12, label="grpo")
        ax.set_xlabel("final entropy (nats)")
        ax.set_ylabel(label)
    axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
    return True


def _reference_runs(per_run: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """grpo's runs of the table's tasks and scenarios, at the dose points' seeds when it has them (the
    star is the reference the deltas were taken against, not grpo of another scenario)."""
    ref = per_run[
        (per_run["method"] == "grpo")
        & (per_run["variant"] == "")
        & per_run["task"].isin(table["task"])
        & per_run["scenario"].isin(table["scenario"])
    ]
    dosed = per_run[per_run["variant"].map(knob_of).notna()]
    paired = ref[ref["seed"].isin(dosed["seed"])]
    return paired if len(paired) else ref


def best_doses(frame: pd.DataFrame) -> pd.DataFrame:
    """Per task × scenario × method with ≥ 2 doses on ≥ 4 seeds shared with grpo: the dose with the best
    mean Δpass@k on the selection seeds, and its Δpass@k against grpo on the fresh seeds (t-interval, p,
    Holm over the rows)."""
    per_run = run_statistics(frame)
    rows = []
    for (task, scenario), runs in per_run.groupby(["task", "scenario"], sort=True):
        ref = runs[(runs["method"] == "grpo") & (runs["variant"] == "")].set_index("seed")["final_passk"]
        doses = runs[[knob_of(v) is not None for v in runs["variant"]]]
        for method, cells in doses.groupby("method", sort=True):
            by_dose = {v: c.set_index("seed")["final_passk"] for v, c in cells.groupby("variant", sort=True)}
            seeds = sorted(set(ref.index).intersection(*(set(d.index) for d in by_dose.values())))
            if len(by_dose) < 2 or len(seeds) < 4:
                continue
            selection, fresh = seeds[: len(seeds) // 2], seeds[len(seeds) // 2 :]
            best = max(by_dose, key=lambda v: (by_dose[v][selection] - ref[selection]).mean())
            d = (by_dose[best][fresh] - ref[fresh]).to_numpy(dtype=float)
            p, low, high = paired_t(d)
            knob = knob_of(best)
            rows.append(
                {"task": task, "scenario": scenario, "method": method, "knob": knob[0], "best_value": knob[1],
                 "selection_seeds": " ".join(map(str, selection)), "fresh_seeds": " ".join(map(str, fresh)),
                 "d_passk_selection": float((by_dose[best][selection] - ref[selection]).mean()),
                 "d_passk_fresh": float(d.mean()), "ci_low": low, "ci_high": high, "p": p}
            )  # fmt: skip
    table = pd.DataFrame(rows)
    if not table.empty:
        table["p_holm"] = holm(table["p"].tolist())
    return table


def write_frontier(frame: pd.DataFrame, out: Path) -> list[str]:
    """frontier.csv and frontier.png in `out` when the frame holds swept knobs, and best_doses.csv when
    their doses share enough seeds with grpo; the names written."""
    table = frontier_table(frame)
    if table.empty:
        return []
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "frontier.csv", index=False, float_format="%.6g")
    best = best_doses(frame)
    if not best.empty:
        best.to_csv(out / "best_doses.csv", index=False, float_format="%.6g")
    return [
        "frontier.csv",
        *(["frontier.png"] if frontier_figure(frame, table, out / "frontier.png") else []),
        *(["best_doses.csv"] if not best.empty else []),
    ]
