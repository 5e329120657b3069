"""Figures for Ω validation (matplotlib, Agg backend): hexbins, calibration, quadrant bars, error vs lr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _estimators(frame: pd.DataFrame) -> list[str]:
    return [c[len("pred_") :] for c in frame.columns if c.startswith("pred_")]


def hexbin_figure(frame: pd.DataFrame, path: Path, name: str, report: dict[str, Any]) -> Path:
    plt = _plt()
    x, y = frame[f"pred_{name}"].to_numpy(), frame["measured"].to_numpy()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.hexbin(x, y, gridsize=40, bins="log", mincnt=1, cmap="viridis")
    s = report["estimators"].get(name, {})
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    ax.set_title(f"{name}: r={fmt(s.get('pearson'))} ρ={fmt(s.get('spearman'))}", fontsize=9)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    if name not in report["setup"].get("scale_free", []):
        ax.plot([lo, hi], [lo, hi], "r--", lw=0.8, label="y = x")
        ax.legend(fontsize=7)
    ax.set_xlabel("predicted ΔH")
    ax.set_ylabel("measured ΔH")
    return _save(fig, path)


def calibration_figure(frame: pd.DataFrame, path: Path, bins: int = 10) -> Path:
    """Mean measured ΔH in quantile bins of each estimator's prediction (z-scored to share one axis)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    y = frame["measured"].to_numpy()
    for name in _estimators(frame):
        x = frame[f"pred_{name}"].to_numpy()
        if x.std() == 0:
            continue
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        xs = [(x[idx == k].mean() - x.mean()) / x.std() for k in range(len(edges) - 1) if (idx == k).any()]
        ys = [y[idx == k].mean() for k in range(len(edges) - 1) if (idx == k).any()]
        ax.plot(xs, ys, "o-", ms=3, label=name)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("predicted ΔH (bin mean, z-score)")
    ax.set_ylabel("measured ΔH (bin mean)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def quadrant_figure(frame: pd.DataFrame, path: Path, report: dict[str, Any]) -> Path:
    """Per quadrant: mean measured ΔH (bars) and each estimator's sign agreement."""
    plt = _plt()
    quads = sorted(q for q in frame["quadrant"].unique() if q != "A=0")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    means = [frame.loc[frame["quadrant"] == q, "measured"].mean() for q in quads]
    a1.bar(quads, means, color=["tab:red" if m < 0 else "tab:blue" for m in means])
    a1.axhline(0, color="grey", lw=0.5)
    a1.set_ylabel("mean measured ΔH")
    a1.tick_params(axis="x", labelsize=7)
    names = _estimators(frame)
    w = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        byq = report["estimators"][name]["by_quadrant"]
        vals = [byq.get(q, {}).get("sign_agreement") or 0.0 for q in quads]
        a2.bar(np.arange(len(quads)) + i * w, vals, w, label=name)
    a2.set_xticks(np.arange(len(quads)) + 0.4 - w / 2, quads, fontsize=7)
    a2.axhline(0.5, color="grey", lw=0.5, ls="--")
    a2.set_ylabel("sign agreement")
    a2.legend(fontsize=6)
    return _save(fig, path)


def lr_figure(report: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    sweep = report.get("lr_sweep") or {}
    lrs = sorted(sweep, key=float)
    fig, ax = plt.subplots(figsize=(5, 4))
    names = list(next(iter(sweep.values())).keys()) if sweep else []
    scale_free = set(report["setup"].get("scale_free", []))
    for name in names:
        key = "rel_error_scaled" if name in scale_free else "rel_error"
        ys = [sweep[lr][name][key] for lr in lrs]
        ax.loglog([float(v) for v in lrs], [v if v else np.nan for v in ys], "o-", label=f"{name} ({key})")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("‖measured − predicted‖ / ‖measured‖")
    ax.legend(fontsize=7)
    return _save(fig, path)


def write_figures(out: Path, frame: pd.DataFrame, report: dict[str, Any]) -> list[Path]:
    paths = [hexbin_figure(frame, out / f"hexbin_{name}.png", name, report) for name in _estimators(frame)]
    paths.append(calibration_figure(frame, out / "calibration.png"))
    paths.append(quadrant_figure(frame, out / "quadrants.png", report))
    if report.get("lr_sweep"):
        paths.append(lr_figure(report, out / "error_vs_lr.png"))
    return paths


def over_training_figure(over: list[dict[str, Any]], path: Path) -> Path:
    """Pearson and sign agreement of each estimator against the checkpoint's training step."""
    plt = _plt()
    steps = [row["step"] for row in over]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, label in ((axes[0], "pearson", "Pearson r"), (axes[1], "sign_agreement", "sign agreement")):
        for name in over[0]["estimators"]:
            values = [row["estimators"][name][key] for row in over]
            ax.plot(steps, [np.nan if v is None else v for v in values], marker="o", label=name)
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[1].axhline(0.5, color="grey", lw=0.8)
    axes[1].legend(fontsize=8)
    return _save(fig, path)
