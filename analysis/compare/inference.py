"""Statistics over seeds for ``steerbench compare``: a method's runs against its matched control's, Holm's
correction, effect size and the smallest detectable difference (cell intervals: ``design.t_interval``).
Two tests, as a grid's design declares (``design.test``):

- ``paired_t(d)``: t = d̄ / (s_d/√n), df = n − 1, two-sided p; the t-interval d̄ ± t_{1−α/2} s_d/√n.
- ``welch_t(x, c)``: two samples of runs, unequal variances: t = (x̄ − c̄)/se, se² = s_x²/n_x + s_c²/n_c,
  Welch–Satterthwaite df = se⁴ / ((s_x²/n_x)²/(n_x − 1) + (s_c²/n_c)²/(n_c − 1)). The control may hold
  more runs than the method (a shared control). Welch's p is an approximation, liberal at a family's level
  (8 runs against 16 at α/22: up to 1.47× as many false rejections as nominal), so it is size-corrected:
  the p reported is ``welch_worst_size(p_Welch)``, the largest probability, over the ratio of the two
  spreads, that Welch's p falls at or below the observed one when the means are equal. That p is valid at
  every level for any spreads of normal runs, and so is Holm's correction over it. The interval is Welch's,
  x̄ − c̄ ± t_{1−α'/2, df}·se, at the nominal level α' = ``welch_level(α)`` whose worst size is α, so it
  excludes 0 exactly when p < α.
- ``welch_size(α, n_x, n_c, share)``: P(Welch's p ≤ α) under equal means with a share
  (σ_x²/n_x)/(σ_x²/n_x + σ_c²/n_c) of the variance of x̄ − c̄ from x: a one-dimensional integral over the
  sample share of se² (its docstring derives it), checked against simulation.
- ``sign_flip_p(d)``: exact permutation test of a paired difference: the share of the 2ⁿ sign patterns
  s with |mean(s·d)| ≥ |mean(d)|. Its smallest possible value is 2/2ⁿ (0.25 with 3 seeds).
- ``permutation_p(x, c)``: the two-sample permutation test of x̄ − c̄: the share of relabellings of the
  pooled runs whose |mean difference| is at least the observed one (exact up to 20,000 relabellings, else
  a seeded Monte Carlo of 10,000 that counts the observed labelling once).
- ``holm(p)``: Holm's step-down adjustment, p̃₍ᵢ₎ = max_{j≤i} min(1, (m − j + 1)·p₍ⱼ₎); NaN p are ignored.
- ``cohens_dz(d)``: d̄ / s_d, the paired effect size; ``cohens_d(x, c)``: (x̄ − c̄) / pooled s.
- ``min_detectable(s_d, n, α, power)`` and ``min_detectable_welch(s_x, n_x, s_c, n_c, α, power)``: the
  smallest true mean difference δ that the two-sided test at level α detects with probability ``power``:
  P(|T| > t_{1−α/2, df}) = power with T a noncentral t of noncentrality δ/se (se = s_d/√n, df = n − 1
  paired; Welch's se and df for two samples, at its size-corrected level α' = ``welch_level(α)``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from itertools import combinations, product

import numpy as np
from scipy import special
from scipy import stats as st
from scipy.integrate import quad
from scipy.optimize import brentq, minimize_scalar

N_RESAMPLES = 10_000
SIGN_FLIP_EXACT_MAX = 16
PERMUTATION_EXACT_MAX = 20_000  # relabellings enumerated; beyond, a seeded Monte Carlo
SHARE_GRID = np.linspace(0.0, 1.0, 41)


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


def welch_se_df(sd_x: float, n_x: int, sd_c: float, n_c: int) -> tuple[float, float]:
    """(standard error of x̄ − c̄, Welch–Satterthwaite df) from each sample's sd and size."""
    vx, vc = sd_x**2 / n_x, sd_c**2 / n_c
    se = math.sqrt(vx + vc)
    df = (vx + vc) ** 2 / (vx**2 / (n_x - 1) + vc**2 / (n_c - 1)) if vx + vc > 0 else math.nan
    return se, df


