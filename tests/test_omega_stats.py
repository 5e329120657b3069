"""Agreement statistics checked against scipy's independent implementations and hand cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from steerbench.analysis.omega.stats import (
    agreement_stats,
    average_ranks,
    bootstrap_ci,
    json_safe,
    point_stats,
    residual_quantiles,
)


@pytest.fixture
def pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    return x, 2.0 * x + rng.normal(scale=0.7, size=300) + 0.3


def test_point_stats_match_scipy(pairs: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = pairs
    s = point_stats(x, y)
    fit = sps.linregress(x, y)
    assert s["pearson"] == pytest.approx(sps.pearsonr(x, y)[0], rel=1e-12)
    assert s["spearman"] == pytest.approx(sps.spearmanr(x, y)[0], rel=1e-12)
    assert s["slope"] == pytest.approx(fit.slope, rel=1e-12)
    assert s["r2"] == pytest.approx(fit.rvalue**2, rel=1e-12)
    assert s["mse"] == pytest.approx(float(np.mean((y - x) ** 2)))


def test_average_ranks_equal_scipys_rankdata_with_ties_and_nan() -> None:
    rng = np.random.default_rng(2)
    for x in (rng.integers(0, 5, size=200).astype(float), rng.normal(size=50), np.array([3.0]), np.array([])):
        np.testing.assert_array_equal(average_ranks(x), sps.rankdata(x))
    with_nan = np.array([0.0, 2.0, math.nan, 2.0])
    np.testing.assert_array_equal(average_ranks(with_nan), sps.rankdata(with_nan))  # all NaN


def test_sign_agreement_ignores_zero_measured_and_counts_zero_predictions_as_misses() -> None:
    x = np.array([1.0, -1.0, 0.0, 2.0, 5.0])
    y = np.array([3.0, -2.0, 1.0, -1.0, 0.0])
    assert point_stats(x, y)["sign_agreement"] == pytest.approx(2 / 4)


def test_undefined_statistics_are_nan_and_json_null() -> None:
    s = point_stats(np.zeros(5), np.arange(5.0))
    assert math.isnan(s["pearson"]) and math.isnan(s["slope"])
    assert json.loads(json.dumps(json_safe(s)))["pearson"] is None
    assert math.isnan(point_stats(np.ones(2), np.ones(2))["spearman"])


def test_bootstrap_is_seeded_and_brackets_the_estimate(pairs: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = pairs
    clusters = np.arange(len(x)) // 3
    a = bootstrap_ci(x, y, clusters, n_boot=100, seed=7)
    b = bootstrap_ci(x, y, clusters, n_boot=100, seed=7)
    assert a == b
    est = point_stats(x, y)
    for m in ("pearson", "slope", "sign_agreement"):
        assert a[m][0] <= est[m] <= a[m][1]
    assert a != bootstrap_ci(x, y, clusters, n_boot=100, seed=8)


def test_residual_quantiles_are_of_measured_minus_predicted() -> None:
    q = residual_quantiles(np.zeros(101), np.arange(101.0))
    assert q["q0.5"] == pytest.approx(50.0) and q["q0.05"] == pytest.approx(5.0)


def test_summarize_levels_and_quadrants(pairs: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = pairs
    seq = np.arange(len(x)) // 10  # 30 sequences of 10 tokens
    bat = seq // 5  # 6 batches
    quad = np.where(x > 0, "A>0,high", "A<0,low")
    rep = agreement_stats(x, y, seq, bat, quad.tolist(), n_boot=20, seed=0)
    assert set(rep["by_quadrant"]) == {"A>0,high", "A<0,low"}
    assert sum(q["n"] for q in rep["by_quadrant"].values()) == len(x)
    assert rep["levels"]["sequence"]["n"] == 30 and rep["levels"]["batch"]["n"] == 6
    seq_x = np.bincount(seq, weights=x)
    seq_y = np.bincount(seq, weights=y)
    assert rep["levels"]["sequence"]["pearson"] == pytest.approx(sps.pearsonr(seq_x, seq_y)[0])
    assert rep["pearson"] == rep["levels"]["token"]["pearson"]
    assert set(rep["ci"]) >= {"pearson", "spearman", "sign_agreement", "slope", "r2"}
