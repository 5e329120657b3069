"""Figures for ``steerbench compare``: deterministic PNGs (Agg backend, no Software/date metadata).

- ``entropy_vs_step.png`` / ``accuracy_vs_step.png``: seed mean per method, band = min..max over seeds,
  one panel per scenario;
- ``dH_abs_box.png``: per-step |ΔH| distribution per method (box plot), one panel per scenario;
- ``clip_fractions.png``: mean clip/frac_low and clip/frac_high per method (bars);
- ``entropy_accuracy.png``: (entropy/mean, val/pass@1) at eval steps with Cui et al.'s fit
  R = −a·exp(H) + b (``entropy_accuracy_fits`` returns a and b).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.optimize import curve_fit  # noqa: E402

from steerbench.analysis.compare.runs import col, sorted_methods, sorted_scenarios  # noqa: E402
from steerbench.analysis.compare.summary import abs_entropy_deltas, run_stats  # noqa: E402

PNG_META = {"Software": None}
DPI = 100
# (axes, one scenario's rows, methods in plot order, method → colour): draws one scenario's panel
DrawPanel = Callable[[Any, pd.DataFrame, list[str], dict[str, tuple]], None]


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """``method`` replaced by ``method [variant]`` where runs carry a variant (sweeps, several grids)."""
    if "variant" not in frame or not (frame["variant"] != "").any():
        return frame
    label = frame["method"].where(frame["variant"] == "", frame["method"] + " [" + frame["variant"] + "]")
    return frame.assign(method=label)


def _colors(methods: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def save_png(fig, path: Path) -> None:
    """Write ``fig`` as a byte-stable PNG (no Software metadata) and close it."""
    fig.savefig(path, format="png", dpi=DPI, metadata=PNG_META)
    plt.close(fig)


def _panels(n: int, width: float = 5.0, height: float = 3.6):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def _scenario_panels(data: pd.DataFrame, xlabel: str, ylabel: str, path: Path, draw: DrawPanel) -> bool:
    """One panel per scenario, one colour per method; ``draw(ax, scenario rows, methods, colors)``."""
    if data.empty:
        return False
    scenarios = sorted_scenarios(data["scenario"])
    methods = sorted_methods(data["method"])
    colors = _colors(methods)
    fig, axes = _panels(len(scenarios))
    for ax, scen in zip(axes, scenarios, strict=True):
        draw(ax, data[data["scenario"] == scen], methods, colors)
        ax.set_title(scen)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_png(fig, path)
    return True


def _curve_plot(frame: pd.DataFrame, metric: str, ylabel: str, path: Path) -> bool:
    def draw(ax, sub: pd.DataFrame, methods: list[str], colors: dict[str, tuple]) -> None:
        for m in methods:
            cell = sub[sub["method"] == m]
            if cell.empty:
                continue
            g = cell.groupby("step")["_v"]
            mean, lo, hi = g.mean(), g.min(), g.max()
            ax.plot(mean.index, mean.values, label=m, color=colors[m], lw=1.4)
            if cell["run"].nunique() > 1:
                ax.fill_between(mean.index, lo.values, hi.values, color=colors[m], alpha=0.18, lw=0)

    data = frame.assign(_v=col(frame, metric)).dropna(subset=["_v"])
    return _scenario_panels(data, "step", ylabel, path, draw)


def _delta_box(frame: pd.DataFrame, path: Path) -> bool:
    scenarios = sorted_scenarios(frame["scenario"])
    methods = sorted_methods(frame["method"])
    dists: dict[tuple[str, str], np.ndarray] = {}
    for (scen, m), cell in frame.groupby(["scenario", "method"], sort=False):
        parts = [abs_entropy_deltas(run) for _, run in cell.groupby("run", sort=True)]
        vals = np.concatenate(parts) if parts else np.array([])
        if len(vals):
            dists[(scen, m)] = vals
    if not dists:
        return False
    fig, axes = _panels(len(scenarios), width=max(5.0, 0.6 * len(methods) + 2))
    for ax, scen in zip(axes, scenarios, strict=True):
        present = [m for m in methods if (scen, m) in dists]
        if present:
            ax.boxplot([dists[(scen, m)] for m in present], showfliers=False)
            ax.set_xticks(range(1, len(present) + 1), present, rotation=45, ha="right", fontsize=8)
        ax.set_title(scen)
        ax.set_ylabel("|ΔH| per step")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_png(fig, path)
    return True


def _clip_bars(frame: pd.DataFrame, path: Path) -> bool:
    stats = run_stats(frame)
    if stats[["clip_low", "clip_high"]].isna().all().all():
        return False
    scenarios = sorted_scenarios(stats["scenario"])
    methods = sorted_methods(stats["method"])
    fig, axes = _panels(len(scenarios), width=max(5.0, 0.6 * len(methods) + 2))
    for ax, scen in zip(axes, scenarios, strict=True):
        sub = stats[stats["scenario"] == scen]
        present = [m for m in methods if (sub["method"] == m).any()]
        g = sub.groupby("method")[["clip_low", "clip_high"]].mean().reindex(present)
        x = np.arange(len(present))
        ax.bar(x - 0.2, g["clip_low"].fillna(0).values, width=0.4, label="clip/frac_low")
        ax.bar(x + 0.2, g["clip_high"].fillna(0).values, width=0.4, label="clip/frac_high")
        ax.set_xticks(x, present, rotation=45, ha="right", fontsize=8)
        ax.set_title(scen)
        ax.set_ylabel("fraction of tokens clipped")
        ax.grid(alpha=0.3, axis="y")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
    return True


def cui_curve(h: np.ndarray, a: float, b: float) -> np.ndarray:
    """Cui et al. (2025): R = −a·exp(H) + b."""
    return -a * np.exp(h) + b


def fit_cui(h: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Least-squares a, b of R = −a·exp(H) + b (linear in a, b; curve_fit from the closed-form start)."""
    h, r = np.asarray(h, float), np.asarray(r, float)
    ok = np.isfinite(h) & np.isfinite(r)
    h, r = h[ok], r[ok]
    if len(h) < 3 or np.ptp(h) == 0:
        return math.nan, math.nan
    design = np.stack([-np.exp(h), np.ones_like(h)], axis=1)
    p0, *_ = np.linalg.lstsq(design, r, rcond=None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (a, b), _ = curve_fit(cui_curve, h, r, p0=p0, maxfev=10000)
    except (RuntimeError, ValueError):
        a, b = p0
    return float(a), float(b)


def _eval_points(frame: pd.DataFrame) -> pd.DataFrame:
    pts = frame.assign(_h=col(frame, "entropy/mean"), _r=col(frame, "val/pass@1"))
    return pts.dropna(subset=["_h", "_r"])


def entropy_accuracy_fits(frame: pd.DataFrame) -> pd.DataFrame:
    """a, b of R = −a·exp(H) + b per scenario, over all methods ("all") and per method."""
    pts = _eval_points(labelled(frame))
    rows = []
    for scen in sorted_scenarios(pts["scenario"]):
        sub = pts[pts["scenario"] == scen]
        groups = [("all", sub)] + [(m, sub[sub["method"] == m]) for m in sorted_methods(sub["method"])]
        for name, g in groups:
            a, b = fit_cui(g["_h"].to_numpy(), g["_r"].to_numpy())
            rows.append({"scenario": scen, "group": name, "n": len(g), "a": a, "b": b})
    return pd.DataFrame(rows, columns=["scenario", "group", "n", "a", "b"])


def _scatter(frame: pd.DataFrame, path: Path) -> bool:
    def draw(ax, sub: pd.DataFrame, methods: list[str], colors: dict[str, tuple]) -> None:
        for m in methods:
            g = sub[sub["method"] == m]
            if len(g):
                ax.scatter(g["_h"], g["_r"], s=10, color=colors[m], label=m, alpha=0.7)
        a, b = fit_cui(sub["_h"].to_numpy(), sub["_r"].to_numpy())
        if np.isfinite(a):
            hh = np.linspace(sub["_h"].min(), sub["_h"].max(), 100)
            ax.plot(hh, cui_curve(hh, a, b), color="k", lw=1, label=f"R=−{a:.3g}·e^H+{b:.3g}")

    return _scenario_panels(_eval_points(frame), "entropy/mean", "val/pass@1", path, draw)


def make_figures(frame: pd.DataFrame, out: Path) -> list[tuple[str, str]]:
    """Write every figure that has data; return ``[(file name, caption)]`` in a fixed order."""
    out = Path(out)
    frame = labelled(frame)
    acc_metric = "val/pass@1" if col(frame, "val/pass@1").notna().any() else "acc/train"
    jobs = [
        (
            "entropy_vs_step.png",
            "Entropy vs step (seed mean, band = min..max)",
            lambda p: _curve_plot(frame, "entropy/mean", "entropy/mean", p),
        ),
        (
            "accuracy_vs_step.png",
            f"{acc_metric} vs step (seed mean, band = min..max)",
            lambda p: _curve_plot(frame, acc_metric, acc_metric, p),
        ),
        ("dH_abs_box.png", "Per-step |ΔH| per method", lambda p: _delta_box(frame, p)),
        ("clip_fractions.png", "Mean clip fractions per method", lambda p: _clip_bars(frame, p)),
        (
            "entropy_accuracy.png",
            "Entropy vs val/pass@1 with R = −a·exp(H) + b",
            lambda p: _scatter(frame, p),
        ),
    ]
    written = []
    for name, caption, draw in jobs:
        if draw(out / name):
            written.append((name, caption))
    return written
