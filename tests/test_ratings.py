"""Bradley-Terry and iterative Elo from pairwise soft outcomes (pipeline/measures/ratings.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import expit
from scipy.stats import spearmanr

from pipeline.measures.ratings import (
    DEFAULT_L2,
    ELO_SCALE,
    ConvergenceError,
    bradley_terry,
    bt_log_likelihood,
    elo_expected,
    elo_update,
    expected_win_matrix,
    fit_bradley_terry,
    iterative_elo,
    per_order_win_matrix,
    soft_win_matrix,
    win_matrix_from_matches,
)

# The paper's Table 9 Elo values (Claude Sonnet 4.5, 64 activities), sorted; mean exactly 1500.
TABLE9_ELO = np.array(
    [
        521, 542, 552, 568, 577, 583, 596, 597, 607, 620, 740, 744, 984, 1008, 1070, 1084,
        1087, 1104, 1132, 1139, 1159, 1162, 1206, 1215, 1216, 1283, 1294, 1350, 1374, 1385,
        1387, 1404, 1497, 1498, 1570, 1588, 1589, 1602, 1649, 1679, 1723, 1727, 1833, 1873,
        1970, 1990, 2017, 2023, 2034, 2038, 2060, 2070, 2121, 2162, 2238, 2294, 2317, 2334,
        2355, 2395, 2446, 2465, 2668, 2885,
    ],
    dtype=float,
)  # fmt: skip


def simulated_logit_diff(
    elo: np.ndarray, *, position_bias: float, noise_sd: float, seed: int
) -> np.ndarray:
    """(n, n) logit(A) - logit(B) from planted Elo strengths, a bias towards A, and noise."""
    theta = (elo - elo.mean()) / ELO_SCALE
    rng = np.random.default_rng(seed)
    d = theta[:, None] - theta[None, :] + position_bias + rng.normal(0.0, noise_sd, (elo.size,) * 2)
    np.fill_diagonal(d, np.nan)
    return d


def test_table9_fixture_has_64_values_with_mean_1500() -> None:
    assert TABLE9_ELO.size == 64
    assert TABLE9_ELO.mean() == 1500.0


# ---------------------------------------------------------------------------------- soft wins


def test_soft_win_matrix_averages_the_two_orders_of_each_pair() -> None:
    d = np.array([[np.nan, 2.0, 0.0], [1.0, np.nan, -3.0], [0.5, 4.0, np.nan]])
    p = soft_win_matrix(d)
    # i = 0 vs j = 1: asked as A gives sigmoid(2); asked as B gives 1 - sigmoid(1).
    assert p[0, 1] == pytest.approx((expit(2.0) + 1.0 - expit(1.0)) / 2.0, abs=1e-15)
    assert p[1, 2] == pytest.approx((expit(-3.0) + 1.0 - expit(4.0)) / 2.0, abs=1e-15)
    assert np.all(np.isnan(np.diag(p)))


def test_soft_win_matrix_is_antisymmetric() -> None:
    d = simulated_logit_diff(TABLE9_ELO, position_bias=1.0, noise_sd=1.0, seed=3)
    p = soft_win_matrix(d)
    off = ~np.eye(64, dtype=bool)
    np.testing.assert_allclose((p + p.T)[off], 1.0, atol=1e-15)


def test_soft_win_matrix_is_stable_for_huge_logit_differences() -> None:
    d = np.array([[np.nan, 800.0], [-800.0, np.nan]])
    p = soft_win_matrix(d)
    assert p[0, 1] == 1.0 and p[1, 0] == 0.0


def test_soft_win_matrix_uses_the_other_order_when_one_prompt_is_missing() -> None:
    d = np.array([[np.nan, np.nan], [1.0, np.nan]])
    p = soft_win_matrix(d)
    assert p[0, 1] == pytest.approx(1.0 - expit(1.0))
    assert p[1, 0] == pytest.approx(expit(1.0))


def test_soft_win_matrix_rejects_a_non_square_input() -> None:
    with pytest.raises(ValueError, match="square"):
        soft_win_matrix(np.zeros((3, 4)))


logit_matrices = st.integers(min_value=2, max_value=12).flatmap(
    lambda n: arrays(
        np.float64,
        (n, n),
        elements=st.floats(min_value=-30.0, max_value=30.0, allow_nan=False),
    )
)


@settings(max_examples=30, deadline=None)
@given(logit_matrices)
def test_soft_wins_are_probabilities_and_bradley_terry_has_mean_1500_for_any_logits(
    d: np.ndarray,
) -> None:
    p = soft_win_matrix(d)
    n = d.shape[0]
    off = ~np.eye(n, dtype=bool)
    assert np.all((p[off] >= 0.0) & (p[off] <= 1.0))
    np.testing.assert_allclose((p + p.T)[off], 1.0, atol=1e-12)
    ratings = bradley_terry(p)
    assert np.all(np.isfinite(ratings))
    assert ratings.mean() == pytest.approx(1500.0, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(logit_matrices)
def test_bradley_terry_ranks_players_by_their_total_soft_score(d: np.ndarray) -> None:
    # With every ordered pair played once, the (regularised) score equations make the BT order
    # the order of row sums of P, for any P, not only for P drawn from a true BT model.
    p = soft_win_matrix(d)
    ratings = bradley_terry(p)
    score = np.nansum(p, axis=1)
    i, j = np.nonzero(score[:, None] - score[None, :] > 1e-6)
    assert np.all(ratings[i] > ratings[j])


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.integers(3, 16), elements=st.floats(-4.0, 4.0)),
)
def test_bradley_terry_order_matches_row_means_when_outcomes_follow_the_model(
    theta: np.ndarray,
) -> None:
    p = expected_win_matrix(theta * ELO_SCALE)
    ratings = bradley_terry(p)
    row_mean = np.nanmean(p, axis=1)
    i, j = np.nonzero(row_mean[:, None] - row_mean[None, :] > 1e-9)
    assert np.all(ratings[i] > ratings[j])


# ----------------------------------------------------------------------------- Bradley-Terry


def test_bradley_terry_recovers_planted_table9_strengths_from_noisy_outcomes() -> None:
    d = simulated_logit_diff(TABLE9_ELO, position_bias=0.8, noise_sd=0.5, seed=0)
    ratings = bradley_terry(soft_win_matrix(d))
    assert spearmanr(ratings, TABLE9_ELO).statistic >= 0.99


def test_bradley_terry_recovers_planted_strengths_from_binomial_win_counts() -> None:
    # 20 hard games per ordered pair, fed in as (mean score, count) through the weights.
    rng = np.random.default_rng(1)
    expected = expected_win_matrix(TABLE9_ELO)
    games = 20
    wins = rng.binomial(games, np.nan_to_num(expected))
    p = wins / games
    np.fill_diagonal(p, np.nan)
    weights = np.full((64, 64), float(games))
    ratings = bradley_terry(p, weights=weights)
    assert spearmanr(ratings, TABLE9_ELO).statistic >= 0.99


def test_bradley_terry_recovers_exact_ratings_when_outcomes_follow_the_model() -> None:
    p = expected_win_matrix(TABLE9_ELO)
    np.testing.assert_allclose(bradley_terry(p, l2=0.0), TABLE9_ELO, atol=1e-6)
    # The default prior shrinks the extreme players a little, by well under one Elo point.
    np.testing.assert_allclose(bradley_terry(p), TABLE9_ELO, atol=1.0)


def test_default_regularisation_moves_noisy_ratings_by_less_than_one_elo() -> None:
    p = soft_win_matrix(simulated_logit_diff(TABLE9_ELO, position_bias=0.8, noise_sd=0.5, seed=2))
    unregularised = bradley_terry(p, l2=0.0)
    regularised = bradley_terry(p, l2=DEFAULT_L2)
    assert np.max(np.abs(regularised - unregularised)) < 1.0


def test_a_400_point_gap_means_ten_to_one_odds() -> None:
    p = np.array([[np.nan, 10.0 / 11.0], [1.0 / 11.0, np.nan]])
    ratings = bradley_terry(p, l2=0.0)
    assert ratings[0] - ratings[1] == pytest.approx(400.0, abs=1e-6)
    assert ratings.mean() == pytest.approx(1500.0, abs=1e-9)


def test_bradley_terry_ratings_have_mean_exactly_1500() -> None:
    p = soft_win_matrix(simulated_logit_diff(TABLE9_ELO, position_bias=0.3, noise_sd=1.0, seed=4))
    fit = fit_bradley_terry(p)
    assert fit.ratings.mean() == pytest.approx(1500.0, abs=1e-9)
    assert fit.theta.mean() == pytest.approx(0.0, abs=1e-12)
    assert fit.grad_norm < 1e-8
    assert fit.log_likelihood == pytest.approx(bt_log_likelihood(fit.theta, p))


def test_bradley_terry_is_invariant_to_permuting_the_players() -> None:
    p = soft_win_matrix(simulated_logit_diff(TABLE9_ELO, position_bias=0.5, noise_sd=1.0, seed=5))
    perm = np.random.default_rng(6).permutation(64)
    ratings = bradley_terry(p)
    permuted = bradley_terry(p[np.ix_(perm, perm)])
    np.testing.assert_allclose(permuted, ratings[perm], atol=1e-8)


def test_bradley_terry_is_invariant_to_the_order_of_a_match_list() -> None:
    n = 16
    s = per_order_win_matrix(
        simulated_logit_diff(TABLE9_ELO[::4], position_bias=0.5, noise_sd=1.0, seed=7)
    )
    a, b = np.nonzero(~np.eye(n, dtype=bool))
    # Two noisy replays of every prompt, listed in two different orders.
    rng = np.random.default_rng(8)
    a2, b2 = np.concatenate([a, a]), np.concatenate([b, b])
    score = np.clip(np.concatenate([s[a, b], s[a, b]]) + rng.normal(0, 0.05, 2 * a.size), 0, 1)
    order = rng.permutation(a2.size)
    p1, w1 = win_matrix_from_matches(a2, b2, score, n)
    p2, w2 = win_matrix_from_matches(a2[order], b2[order], score[order], n)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_allclose(
        bradley_terry(p1, weights=w1), bradley_terry(p2, weights=w2), atol=1e-8
    )


def test_per_order_and_order_averaged_outcomes_give_the_same_fit() -> None:
    d = simulated_logit_diff(TABLE9_ELO, position_bias=1.2, noise_sd=0.7, seed=9)
    np.testing.assert_allclose(
        bradley_terry(per_order_win_matrix(d)), bradley_terry(soft_win_matrix(d)), atol=1e-8
    )


def test_a_perfect_record_gives_finite_ratings_with_the_perfect_player_on_top() -> None:
    p = expected_win_matrix(TABLE9_ELO[:-1])
    p = np.pad(p, ((0, 1), (0, 1)), constant_values=np.nan)
    p[-1, :-1] = 1.0
    p[:-1, -1] = 0.0
    ratings = bradley_terry(p)
    assert np.all(np.isfinite(ratings))
    assert np.argmax(ratings) == 63
    assert ratings.mean() == pytest.approx(1500.0, abs=1e-9)
    # Without the prior the MLE does not exist, and the fit says so instead of returning junk.
    with pytest.raises(ConvergenceError, match="l2 > 0"):
        bradley_terry(p, l2=0.0)


def test_all_ties_give_equal_ratings() -> None:
    p = np.full((5, 5), 0.5)
    np.testing.assert_allclose(bradley_terry(p), 1500.0, atol=1e-12)


def test_bradley_terry_rejects_probabilities_outside_zero_one() -> None:
    p = np.array([[np.nan, 1.2], [-0.2, np.nan]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bradley_terry(p)


def test_bradley_terry_rejects_weight_on_an_unplayed_pair() -> None:
    p = np.array([[np.nan, np.nan, 0.6], [np.nan, np.nan, 0.5], [0.4, 0.5, np.nan]])
    with pytest.raises(ValueError, match="weight 0"):
        bradley_terry(p, weights=np.ones((3, 3)))
    # With default weights the NaN pair is simply unplayed.
    assert np.all(np.isfinite(bradley_terry(p)))


# ------------------------------------------------------------------------------------------ Elo


def test_one_elo_update_equals_the_hand_computation() -> None:
    # 1500 vs 1700, a wins, K = 32:
    #   expected_a = 1 / (1 + 10**(200/400)) = 1 / (1 + 3.16227766) = 0.24025307
    #   delta      = 32 * (1 - 0.24025307)   = 32 * 0.75974693 = 24.31190165
    #   new_a = 1500 + 24.31190165 = 1524.31190165, new_b = 1700 - 24.31190165 = 1675.68809835
    assert elo_expected(1500.0, 1700.0) == pytest.approx(0.24025307, abs=1e-8)
    new_a, new_b = elo_update(1500.0, 1700.0, 1.0, k=32.0)
    assert new_a == pytest.approx(1524.31190165, abs=1e-8)
    assert new_b == pytest.approx(1675.68809835, abs=1e-8)


def test_a_soft_elo_score_at_the_expectation_changes_nothing() -> None:
    e = elo_expected(1600.0, 1450.0)
    assert elo_update(1600.0, 1450.0, e) == pytest.approx((1600.0, 1450.0), abs=1e-12)


def test_elo_update_rejects_a_score_outside_zero_one() -> None:
    with pytest.raises(ValueError, match="score_a"):
        elo_update(1500.0, 1500.0, 1.5)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(-5000.0, 5000.0),
    st.floats(-5000.0, 5000.0),
    st.floats(0.0, 1.0),
    st.floats(0.5, 64.0),
)
def test_elo_update_is_zero_sum(r_a: float, r_b: float, score: float, k: float) -> None:
    new_a, new_b = elo_update(r_a, r_b, score, k=k)
    assert new_a + new_b == pytest.approx(r_a + r_b, abs=1e-9)
    assert abs(new_a - r_a) <= k + 1e-9


def test_expected_win_matrix_matches_elo_expected() -> None:
    r = np.array([1200.0, 1500.0, 1900.0])
    e = expected_win_matrix(r)
    assert e[0, 2] == pytest.approx(elo_expected(1200.0, 1900.0), abs=1e-14)
    assert e[2, 1] == pytest.approx(elo_expected(1900.0, 1500.0), abs=1e-14)


SMALL_ELO = TABLE9_ELO[::3]  # 22 players spread over the whole Table-9 range


def test_iterative_elo_keeps_mean_1500_and_agrees_with_bradley_terry() -> None:
    d = simulated_logit_diff(SMALL_ELO, position_bias=0.8, noise_sd=0.5, seed=10)
    result = iterative_elo(per_order_win_matrix(d), seeds=range(4))
    bt = bradley_terry(soft_win_matrix(d))
    np.testing.assert_allclose(result.per_seed.mean(axis=1), 1500.0, atol=1e-8)
    assert result.mean.mean() == pytest.approx(1500.0, abs=1e-8)
    assert spearmanr(result.mean, bt).statistic > 0.95
    assert spearmanr(result.mean, SMALL_ELO).statistic > 0.95
    assert all(result.converged) and len(result.passes) == 4
    assert result.sd.shape == (SMALL_ELO.size,) and np.all(np.isfinite(result.sd))


def test_iterative_elo_reaches_the_planted_ratings_on_noise_free_outcomes() -> None:
    # Elo is zero-sum from 1500, so the target is the planted vector re-centred on 1500.
    planted = SMALL_ELO - SMALL_ELO.mean() + 1500.0
    result = iterative_elo(expected_win_matrix(SMALL_ELO), seeds=range(2), tol=0.05)
    assert all(result.converged)
    np.testing.assert_allclose(result.mean, planted, atol=5.0)


def test_iterative_elo_is_deterministic_for_fixed_seeds() -> None:
    s = per_order_win_matrix(
        simulated_logit_diff(SMALL_ELO, position_bias=0.5, noise_sd=0.5, seed=11)
    )
    first = iterative_elo(s, seeds=(3, 4), max_passes=10)
    second = iterative_elo(s, seeds=(3, 4), max_passes=10)
    np.testing.assert_array_equal(first.per_seed, second.per_seed)
    assert first.passes == second.passes


def test_iterative_elo_reports_when_it_stops_before_becoming_stable() -> None:
    s = per_order_win_matrix(
        simulated_logit_diff(SMALL_ELO, position_bias=0.5, noise_sd=0.5, seed=12)
    )
    result = iterative_elo(s, seeds=(0,), max_passes=3)
    assert result.passes == [3] and result.converged == [False]
    np.testing.assert_array_equal(result.sd, 0.0)


def test_iterative_elo_rejects_a_too_small_pass_budget() -> None:
    with pytest.raises(ValueError, match="max_passes"):
        iterative_elo(np.full((3, 3), 0.5), max_passes=1)


def test_elo_scale_is_400_over_ln_10() -> None:
    assert ELO_SCALE == pytest.approx(400.0 / math.log(10.0))


def test_elo_expected_survives_an_absurd_rating_gap() -> None:
    assert elo_expected(0.0, 1e7) == pytest.approx(0.0, abs=1e-300)
    assert elo_expected(1e7, 0.0) == 1.0


# ----------------------------------------------------------------------------------------------
# Position-aware Bradley-Terry (issue 13, item 4)


def _biased_logits(bias: float, seed: int = 0, n: int = 64, noise: float = 0.25):
    """Strengths spread over exactly 785 Elo, every ordered pair once, A favoured by `bias`."""
    from pipeline.measures.ratings import ELO_SCALE

    rng = np.random.default_rng(seed)
    true = rng.uniform(-1.0, 1.0, n)
    true = (true - true.min()) / np.ptp(true) * 785.0 / ELO_SCALE
    d = true[:, None] - true[None, :] + bias + rng.normal(0.0, noise, (n, n))
    np.fill_diagonal(d, np.nan)
    return true * ELO_SCALE, d


@pytest.mark.parametrize("bias", [0.0, 1.5, 3.0])
def test_position_bradley_terry_keeps_the_elo_scale_and_recovers_the_bias(bias: float) -> None:
    from pipeline.measures.ratings import fit_position_bradley_terry

    true_elo, d = _biased_logits(bias)
    fit = fit_position_bradley_terry(per_order_win_matrix(d))
    slope = np.polyfit(true_elo, fit.ratings, 1)[0]
    assert slope == pytest.approx(1.0, abs=0.03)
    assert fit.bias == pytest.approx(bias, abs=0.1)
    assert fit.ratings.mean() == pytest.approx(1500.0, abs=1e-9)
    # The order-averaged fit keeps the ranking but loses the scale as the bias grows.
    averaged = np.polyfit(true_elo, bradley_terry(soft_win_matrix(d)), 1)[0]
    assert averaged == pytest.approx(slope, abs=0.02) if bias == 0 else averaged < 0.8 * slope


def test_position_bradley_terry_is_exact_when_outcomes_follow_the_model() -> None:
    from pipeline.measures.ratings import fit_position_bradley_terry

    true_elo, d = _biased_logits(2.0, noise=0.0, n=12)
    fit = fit_position_bradley_terry(per_order_win_matrix(d), l2=0.0)
    np.testing.assert_allclose(fit.ratings - 1500.0, true_elo - true_elo.mean(), atol=1e-4)
    assert fit.bias == pytest.approx(2.0, abs=1e-6)


def test_position_bradley_terry_gradient_and_hessian_are_exact() -> None:
    """The fit's optimum has zero finite-difference gradient of the log-likelihood."""
    from pipeline.measures.ratings import fit_position_bradley_terry

    _, d = _biased_logits(1.0, n=8, noise=0.5)
    s = per_order_win_matrix(d)
    fit = fit_position_bradley_terry(s, l2=0.0)

    def ll(theta, bias):
        x = theta[:, None] - theta[None, :] + bias
        with np.errstate(invalid="ignore"):
            terms = s * np.log(expit(x)) + (1 - s) * np.log(expit(-x))
        return np.nansum(terms)

    eps = 1e-6
    for k in range(9):
        step = np.zeros(9)
        step[k] = eps
        up = ll(fit.theta + step[:8], fit.bias + step[8])
        down = ll(fit.theta - step[:8], fit.bias - step[8])
        assert (up - down) / (2 * eps) == pytest.approx(0.0, abs=1e-5)


