"""Agreement statistics between predicted and measured ΔH, with seeded bootstrap confidence intervals.

For paired samples (x = predicted, y = measured):
    pearson         linear correlation of x and y
    spearman        Pearson correlation of the ranks (average ranks for ties)
    sign_agreement  fraction of points with sign(x) = sign(y), over points where y ≠ 0
    slope           least-squares slope b of y ≈ a + b·x (1 = calibrated scale; meaningless for scale-free x)
    r2              1 − SS_res/SS_tot of that fit (= pearson²)
    mse             mean (y − x)²
    residual        quantiles of y − x (the raw first-order error, REFERENCES C.13)
Undefined statistics (fewer than 3 points, zero variance) are NaN, written as null in JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

METRICS = ("pearson", "spearman", "sign_agreement", "slope", "r2")
RESIDUAL_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, tied values sharing their average rank; all NaN if any value is NaN (what
    ``scipy.stats.rankdata`` returns by default; numpy here, so in-training Ω needs no scipy)."""
    x = np.asarray(x, np.float64)
    if np.isnan(x).any():
        return np.full(x.shape, math.nan)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first position of each run of ties
    counts = np.diff(np.r_[starts, len(x)])
    ranks = np.empty(x.shape)
    ranks[order] = np.repeat(starts + 1 + (counts - 1) / 2, counts)
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float((xc * xc).sum()) * float((yc * yc).sum()))
    return float((xc * yc).sum() / den) if den > 0 else math.nan


def point_stats(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The five agreement metrics plus n and mse for one set of pairs."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    out: dict[str, float] = {"n": float(n)}
    out["pearson"] = _pearson(x, y)
    out["spearman"] = _pearson(average_ranks(x), average_ranks(y)) if n >= 3 else math.nan
    nz = y != 0
    out["sign_agreement"] = float((np.sign(x[nz]) == np.sign(y[nz])).mean()) if nz.any() else math.nan
    var_x = float(((x - x.mean()) ** 2).sum()) if n else 0.0
    if n >= 3 and var_x > 0:
        slope = float(((x - x.mean()) * (y - y.mean())).sum() / var_x)
        fit = y.mean() + slope * (x - x.mean())
        ss_tot = float(((y - y.mean()) ** 2).sum())
        out["slope"] = slope
        out["r2"] = 1.0 - float(((y - fit) ** 2).sum()) / ss_tot if ss_tot > 0 else math.nan
    else:
        out["slope"] = out["r2"] = math.nan
    out["mse"] = float(((y - x) ** 2).mean()) if n else math.nan
    return out


def bootstrap_ci(
    x: np.ndarray,
    y: np.ndarray,
    clusters: np.ndarray | None = None,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile CIs of METRICS, resampling whole clusters (e.g. sequences) with replacement."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ids = np.arange(len(x)) if clusters is None else np.asarray(clusters)
    uniq, inverse = np.unique(ids, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(uniq))]
    draws: dict[str, list[float]] = {m: [] for m in METRICS}
    if len(uniq) < 2:
        return {m: [math.nan, math.nan] for m in METRICS}
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[k] for k in pick])
        s = point_stats(x[idx], y[idx])
        for m in METRICS:
            draws[m].append(s[m])
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    out = {}
    for m, vals in draws.items():
        v = np.asarray(vals)
        v = v[np.isfinite(v)]
        out[m] = [float(np.quantile(v, lo)), float(np.quantile(v, hi))] if len(v) else [math.nan, math.nan]
    return out


def residual_quantiles(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    r = np.asarray(y, np.float64) - np.asarray(x, np.float64)
    if not len(r):
        return {f"q{q:g}": math.nan for q in RESIDUAL_QUANTILES}
    return {f"q{q:g}": float(np.quantile(r, q)) for q in RESIDUAL_QUANTILES}


def _group_sum(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(keys, return_inverse=True)
    return np.bincount(inverse, weights=values, minlength=len(uniq))


def agreement_stats(
    predicted: np.ndarray,
    measured: np.ndarray,
    sequence_id: np.ndarray,
    batch_id: np.ndarray,
    quadrant: Sequence[str],
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """One estimator's report: token-level metrics at the top, then ``ci``, ``by_quadrant``, ``levels``.

    Token level: every valid response token. Sequence level: sums over each sequence's tokens.
    Batch level: sums over each batch (needs several batches, ``--batches N``). CIs resample sequences
    (tokens of one sequence are correlated), batch-level CIs resample batches.
    """
    x, y = np.asarray(predicted, np.float64), np.asarray(measured, np.float64)
    seq, bat = np.asarray(sequence_id), np.asarray(batch_id)
    quad = np.asarray(list(quadrant))
    token = point_stats(x, y)
    out: dict[str, Any] = {m: token[m] for m in METRICS}
    out["mse"] = token["mse"]
    out["n"] = int(token["n"])
    out["ci"] = bootstrap_ci(x, y, seq, n_boot, seed)
    out["residual_quantiles"] = residual_quantiles(x, y)
    out["by_quadrant"] = {}
    for q in sorted(set(quad.tolist())):
        sel = quad == q
        s = point_stats(x[sel], y[sel])
        s["n"] = int(sel.sum())
        s["measured_mean"] = float(y[sel].mean())
        s["predicted_mean"] = float(x[sel].mean())
        out["by_quadrant"][q] = s
    seq_x, seq_y = _group_sum(x, seq), _group_sum(y, seq)
    bat_x, bat_y = _group_sum(x, bat), _group_sum(y, bat)
    out["levels"] = {
        "token": {**token, "n": int(token["n"])},
        "sequence": {
            **point_stats(seq_x, seq_y),
            "n": len(seq_x),
            "ci": bootstrap_ci(seq_x, seq_y, None, n_boot, seed),
        },
        "batch": {
            **point_stats(bat_x, bat_y),
            "n": len(bat_x),
            "ci": bootstrap_ci(bat_x, bat_y, None, n_boot, seed) if len(bat_x) >= 3 else {},
        },
    }
    return out


def json_safe(obj: Any) -> Any:
    """NaN/Inf → None, numpy scalars → Python, recursively (stable, strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
