"""Statistics over seeds for ``steerbench compare``: paired tests against a matched control, Holm's
correction, effect size and the smallest detectable difference (cell intervals: ``design.t_interval``).

- ``paired_t(d)``: t = d̄ / (s_d/√n), df = n − 1, two-sided p; the t-interval d̄ ± t_{1−α/2} s_d/√n.
- ``sign_flip_p(d)``: exact permutation test of a paired difference: the share of the 2ⁿ sign patterns
  s with |mean(s·d)| ≥ |mean(d)|. Its smallest possible value is 2/2ⁿ (0.25 with 3 seeds).
- ``holm(p)``: Holm's step-down adjustment, p̃₍ᵢ₎ = max_{j≤i} min(1, (m − j + 1)·p₍ⱼ₎); NaN p are ignored.
- ``cohens_dz(d)``: d̄ / s_d, the paired effect size.
- ``min_detectable(s_d, n, α, power)``: the smallest true mean difference δ that a two-sided paired
  t-test at level α detects with probability ``power``: P(|T| > t_{1−α/2, n−1}) = power with T following
  a noncentral t, df = n − 1, noncentrality δ√n/s_d.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product

import numpy as np
from scipy import stats as st
from scipy.optimize import brentq

N_RESAMPLES = 10_000
SIGN_FLIP_EXACT_MAX = 16


def finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray([v for v in values if v is not None], dtype=float)
    return x[np.isfinite(x)]


def _no_spread(mean: float, sd: float) -> bool:
    """Equal values up to float round-off (the sd of [0.1, 0.1, 0.1] is 1e-17, not 0)."""
    return sd <= 1e-12 * abs(mean) or sd == 0


def paired_t(d: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(two-sided p, interval low, interval high) of the mean paired difference.

    Fewer than two pairs: NaN. All differences equal: p = 1 if they are 0, else NaN (no variance to test).
    """
    x = finite(d)
    n = len(x)
    if n < 2:
        return math.nan, math.nan, math.nan
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    if _no_spread(mean, sd):
        return (1.0 if mean == 0 else math.nan), mean, mean
    se = sd / math.sqrt(n)
    t = mean / se
    p = float(2 * st.t.sf(abs(t), n - 1))
    half = float(st.t.ppf(0.5 + level / 2, n - 1)) * se
    return p, mean - half, mean + half


def sign_flip_p(d: Sequence[float], seed: int = 0) -> float:
    """Two-sided p of the exact sign-flip test of mean(d) = 0 (seeded Monte Carlo above 16 pairs)."""
    x = finite(d)
    n = len(x)
    if n == 0:
        return math.nan
    if n <= SIGN_FLIP_EXACT_MAX:
        signs = np.asarray(list(product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(N_RESAMPLES, n))
        signs[0] = 1.0  # the observed pattern counts once
    stat = np.abs(signs @ x) / n
    observed = abs(float(x.mean()))
    return float(np.mean(stat >= observed - 1e-12 * max(1.0, observed)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values in the input order; NaN stays NaN and does not count in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="mergesort")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def cohens_dz(d: Sequence[float]) -> float:
    x = finite(d)
    if len(x) < 2:
        return math.nan
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    return math.nan if _no_spread(mean, sd) else mean / sd


def paired_t_power(delta: float, sd: float, n: int, alpha: float) -> float:
    """Probability that the two-sided paired t-test at level α rejects when the true difference is δ."""
    df = n - 1
    crit = float(st.t.ppf(1 - alpha / 2, df))
    nc = delta * math.sqrt(n) / sd
    lower = float(st.nct.cdf(-crit, df, nc))  # scipy returns NaN where this tail underflows (δ ≫ sd)
    return float(st.nct.sf(crit, df, nc)) + (lower if math.isfinite(lower) else 0.0)


def min_detectable(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest |true mean difference| the paired t-test detects with ``power`` (NaN if n < 2 or sd
    is not positive and finite)."""
    if n < 2 or not (math.isfinite(sd) and sd > 0):
        return math.nan
    hi = sd
    while paired_t_power(hi, sd, n, alpha) < power:
        hi *= 2
    return float(brentq(lambda delta: paired_t_power(delta, sd, n, alpha) - power, 0.0, hi, xtol=1e-12 * sd))
