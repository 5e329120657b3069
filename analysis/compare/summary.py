"""Per-run statistics and their summary per cell (task × scenario × method × variant × backend).

Per-run statistics (a run is one seed of one cell):
- ``final_pass1`` / ``final_passk``: last logged ``val/pass@1`` / ``val/pass@k``;
- ``final_entropy``: last ``entropy/mean``; ``entropy_area``: mean of ``entropy/mean`` over steps;
- ``steps_to_half``: the first ``step`` whose ``entropy/mean`` is at most half of the first logged
  step's (NaN if it never halves);
- ``dH_abs_median`` / ``dH_abs_p90``: median / 90th percentile of per-step ``|entropy/delta|``
  (``entropy/delta`` if logged, else the step-to-step difference of ``entropy/mean``), from the
  second step with an entropy on (the first has no predecessor);
- ``clip_low`` / ``clip_high``: mean ``clip/frac_low`` / ``clip/frac_high`` over steps;
- ``time_s``: total ``time/step_s``.
A cell's ``<stat>_mean`` is the mean over its seeds, ``_ci_low``/``_ci_high`` the 95% t-interval of the
seed values (``design.t_interval``), cut to the quantity's range (rates in [0, 1], the rest ≥ 0): its
coverage is simulated in tests/test_compare_design.py (≥ 93% with 3–6 seeds, where the percentile
bootstrap over seeds reached 73–84%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from steerbench.analysis.compare.design import t_interval
from steerbench.analysis.compare.runs import CELL, METHOD_ORDER, RUN_COLUMNS, SCENARIO_ORDER, col, order_key

STATS: dict[str, str] = {
    "final_pass1": "final val/pass@1",
    "final_passk": "final val/pass@k",
    "final_entropy": "final entropy",
    "entropy_area": "entropy area (mean H over steps)",
    "steps_to_half": "steps until entropy halves",
    "dH_abs_median": "median |ΔH| per step",
    "dH_abs_p90": "p90 |ΔH| per step",
    "clip_low": "clip frac low",
    "clip_high": "clip frac high",
    "time_s": "time (s)",
}
RATES = ("final_pass1", "final_passk", "clip_low", "clip_high")  # quantities in [0, 1]


def _last_valid(s: pd.Series) -> float:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return float(s.iloc[-1]) if len(s) else math.nan


def steps_to_half(steps: Sequence[int], entropy: Sequence[float]) -> float:
    """First step whose entropy is ≤ half the first logged entropy; NaN if never (or no entropy)."""
    pairs = [(s, h) for s, h in zip(steps, entropy, strict=True) if h is not None and np.isfinite(h)]
    if not pairs:
        return math.nan
    h0 = pairs[0][1]
    for s, h in pairs[1:]:
        if h <= 0.5 * h0:
            return float(s)
    return math.nan


def abs_entropy_deltas(run: pd.DataFrame) -> np.ndarray:
    """Per-step |ΔH| of one run: ``entropy/delta`` where logged, else the difference of ``entropy/mean``."""
    run = run.sort_values("step")
    ent = col(run, "entropy/mean")
    run, diffs = run[ent.notna()], ent[ent.notna()].diff()
    # the first step with an entropy has no predecessor (its logged delta is 0 by convention): skipped
    delta = col(run, "entropy/delta")
    vals = (delta if delta.notna().any() else diffs).to_numpy(dtype=float)[1:]
    vals = np.abs(vals)
    return vals[np.isfinite(vals)]


def run_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run with the per-run statistics of ``STATS``."""
    out = []
    for _, df in frame.groupby("run", sort=True):
        df = df.sort_values("step")
        ent = col(df, "entropy/mean")
        d = abs_entropy_deltas(df)
        row = {c: df[c].iloc[0] for c in RUN_COLUMNS}
        row.update(
            {
                "steps": int(df["step"].max()),
                "initial_entropy": float(ent.dropna().iloc[0]) if ent.notna().any() else math.nan,
                "final_pass1": _last_valid(col(df, "val/pass@1")),
                "final_passk": _last_valid(col(df, "val/pass@k")),
                "final_entropy": _last_valid(ent),
                "entropy_area": float(ent.mean()) if ent.notna().any() else math.nan,
                "steps_to_half": steps_to_half(df["step"].tolist(), ent.tolist()),
                "dH_abs_median": float(np.median(d)) if len(d) else math.nan,
                "dH_abs_p90": float(np.percentile(d, 90)) if len(d) else math.nan,
                "clip_low": float(col(df, "clip/frac_low").mean()),
                "clip_high": float(col(df, "clip/frac_high").mean()),
                "time_s": float(col(df, "time/step_s").sum(min_count=1)),
            }
        )
        out.append(row)
    return pd.DataFrame(out)


def sort_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Task, variant, then the paper's scenario and method order."""
    mkey, skey = order_key(METHOD_ORDER), order_key(SCENARIO_ORDER)
    keys = pd.DataFrame(
        {
            "_t": df["task"].astype(str),
            "_v": df["variant"].astype(str),
            "_s": df["scenario"].map(skey),
            "_m": df["method"].map(mkey),
        }
    )
    order = keys.sort_values(["_t", "_v", "_s", "_m"], kind="mergesort").index
    return df.loc[order].reset_index(drop=True)


def cell_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: ``n_seeds``, ``seeds``, ``initial_entropy_mean`` and ``<stat>_mean|_ci_low|_ci_high``
    for each statistic of ``STATS``; ``steps_to_half_n`` counts the seeds whose entropy halved at all."""
    per_run = run_stats(frame)
    rows = []
    for key, df in per_run.groupby(CELL, sort=False):
        row: dict = dict(zip(CELL, key, strict=True))
        row["n_seeds"] = int(len(df))
        row["seeds"] = ",".join(str(s) for s in sorted(df["seed"].tolist()))
        row["initial_entropy_mean"] = float(df["initial_entropy"].mean())
        for stat in STATS:
            mean, lo, hi, n = t_interval(df[stat].tolist(), 0.95, 0.0, 1.0 if stat in RATES else math.inf)
            row[f"{stat}_mean"], row[f"{stat}_ci_low"], row[f"{stat}_ci_high"] = mean, lo, hi
            if stat == "steps_to_half":
                row["steps_to_half_n"] = n
        rows.append(row)
    return sort_cells(pd.DataFrame(rows))
