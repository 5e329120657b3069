"""Ω's accuracy across a grid: each estimator's in-training agreement with the measured ΔH, per method, by step.

Input: ``compare``'s per-(run, step) frame, whose ``omega/<estimator>/{pearson,sign_agreement}`` columns
are logged every ``trainer.omega_every`` steps (embedded backend; verl: ``+trainer.steerbench_omega_every``).

* :func:`omega_by_step`  seed mean per (scenario, method, estimator, step): ``pearson``, ``sign_agreement``, ``n``;
* :func:`omega_table`    per (scenario, method, estimator): Pearson and sign agreement at the first and last
                          logged step and their mean over training — does Ω stay predictive as entropy collapses?
* :func:`omega_figure`   Pearson and sign agreement against step, one line per method, one row of panels
                          per estimator (first scenario's columns side by side).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from steerbench.analysis.compare.plots import save_png

OMEGA_COLUMN = re.compile(r"^omega/(?P<estimator>[^/]+)/(?P<stat>pearson|sign_agreement)$")
STATS = ("pearson", "sign_agreement")


def omega_by_step(frame: pd.DataFrame) -> pd.DataFrame:
    """Long table of the seed-mean in-training Ω statistics (empty when no run logged any)."""
    cols = {c: m for c in frame.columns if (m := OMEGA_COLUMN.match(str(c)))}
    keys = [k for k in ("scenario", "method", "variant") if k in frame.columns]
    out_cols = [*keys, "estimator", "step", *STATS, "n"]
    if not cols:
        return pd.DataFrame(columns=out_cols)
    long = frame[[*keys, "run", "step", *cols]].melt(id_vars=[*keys, "run", "step"], var_name="column")
    long = long.dropna(subset=["value"])
    long["estimator"] = long["column"].map(lambda c: cols[c]["estimator"])
    long["stat"] = long["column"].map(lambda c: cols[c]["stat"])
    wide = long.pivot_table(
        index=[*keys, "estimator", "run", "step"], columns="stat", values="value", aggfunc="first"
    ).reset_index()
    for stat in STATS:
        if stat not in wide:
            wide[stat] = float("nan")
    grouped = wide.groupby([*keys, "estimator", "step"], sort=True)
    table = grouped[list(STATS)].mean()
    table["n"] = grouped["run"].nunique()
    return table.reset_index()[out_cols]


def omega_table(by_step: pd.DataFrame) -> pd.DataFrame:
    """First / last logged step and mean over training, per scenario, method and estimator."""
    if by_step.empty:
        return pd.DataFrame()
    keys = [k for k in ("scenario", "method", "variant") if k in by_step.columns]
    rows = []
    for key, group in by_step.groupby([*keys, "estimator"], sort=True):
        g = group.sort_values("step")
        first, last = g.iloc[0], g.iloc[-1]
        rows.append(
            {
                **dict(zip([*keys, "estimator"], key, strict=True)),
                "steps": f"{int(first['step'])}–{int(last['step'])}",
                "pearson first": first["pearson"],
                "pearson last": last["pearson"],
                "pearson mean": g["pearson"].mean(),
                "sign agr. first": first["sign_agreement"],
                "sign agr. last": last["sign_agreement"],
                "sign agr. mean": g["sign_agreement"].mean(),
            }
        )
    return pd.DataFrame(rows).round(3)


def omega_figure(by_step: pd.DataFrame, path: Path) -> bool:
    """Pearson (left) and sign agreement (right) against step, a row per estimator: one colour per method,
    one line style per scenario (and variant), one legend for the figure."""
    if by_step.empty:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    estimators = sorted(by_step["estimator"].unique())
    data = by_step.assign(
        where=by_step.get("scenario", pd.Series("", index=by_step.index)).astype(str)
        + by_step.get("variant", pd.Series("", index=by_step.index))
        .astype(str)
        .map(lambda v: f" [{v}]" if v else "")
    )
    methods = sorted(data["method"].unique())
    wheres = sorted(data["where"].unique())
    colour = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    style = {w: ("-", "--", ":", "-.")[i % 4] for i, w in enumerate(wheres)}
    fig, axes = plt.subplots(len(estimators), 2, figsize=(10, 2.6 * len(estimators) + 1.2), squeeze=False)
    for row, name in zip(axes, estimators, strict=True):
        sub = data[data["estimator"] == name]
        for (method, where), line in sub.groupby(["method", "where"], sort=True):
            for ax, stat in zip(row, STATS, strict=True):
                ax.plot(
                    line["step"], line[stat], style[where], color=colour[method], marker="o", ms=2.5, lw=1
                )
        for ax, stat, ref in zip(row, STATS, (0.0, 0.5), strict=True):
            ax.axhline(ref, color="grey", lw=0.8)
            ax.set_title(f"{name}: {stat.replace('_', ' ')}", fontsize=9)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour[m], lw=2, label=m) for m in methods]
    handles += [Line2D([], [], color="black", ls=style[w], label=w) for w in wheres if len(wheres) > 1]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.9 / (2.6 * len(estimators) + 1.2), 1, 1))
    save_png(fig, path)
    return True
