"""compare's statistics against independent computations (scipy, brute force, hand values)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as st

from steerbench.analysis.compare.inference import (
    cohens_d,
    cohens_dz,
    holm,
    min_detectable,
    min_detectable_welch,
    paired_t,
    permutation_p,
    sign_flip_p,
    welch_level,
    welch_size,
    welch_t,
    welch_worst_size,
)


def test_paired_t_matches_scipy():
    a, b = np.array([0.52, 0.61, 0.58, 0.49]), np.array([0.40, 0.45, 0.51, 0.42])
    p, lo, hi = paired_t(a - b)
    ref = st.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert p == pytest.approx(ref.pvalue) and (lo, hi) == pytest.approx((ci.low, ci.high))


def test_paired_t_degenerate_cases():
    assert paired_t([0.0, 0.0, 0.0])[0] == 1.0
    assert math.isnan(paired_t([0.1, 0.1, 0.1])[0])  # no spread: the t-test is undefined
    assert math.isnan(paired_t([0.3])[0])


def test_sign_flip_is_exact_and_matches_scipys_permutation_test():
    assert sign_flip_p([1.0, 2.0, 3.0]) == 0.25  # only all-plus and all-minus reach |sum| = 6: 2/8
    # s1 − s2 + 3·s3 over the 8 patterns: 3, 5, 1, 3, −3, −1, −5, −3 → |·| ≥ 3 in 6 of 8
    assert sign_flip_p([1.0, -1.0, 3.0]) == 0.75
    d = np.array([0.3, -0.1, 0.25, 0.4, 0.05, -0.02])
    ref = st.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=np.inf, alternative="two-sided"
    )
    assert sign_flip_p(d) == pytest.approx(ref.pvalue)


def test_holm_against_hand_values():
    # sorted p: 0.01, 0.02, 0.04 (m = 3) → 0.03, max(0.03, 0.04) = 0.04, max(0.04, 0.04) = 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # monotone step-down and capped at 1; NaN ignored (m = 2)
    got = holm([0.6, float("nan"), 0.3])
    assert got[0] == pytest.approx(0.6) and math.isnan(got[1]) and got[2] == pytest.approx(0.6)
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # 2 × 0.8 capped at 1; the larger p cannot be lower


def test_cohens_dz_is_mean_over_sd():
    d = [0.1, 0.3, 0.2]
    assert cohens_dz(d) == pytest.approx(0.2 / 0.1)


@pytest.mark.parametrize("n", [3, 5])
def test_min_detectable_difference_has_the_stated_power_by_simulation(n):
    sd, alpha = 0.05, 0.05
    delta = min_detectable(sd, n, alpha, 0.8)
    rng = np.random.default_rng(0)
    d = rng.normal(delta, sd, size=(200_000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    rejected = np.abs(t) > st.t.ppf(1 - alpha / 2, n - 1)
    assert rejected.mean() == pytest.approx(0.8, abs=0.006)


def test_min_detectable_approaches_the_normal_formula_for_many_pairs():
    sd, n = 1.0, 400
    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    assert min_detectable(sd, n) == pytest.approx(z * sd / math.sqrt(n), rel=0.01)
    assert math.isnan(min_detectable(sd, 1)) and math.isnan(min_detectable(0.0, 3))


def test_welch_t_is_scipys_welch_test_size_corrected():
    method = np.array([0.61, 0.55, 0.70, 0.52, 0.66, 0.58, 0.49, 0.63])
    control = np.array([0.50, 0.52, 0.49, 0.55, 0.51, 0.48, 0.53, 0.50, 0.52, 0.47, 0.54, 0.50])
    p, lo, hi = welch_t(method, control)
    ref = st.ttest_ind(method, control, equal_var=False)
    assert p == pytest.approx(welch_worst_size(ref.pvalue, 8, 12)) and p > ref.pvalue
    ci = ref.confidence_interval(1 - welch_level(0.05, 8, 12))
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert (hi - lo) > np.diff(ref.confidence_interval(0.95))[0]


def _welch_rejections(
    alpha: float, n_x: int, n_c: int, share: float, trials: int, seed: int = 0
) -> np.ndarray:
    """Welch's p ≤ α in simulated null samples whose x̄ − c̄ takes a share of its variance from x."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, math.sqrt(share * n_x), (trials, n_x))
    c = rng.normal(0.0, math.sqrt((1 - share) * n_c), (trials, n_c))
    return st.ttest_ind(x, c, axis=1, equal_var=False).pvalue <= alpha


@pytest.mark.parametrize(("n_x", "n_c", "share"), [(8, 16, 0.9), (4, 4, 0.97), (3, 30, 0.8), (12, 16, 0.3)])
def test_welch_size_equals_the_simulated_rejection_rate(n_x, n_c, share):
    alpha, trials = 0.01, 400_000
    rate = _welch_rejections(alpha, n_x, n_c, share, trials).mean()
    exact = welch_size(alpha, n_x, n_c, share)
    assert rate == pytest.approx(exact, abs=4 * math.sqrt(exact / trials))
    assert welch_size(alpha, n_x, n_c, 0.0) == welch_size(alpha, n_x, n_c, 1.0) == alpha  # Student's t


