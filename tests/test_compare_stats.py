"""compare's statistics against independent computations (scipy, brute force, hand values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from steerbench.analysis.compare.inference import (
    cohens_dz,
    holm,
    min_detectable,
    paired_t,
    sign_flip_p,
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
