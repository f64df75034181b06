"""Scorecard statistics (pipeline/measures/stats.py)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr, spearmanr

from pipeline.measures.stats import (
    bootstrap,
    bootstrap_ci,
    one_sided_rate_test,
    pearson_r,
    rate_difference_ci,
    spearman_rho,
    wilson_interval,
)

# ------------------------------------------------------------------------------------- Wilson


# The last four rows are Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3.
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_known_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_is_exactly_zero_at_zero_successes() -> None:
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_observed_rate(kn: tuple[int, int]) -> None:
    k, n = kn
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_rejects_more_successes_than_trials() -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="n=0"):
        wilson_interval(0, 0)


# ---------------------------------------------------------------------------- rate comparison


def test_fisher_one_sided_p_value_for_the_lady_tasting_tea() -> None:
    # Fisher's tea table [[3, 1], [1, 3]]: P(X >= 3) = (16 + 1) / 70 = 0.242857.
    assert one_sided_rate_test(3, 4, 1, 4) == pytest.approx(17.0 / 70.0, abs=1e-12)


def test_fisher_one_sided_test_is_small_for_a_big_increase_and_one_for_a_decrease() -> None:
    # Paper-sized blackmail effect: 22% -> 72% in 50 rollouts each.
    assert one_sided_rate_test(36, 50, 11, 50) < 1e-5
    assert one_sided_rate_test(0, 50, 11, 50) == pytest.approx(1.0)


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score, no
# continuity correction). Example (a) is 56/70 - 48/80: the difference is 0.2000 and the interval
# (0.0524, 0.3339).
@pytest.mark.parametrize(
    ("k1", "n1", "k0", "n0", "low", "high"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
    ],
)
def test_newcombe_interval_matches_newcombe_1998_table_ii(
    k1: int, n1: int, k0: int, n0: int, low: float, high: float
) -> None:
    assert rate_difference_ci(k1, n1, k0, n0) == pytest.approx((low, high), abs=1e-4)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_newcombe_interval_contains_the_observed_difference(
    kn1: tuple[int, int], kn0: tuple[int, int]
) -> None:
    (k1, n1), (k0, n0) = kn1, kn0
    low, high = rate_difference_ci(k1, n1, k0, n0)
    assert -1.0 <= low <= k1 / n1 - k0 / n0 <= high <= 1.0


# ---------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_covers_the_true_mean_of_a_simple_sample() -> None:
    x = np.random.default_rng(0).normal(loc=3.0, scale=1.0, size=200)
    low, high = bootstrap_ci(np.mean, x, n_boot=1000)
    assert low < 3.0 < high
    # Roughly the normal-theory width 2 * 1.96 / sqrt(200) = 0.277.
    assert 0.2 < high - low < 0.36


def test_bootstrap_ci_is_deterministic_for_a_fixed_seed() -> None:
    x = np.random.default_rng(1).exponential(size=50)
    assert bootstrap_ci(np.mean, x, seed=7) == bootstrap_ci(np.mean, x, seed=7)
    assert bootstrap_ci(np.mean, x, seed=7) != bootstrap_ci(np.mean, x, seed=8)


def test_bootstrap_resamples_rows_of_a_2d_array_as_units() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=40)
    pairs = np.column_stack([x, 2.0 * x + rng.normal(scale=0.1, size=40)])
    low, high = bootstrap_ci(lambda u: pearson_r(u[:, 0], u[:, 1]), pairs, n_boot=500)
    assert 0.9 < low <= high <= 1.0


def test_bootstrap_resamples_a_sequence_of_arbitrary_units() -> None:
    units = [{"hit": h} for h in [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]]
    res = bootstrap(lambda us: float(np.mean([u["hit"] for u in us])), units, n_boot=500)
    assert res.low <= 0.7 <= res.high
    assert res.n_nan == 0 and res.n_boot == 500


def test_bootstrap_drops_nan_replicates_and_counts_them() -> None:
    # The statistic is NaN exactly when all three draws are the same unit.
    units = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 3.0]])

    def corr(u: np.ndarray) -> float:
        return math.nan if np.unique(u[:, 0]).size == 1 else pearson_r(u[:, 0], u[:, 1])

    res = bootstrap(corr, units, n_boot=2000, seed=0)
    # P(all three draws equal) = 3 / 27 = 1/9.
    assert res.n_nan == pytest.approx(2000 / 9, rel=0.2)
    assert np.isfinite(res.low) and np.isfinite(res.high)


def test_bootstrap_returns_nan_interval_when_most_replicates_are_nan() -> None:
    res = bootstrap(lambda u: math.nan if u[0] < 0.9 else 1.0, np.linspace(0, 1, 11), n_boot=200)
    assert math.isnan(res.low) and math.isnan(res.high)
    assert res.n_nan > 100


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(np.mean, np.ones(5), alpha=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(np.mean, np.ones(5), n_boot=0)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(np.mean, np.array([]))


# ------------------------------------------------------------------------------- correlations


def test_pearson_and_spearman_match_scipy_on_random_data() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=64)
    y = 0.5 * x + rng.normal(size=64)
    assert pearson_r(x, y) == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)
    y[::7] = y[0]  # ties
    assert spearman_rho(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_is_one_for_any_monotone_transform() -> None:
    x = np.linspace(0.1, 5.0, 20)
    assert spearman_rho(x, np.exp(3 * x)) == pytest.approx(1.0)
    assert spearman_rho(x, -np.log(x)) == pytest.approx(-1.0)


def test_correlations_are_nan_without_warnings_on_constant_input() -> None:
    x = np.array([0.1, 0.1, 0.1, 0.1])
    y = np.array([1.0, 2.0, 3.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(pearson_r(x, y))
        assert math.isnan(pearson_r(y, x))
        assert math.isnan(spearman_rho(x, y))
        assert math.isnan(spearman_rho(y, x))


def test_correlations_reject_mismatched_or_too_short_input() -> None:
    with pytest.raises(ValueError, match="equal length"):
        pearson_r([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 3"):
        spearman_rho([1.0, 2.0], [2.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        pearson_r([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=3, max_size=30))
def test_correlations_stay_within_minus_one_and_one(pairs: list[tuple[float, float]]) -> None:
    x, y = np.array(pairs).T
    for r in (pearson_r(x, y), spearman_rho(x, y)):
        assert math.isnan(r) or -1.0 <= r <= 1.0