def test_the_size_corrected_p_is_valid_where_welchs_is_liberal():
    """8 runs against 16 at α/22, the share where Welch's p is most liberal (≈ 1.47× nominal)."""
    alpha, trials = 0.05 / 22, 1_000_000
    worst = welch_worst_size(alpha, 8, 16)
    assert 1.4 < worst / alpha < 1.55
    assert worst >= max(welch_size(alpha, 8, 16, share) for share in np.linspace(0, 1, 101))
    level = welch_level(alpha, 8, 16)
    assert welch_worst_size(level, 8, 16) == pytest.approx(alpha, rel=1e-6)
    share = 0.9
    welch = _welch_rejections(alpha, 8, 16, share, trials, seed=3).mean()
    corrected = _welch_rejections(level, 8, 16, share, trials, seed=3).mean()  # p* ≤ α ⟺ p ≤ α'
    se = math.sqrt(alpha / trials)
    assert welch > alpha + 8 * se and corrected < alpha + 4 * se


def test_welch_t_degenerate_cases():
    assert welch_t([0.2, 0.2], [0.2, 0.2, 0.2])[0] == 1.0
    assert math.isnan(welch_t([0.3, 0.3], [0.2, 0.2])[0])  # no spread on either side: undefined
    assert math.isnan(welch_t([0.3], [0.2, 0.4])[0])


def test_permutation_p_is_exact_when_small_and_close_to_scipy_when_sampled():
    # 1 and 2 against 3 and 4: of the 6 relabellings, only the observed split and its mirror reach |Δ| = 2
    assert permutation_p([1.0, 2.0], [3.0, 4.0]) == pytest.approx(2 / 6)
    rng = np.random.default_rng(2)
    x, c = rng.normal(0.3, 1, 6), rng.normal(0, 1, 8)  # C(14, 6) = 3003 relabellings: enumerated
    pooled, observed = np.concatenate([x, c]), abs(x.mean() - c.mean())
    splits = [
        abs(pooled[list(chosen)].mean() - np.delete(pooled, list(chosen)).mean())
        for chosen in itertools.combinations(range(14), 6)
    ]
    assert permutation_p(x, c) == pytest.approx(np.mean(np.array(splits) >= observed - 1e-12))
    x, c = rng.normal(0.5, 1, 8), rng.normal(0, 1, 16)  # C(24, 8) = 735,471: a seeded Monte Carlo
    pooled, observed = np.concatenate([x, c]), abs(x.mean() - c.mean())
    shuffled = np.array([rng.permutation(pooled) for _ in range(100_000)])
    sampled = np.mean(np.abs(shuffled[:, :8].mean(1) - shuffled[:, 8:].mean(1)) >= observed)
    assert permutation_p(x, c) == pytest.approx(sampled, abs=0.015)
    assert permutation_p(x, c) == permutation_p(x, c)  # seeded


def test_cohens_d_is_the_difference_over_the_pooled_sd():
    # means 3 and 2, variances 1 and 4 with 3 values each: pooled (2·1 + 2·4) / 4 = 2.5
    assert cohens_d([2.0, 3.0, 4.0], [0.0, 2.0, 4.0]) == pytest.approx(1.0 / math.sqrt(2.5))
    assert math.isnan(cohens_d([2.0], [0.0, 2.0]))


@pytest.mark.parametrize(("n_x", "n_c", "sd_x", "sd_c"), [(8, 16, 0.08, 0.05), (12, 16, 0.09, 0.05)])
def test_welchs_min_detectable_difference_has_the_stated_power_by_simulation(n_x, n_c, sd_x, sd_c):
    alpha = 0.05 / 22
    delta = min_detectable_welch(sd_x, n_x, sd_c, n_c, alpha, 0.8)
    rng = np.random.default_rng(1)
    x, c = rng.normal(delta, sd_x, (200_000, n_x)), rng.normal(0.0, sd_c, (200_000, n_c))
    p = st.ttest_ind(x, c, axis=1, equal_var=False).pvalue
    # Welch's df is estimated from each sample: the noncentral-t power is an approximation, close at these
    # sizes (the paper's), optimistic at very few runs (4 against 4: 0.64, not 0.8); p < α' is the
    # size-corrected test's p* < α
    assert (p < welch_level(alpha, n_x, n_c)).mean() == pytest.approx(0.8, abs=0.02)


def test_more_control_runs_lower_welchs_min_detectable_difference():
    few, many = min_detectable_welch(0.05, 8, 0.05, 8), min_detectable_welch(0.05, 8, 0.05, 24)
    assert many < few
    assert math.isnan(min_detectable_welch(0.05, 1, 0.05, 8)) and math.isnan(
        min_detectable_welch(0.0, 4, 0.05, 8)
    )