def welch_t(x: Sequence[float], c: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(two-sided p, interval low, interval high) of mean(x) − mean(c), Welch's unequal-variance t.

    Fewer than two values on either side: NaN. No spread on either side: p = 1 if the means are equal,
    else NaN (no variance to test)."""
    x, c = finite(x), finite(c)
    if len(x) < 2 or len(c) < 2:
        return math.nan, math.nan, math.nan
    diff = float(x.mean() - c.mean())
    se, df = welch_se_df(float(x.std(ddof=1)), len(x), float(c.std(ddof=1)), len(c))
    scale = max(abs(float(x.mean())), abs(float(c.mean())))
    if _no_spread(scale, se):  # equal values on each side, up to round-off
        return (1.0 if abs(diff) <= 1e-12 * scale else math.nan), diff, diff
    p = welch_worst_size(float(2 * st.t.sf(abs(diff) / se, df)), len(x), len(c))
    half = -float(st.t.ppf(welch_level(1 - level, len(x), len(c)) / 2, df)) * se
    return p, diff - half, diff + half


def welch_size(alpha: float, n_x: int, n_c: int, share: float) -> float:
    """P(Welch's two-sided p ≤ α) for normal samples of n_x and n_c runs with equal means, a share
    (σ_x²/n_x)/(σ_x²/n_x + σ_c²/n_c) of the variance of x̄ − c̄ coming from x.

    In units of var(x̄ − c̄), s_x²/n_x = a·U_x and s_c²/n_c = b·U_c with U ~ χ²_f, a = share/f_x,
    b = (1 − share)/f_c. Given the sample share q = a·U_x/se², Welch's df is fixed, and se² is
    Gamma(k, λ(q)) with k = (f_x + f_c)/2, λ = (q/a + (1 − q)/b)/2, so the chance that |x̄ − c̄|/se passes
    the critical value c is that of |t_{2k}| > c·√(k/λ). q is a monotone map of B = U_x/(U_x + U_c) ~
    Beta(f_x/2, f_c/2), over which one adaptive quadrature integrates."""
    f_x, f_c = n_x - 1, n_c - 1
    if not 0 < share < 1:  # one sample's variance alone: Welch's t is Student's t, exact
        return float(alpha)
    a, b, k = share / f_x, (1 - share) / f_c, (f_x + f_c) / 2

    def rejection(beta: float) -> float:
        q = a * beta / (a * beta + b * (1 - beta))
        critical = -special.stdtrit(1 / (q * q / f_x + (1 - q) ** 2 / f_c), alpha / 2)  # exact for tiny α
        return float(2 * special.stdtr(2 * k, -critical * math.sqrt(2 * k / (q / a + (1 - q) / b))))

    total, _ = quad(
        rejection, 0, 1, weight="alg", wvar=(f_x / 2 - 1, f_c / 2 - 1), epsabs=0, epsrel=1e-9, limit=200
    )
    return float(total / special.beta(f_x / 2, f_c / 2))


def welch_worst_size(alpha: float, n_x: int, n_c: int) -> float:
    """The largest ``welch_size`` over the variance share: a grid, then a bounded search around its best."""
    if not 0 < alpha < 1:
        return float(min(max(alpha, 0.0), 1.0))
    sizes = [welch_size(alpha, n_x, n_c, share) for share in SHARE_GRID]
    best = int(np.argmax(sizes))
    bounds = (SHARE_GRID[max(best - 1, 0)], SHARE_GRID[min(best + 1, len(SHARE_GRID) - 1)])
    found = minimize_scalar(
        lambda share: -welch_size(alpha, n_x, n_c, share), bounds=bounds, method="bounded",
        options={"xatol": 1e-5},
    )  # fmt: skip
    return float(min(1.0, max(sizes[best], -found.fun)))


@functools.lru_cache(maxsize=1024)
def welch_level(alpha: float, n_x: int, n_c: int) -> float:
    """The nominal level α' at which Welch's test, at its worst over the variance share, rejects with
    probability α (a few runs a side can need α' ≪ α: 3 against 30 at α/22, ≈ α/8), or 0 where none does
    (2 runs against 40: with one df on one side the worst size stays above 0.01 at any level)."""
    low = alpha / 2
    while welch_worst_size(low, n_x, n_c) > alpha:
        if low < 1e-15:
            return 0.0
        low /= 2
    return float(brentq(lambda a: welch_worst_size(a, n_x, n_c) - alpha, low, alpha, xtol=1e-9 * alpha))


def permutation_p(x: Sequence[float], c: Sequence[float], seed: int = 0) -> float:
    """Two-sided p of the two-sample permutation test of mean(x) = mean(c)."""
    x, c = finite(x), finite(c)
    if len(x) == 0 or len(c) == 0:
        return math.nan
    pooled = np.concatenate([x, c])
    n, total = len(x), len(pooled)
    if math.comb(total, n) <= PERMUTATION_EXACT_MAX:
        labels = np.zeros((math.comb(total, n), total), dtype=bool)
        for row, chosen in enumerate(combinations(range(total), n)):
            labels[row, list(chosen)] = True
    else:
        chosen = np.argsort(np.random.default_rng(seed).random((N_RESAMPLES, total)), axis=1)[:, :n]
        chosen[0] = np.arange(n)  # the observed labelling counts once
        labels = np.zeros((N_RESAMPLES, total), dtype=bool)
        np.put_along_axis(labels, chosen, True, axis=1)
    stat = np.abs(labels @ pooled / n - (~labels) @ pooled / (total - n))
    observed = abs(float(x.mean() - c.mean()))
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


def cohens_d(x: Sequence[float], c: Sequence[float]) -> float:
    """(mean(x) − mean(c)) / the pooled sd, the two-sample effect size."""
    x, c = finite(x), finite(c)
    if len(x) < 2 or len(c) < 2:
        return math.nan
    diff = float(x.mean() - c.mean())
    pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(c) - 1) * c.var(ddof=1)) / (len(x) + len(c) - 2))
    return math.nan if _no_spread(diff, pooled) else diff / pooled


def t_power(delta: float, se: float, df: float, alpha: float) -> float:
    """Probability that a two-sided t-test (standard error ``se``, ``df``) at level α rejects when the true
    difference is δ."""
    crit = float(st.t.ppf(1 - alpha / 2, df))
    nc = delta / se
    lower = float(st.nct.cdf(-crit, df, nc))  # scipy returns NaN where this tail underflows (δ ≫ se)
    return float(st.nct.sf(crit, df, nc)) + (lower if math.isfinite(lower) else 0.0)


def _smallest_detectable(se: float, df: float, alpha: float, power: float) -> float:
    hi = se
    while t_power(hi, se, df, alpha) < power:
        hi *= 2
    return float(brentq(lambda delta: t_power(delta, se, df, alpha) - power, 0.0, hi, xtol=1e-12 * se))


def _usable(sd: float, n: int) -> bool:
    return n >= 2 and math.isfinite(sd) and sd > 0


def min_detectable(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest |true mean difference| the paired t-test detects with ``power`` (NaN if n < 2 or sd
    is not positive and finite)."""
    if not _usable(sd, n):
        return math.nan
    return _smallest_detectable(sd / math.sqrt(n), n - 1, alpha, power)


def min_detectable_welch(
    sd_x: float, n_x: int, sd_c: float, n_c: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest |true mean difference| Welch's t-test, size-corrected to level α (``welch_level``), detects
    with ``power`` for samples of ``n_x`` and ``n_c`` runs with these sds (NaN if either side has fewer than
    two runs or no finite positive sd; infinite where no level reaches α). Welch's df is taken at these sds,
    not estimated per sample as the test does: close at 8–16 runs a side (simulated power 0.80 ± 0.02),
    optimistic with very few (4 against 4: 0.64)."""
    if not (_usable(sd_x, n_x) and _usable(sd_c, n_c)):
        return math.nan
    level = welch_level(alpha, n_x, n_c)
    return _smallest_detectable(*welch_se_df(sd_x, n_x, sd_c, n_c), level, power) if level > 0 else math.inf