def test_a_player_without_any_outcome_is_an_error_not_1500() -> None:
    from pipeline.measures.ratings import fit_position_bradley_terry

    _, d = _biased_logits(0.5, n=6)
    d[3, :] = np.nan
    d[:, 3] = np.nan
    with pytest.raises(ValueError, match=r"players \[3\] have no played match"):
        fit_position_bradley_terry(per_order_win_matrix(d))


def _damped_newton_reference(p: np.ndarray, w: np.ndarray, l2: float) -> np.ndarray:
    """The fit this module used before scipy's trust-exact: damped Newton with the exact
    Hessian, the same objective (soft NLL + l2/2 |theta|^2 + the sum(theta) gauge), stepped
    until the step is below 1e-13. Elo-scale ratings, mean 1500."""
    n = p.shape[0]
    p, w = np.where(w > 0, np.nan_to_num(p), 0.0), w.copy()
    np.fill_diagonal(w, 0.0)

    def objective(t):
        x = t[:, None] - t[None, :]
        nll = -(w * (p * -np.logaddexp(0, -x) + (1 - p) * -np.logaddexp(0, x))).sum()
        return nll + 0.5 * l2 * t @ t + 0.5 / n * t.sum() ** 2

    theta = np.zeros(n)
    for _ in range(200):
        sig = expit(theta[:, None] - theta[None, :])
        r = w * (sig - p)
        g = r.sum(axis=1) - r.sum(axis=0) + l2 * theta + theta.sum() / n
        c = w * sig * (1 - sig)
        c = c + c.T
        h = np.diag(c.sum(axis=1)) - c + l2 * np.eye(n) + 1.0 / n
        step = np.linalg.solve(h, -g)
        size = 1.0
        while objective(theta + size * step) > objective(theta) + 1e-12 * abs(objective(theta)):
            size /= 2
        theta = theta + size * step
        if np.max(np.abs(step)) < 1e-13:
            break
    theta -= theta.mean()
    return 1500.0 + 400.0 / math.log(10) * theta


@pytest.mark.parametrize("l2", [0.0, DEFAULT_L2, 0.1])
@pytest.mark.parametrize("seed", [11, 12])
def test_the_trust_region_fit_agrees_with_damped_newton_to_1e9_elo(seed, l2) -> None:
    d = simulated_logit_diff(TABLE9_ELO, position_bias=0.6, noise_sd=1.0, seed=seed)
    p = soft_win_matrix(d)
    w = np.random.default_rng(seed).integers(1, 5, size=p.shape).astype(float)
    np.testing.assert_allclose(bradley_terry(p, l2=l2, weights=w),
                               _damped_newton_reference(p, w, l2), rtol=0, atol=1e-9)
    ones = np.ones_like(w)
    np.testing.assert_allclose(bradley_terry(p, l2=l2),
                               _damped_newton_reference(p, ones, l2), rtol=0, atol=1e-9)


def test_a_disconnected_comparison_graph_has_no_unpenalised_mle() -> None:
    p = np.full((4, 4), 0.5)
    p[:2, 2:] = np.nan
    p[2:, :2] = np.nan
    with pytest.raises(ConvergenceError, match="2 groups.*l2 > 0"):
        bradley_terry(p, l2=0.0)
    assert np.all(np.isfinite(bradley_terry(p)))  # the prior ties the two groups to 1500
