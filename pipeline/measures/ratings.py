"""Ratings from pairwise soft outcomes: Bradley-Terry (primary) and iterative Elo (secondary).

The activity-preference experiment (paper section 3.2, CRITERIA V7-V11) asks every ordered pair
"Would you prefer to (A) {i} or (B) {j}?" and reads logit(A) - logit(B). This module turns that
(n, n) matrix of logit differences into ratings on the Elo scale:

- `soft_win_matrix`: order-averaged soft win probabilities P, with P + P.T == 1 off the diagonal.
- `bradley_terry` / `fit_bradley_terry`: regularised Bradley-Terry maximum likelihood with soft
  (fractional) outcomes, solved by trust-region Newton with the exact Hessian, reported as
  1500 + (400 / ln 10) * (theta - mean(theta)), so a 400-point gap means 10:1 odds.
- `fit_position_bradley_terry`: the primary rating. Bradley-Terry on the per-order outcomes with
  an explicit first-option (position) term, Pr(A wins) = sigmoid(theta_A - theta_B + bias), so a
  model that favours "A" keeps its strength scale. Order averaging cancels the bias in the
  ranking but not in the scale: with strengths spread over 785 Elo, an A-bias of 0 / 1.5 / 3
  logits shrinks its fitted spread to slopes 0.98 / 0.67 / 0.27 (issue 13).
- `elo_update`, `iterative_elo`: the replication blog's sequential Elo with K = 32, repeated
  shuffled passes until the pass-averaged ratings are stable, mean and sd over seeds.

Conventions: an outcome matrix S has S[i, j] = the score of i in the match where i is option A
and j is option B (in [0, 1]); the diagonal is ignored; NaN off the diagonal marks an unplayed
match. Pure numpy/scipy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

__all__ = [
    "ELO_SCALE",
    "DEFAULT_L2",
    "BTFit",
    "ConvergenceError",
    "EloResult",
    "bradley_terry",
    "bt_log_likelihood",
    "elo_expected",
    "elo_update",
    "expected_win_matrix",
    "fit_bradley_terry",
    "fit_position_bradley_terry",
    "PositionBTFit",
    "iterative_elo",
    "iterative_elo_matches",
    "per_order_win_matrix",
    "soft_win_matrix",
    "win_matrix_from_matches",
]

ELO_SCALE: float = 400.0 / math.log(10.0)
"""Elo points per natural-log-odds unit: a 400-point gap is odds of exactly 10:1."""

DEFAULT_L2: float = 1e-4
"""Default Gaussian-prior precision on theta (log-odds units), i.e. prior sd 100 = 17,400 Elo.

Why this value: the prior shrinks a player by about l2 * |theta| / (its Fisher information),
so it matters only where the data are nearly silent. On Table-9-like data (64 players spread
521..2885 Elo, every ordered pair played once, realistic noise) it moves ratings by at most
0.14-0.20 Elo and by a median 0.03-0.05 Elo relative to the unregularised fit (l2 = 1e-3 would
already move the extremes by 1.4 Elo); the tests pin the maximum below 1 Elo. Yet it makes the
objective strictly convex, so a perfect record (P[i, j] = 1 for all j), whose unregularised MLE
is at infinity, gets a finite rating on top: about 1,350-1,450 Elo above the runner-up for
n = 8..64 in that setting, a number set by the prior rather than the data, as any finite value
would be.
"""


_ELO_MIN_PASSES = 4
"""Never call iterative Elo stable before this many passes (the first ones are all transient)."""


class ConvergenceError(RuntimeError):
    """An iterative fit stopped before meeting its tolerance."""


# ----------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------


def _square_matrix(name: str, m: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(m, dtype=float)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(
            f"{name} has shape {arr.shape}; expected a square (n, n) matrix with "
            f"{name}[i, j] for activity i as option A and j as option B."
        )
    if arr.shape[0] < 2:
        raise ValueError(
            f"{name} is {arr.shape[0]}x{arr.shape[0]}; need at least 2 players to rate. "
            "Pass the full (n, n) matrix over all activities."
        )
    return arr


def _off_diagonal(n: int) -> np.ndarray:
    return ~np.eye(n, dtype=bool)


def _outcome_matrix(name: str, m: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Square outcome matrix with off-diagonal entries in [0, 1] or NaN (unplayed)."""
    arr = _square_matrix(name, m)
    off = arr[_off_diagonal(arr.shape[0])]
    finite = off[~np.isnan(off)]
    if np.any(np.isinf(finite)) or np.any((finite < 0.0) | (finite > 1.0)):
        bad = finite[np.isinf(finite) | (finite < 0.0) | (finite > 1.0)][0]
        raise ValueError(
            f"{name} has an off-diagonal entry {bad!r}; expected win probabilities in [0, 1] "
            "(NaN for an unplayed match). Convert logit differences with soft_win_matrix or "
            "per_order_win_matrix first."
        )
    return arr


def _positive_finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name}={value!r}; expected a finite number > 0.")
    return v


# ----------------------------------------------------------------------------------------------
# Soft outcomes
# ----------------------------------------------------------------------------------------------


def per_order_win_matrix(logit_diff: np.ndarray) -> np.ndarray:
    """Per-order soft outcomes S[i, j] = sigmoid(logit_diff[i, j]), diagonal NaN.

    logit_diff: (n, n), logit(A) - logit(B) with i as A and j as B. Returns (n, n). This keeps
    each prompt as its own match (position bias included), which is what `iterative_elo` plays.
    """
    d = _square_matrix("logit_diff", logit_diff)
    off = _off_diagonal(d.shape[0])
    if np.any(np.isinf(d[off])):
        raise ValueError(
            "logit_diff has an infinite off-diagonal entry; expected finite logit differences "
            "(NaN only for an unplayed prompt). Check the A/B logit extraction."
        )
    s = expit(d)
    np.fill_diagonal(s, np.nan)
    return s


def soft_win_matrix(logit_diff: np.ndarray) -> np.ndarray:
    """Order-averaged soft win probabilities P[i, j] = Pr(i beats j).

    logit_diff: (n, n); logit_diff[i, j] = logit(A) - logit(B) for the prompt with i as A and
    j as B; the diagonal is ignored. Returns P: (n, n) with
    P[i, j] = (sigmoid(d[i, j]) + 1 - sigmoid(d[j, i])) / 2, so P + P.T == 1 off the diagonal
    (position bias cancels); diagonal NaN. A NaN prompt makes the pair use the other order only;
    if both orders are NaN the pair stays NaN (unplayed).
    """
    s = per_order_win_matrix(logit_diff)
    as_a = s
    as_b = 1.0 - s.T
    p = np.where(np.isnan(as_a), as_b, np.where(np.isnan(as_b), as_a, 0.5 * (as_a + as_b)))
    np.fill_diagonal(p, np.nan)
    return p


def expected_win_matrix(ratings: np.ndarray, *, scale: float = ELO_SCALE) -> np.ndarray:
    """Bradley-Terry win probabilities implied by ratings: E[i, j] = 1 / (1 + 10**((r_j - r_i)/400)).

    ratings: (n,) on the Elo scale (with the default scale). Returns (n, n), diagonal NaN.
    """
    r = np.asarray(ratings, dtype=float)
    if r.ndim != 1 or not np.all(np.isfinite(r)):
        raise ValueError(
            f"ratings has shape {r.shape} or non-finite values; expected a finite 1-D array."
        )
    scale = _positive_finite("scale", scale)
    e = expit((r[:, None] - r[None, :]) / scale)
    np.fill_diagonal(e, np.nan)
    return e


def win_matrix_from_matches(
    a: Sequence[int] | np.ndarray,
    b: Sequence[int] | np.ndarray,
    score_a: Sequence[float] | np.ndarray,
    n_players: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate a match list into (P, weights) for `fit_bradley_terry`.

    a, b, score_a: (m,) player indices (a as option A) and a's soft score in [0, 1].
    Returns P (n, n) with P[i, j] = mean score of i over its matches as A against j (NaN if none)
    and weights (n, n) = the number of such matches. Order of the list does not matter.
    """
    a_arr, b_arr, s_arr = _match_arrays(a, b, score_a, n_players)
    counts = np.zeros((n_players, n_players))
    sums = np.zeros((n_players, n_players))
    np.add.at(counts, (a_arr, b_arr), 1.0)
    np.add.at(sums, (a_arr, b_arr), s_arr)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)
    np.fill_diagonal(p, np.nan)
    return p, counts


def _match_arrays(
    a: Sequence[int] | np.ndarray,
    b: Sequence[int] | np.ndarray,
    score_a: Sequence[float] | np.ndarray,
    n_players: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if int(n_players) != n_players or n_players < 2:
        raise ValueError(f"n_players={n_players!r}; expected an integer >= 2.")
    n_players = int(n_players)
    a_arr = np.asarray(a)
    b_arr = np.asarray(b)
    s_arr = np.asarray(score_a, dtype=float)
    if not (a_arr.ndim == b_arr.ndim == s_arr.ndim == 1) or not (
        a_arr.shape == b_arr.shape == s_arr.shape
    ):
        raise ValueError(
            f"a, b, score_a have shapes {a_arr.shape}, {b_arr.shape}, {s_arr.shape}; expected "
            "three 1-D arrays of the same length (one entry per match)."
        )
    if a_arr.size == 0:
        raise ValueError("the match list is empty; expected at least one match.")
    if not (np.issubdtype(a_arr.dtype, np.integer) and np.issubdtype(b_arr.dtype, np.integer)):
        raise ValueError(
            f"a and b have dtypes {a_arr.dtype}, {b_arr.dtype}; expected integer player indices."
        )
    for name, idx in (("a", a_arr), ("b", b_arr)):
        if idx.min() < 0 or idx.max() >= n_players:
            raise ValueError(
                f"{name} has index range [{idx.min()}, {idx.max()}]; expected indices in "
                f"[0, {n_players - 1}] for n_players={n_players}."
            )
    if np.any(a_arr == b_arr):
        raise ValueError(
            f"match {int(np.flatnonzero(a_arr == b_arr)[0])} pits a player against itself; "
            "drop self-matches (the diagonal) before rating."
        )
    if not np.all(np.isfinite(s_arr)) or np.any((s_arr < 0.0) | (s_arr > 1.0)):
        raise ValueError(
            "score_a has a value outside [0, 1] or non-finite; expected soft scores in [0, 1]."
        )
    return a_arr.astype(np.intp), b_arr.astype(np.intp), s_arr


# ----------------------------------------------------------------------------------------------
# Bradley-Terry
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BTFit:
    """Result of `fit_bradley_terry`.

    ratings: (n,) Elo-scale ratings, mean exactly `mean` up to rounding.
    theta: (n,) centred strengths in natural log-odds units (ratings = mean + scale * theta).
    log_likelihood: weighted soft log-likelihood at theta (without the prior term).
    objective: penalised negative log-likelihood that was minimised.
    n_iter: trust-region iterations plus the final Newton steps. grad_norm: max-abs gradient
    of the objective at the end.
    """

    ratings: np.ndarray
    theta: np.ndarray
    log_likelihood: float
    objective: float
    n_iter: int
    grad_norm: float
    l2: float


def _bt_weights(p: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(P with unplayed entries zeroed, weights) both (n, n); weight 0 on the diagonal."""
    n = p.shape[0]
    off = _off_diagonal(n)
    if weights is None:
        w = (off & ~np.isnan(p)).astype(float)
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != p.shape:
            raise ValueError(f"weights has shape {w.shape}; expected the shape of P, {p.shape}.")
        if not np.all(np.isfinite(w)) or np.any(w < 0.0):
            raise ValueError("weights has negative or non-finite entries; expected counts >= 0.")
        w = np.where(off, w, 0.0)
        if np.any((w > 0.0) & np.isnan(p)):
            raise ValueError(
                "P is NaN where weights > 0; give weight 0 to unplayed pairs or fill P there."
            )
    if not np.any(w > 0.0):
        raise ValueError("no played pairs (all weights are 0 or P is all NaN); nothing to fit.")
    return np.where(w > 0.0, p, 0.0), w


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _bt_nll(theta: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    x = theta[:, None] - theta[None, :]
    ll = w * (p * _log_sigmoid(x) + (1.0 - p) * _log_sigmoid(-x))
    return -float(ll.sum())


def bt_log_likelihood(theta: np.ndarray, P: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted soft Bradley-Terry log-likelihood.

    theta: (n,) strengths in log-odds units; P: (n, n) fractional wins of i over j per ordered
    pair; weights: (n, n) match counts (default 1 on every played off-diagonal pair).
    Returns sum_ij w_ij [P_ij log sigma(t_i - t_j) + (1 - P_ij) log sigma(t_j - t_i)].
    """
    p_raw = _outcome_matrix("P", P)
    t = np.asarray(theta, dtype=float)
    if t.shape != (p_raw.shape[0],) or not np.all(np.isfinite(t)):
        raise ValueError(
            f"theta has shape {t.shape}; expected finite values of shape ({p_raw.shape[0]},)."
        )
    p, w = _bt_weights(p_raw, weights)
    return -_bt_nll(t, p, w)


def _check_mle_exists(p: np.ndarray, w: np.ndarray) -> None:
    """The unpenalised MLE exists iff every player can be reached from every other along
    "sometimes beats" edges (Zermelo; Ford 1957): otherwise some group's strength runs off to
    infinity. Raise ConvergenceError naming the fix when it does not."""
    from scipy.sparse.csgraph import connected_components

    beats = ((w * p) > 0.0) | ((w.T * (1.0 - p.T)) > 0.0)  # i took some of a match from j
    n_parts, _ = connected_components(beats, directed=True, connection="strong")
    if n_parts > 1:
        raise ConvergenceError(
            f"the Bradley-Terry MLE does not exist with l2=0: the outcomes split the players into "
            f"{n_parts} groups one of which never loses to another (a perfect record, or a "
            f"disconnected comparison graph). Use l2 > 0 (default {DEFAULT_L2})."
        )


def fit_bradley_terry(
    P: np.ndarray,
    *,
    l2: float = DEFAULT_L2,
    scale: float = ELO_SCALE,
    mean: float = 1500.0,
    weights: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> BTFit:
    """Regularised soft Bradley-Terry MLE by scipy's trust-region Newton (trust-exact) with
    the exact gradient and Hessian.

    P: (n, n); P[i, j] is i's fractional win in the match (i vs j), in [0, 1]; NaN = unplayed;
    diagonal ignored. Both an order-averaged matrix (`soft_win_matrix`) and a per-order one
    (`per_order_win_matrix`) are valid and give the same fit, since every ordered pair enters
    through its own term. weights: (n, n) match counts (default 1 per played ordered pair).
    Minimises -loglik(theta) + l2/2 * |theta|^2 (a Gaussian prior, sd 1/sqrt(l2) log-odds).
    l2 = 0 is the plain MLE; it raises ConvergenceError when that does not exist (a perfect
    record or a disconnected comparison graph), checked before fitting. Converged when the
    gradient's norm is below tol. Returns a BTFit with
    ratings = mean + scale * (theta - theta.mean()).
    """
    p_raw = _outcome_matrix("P", P)
    l2 = float(l2)
    if not math.isfinite(l2) or l2 < 0.0:
        raise ValueError(f"l2={l2!r}; expected a finite number >= 0 (default {DEFAULT_L2}).")
    scale = _positive_finite("scale", scale)
    if not math.isfinite(float(mean)):
        raise ValueError(f"mean={mean!r}; expected a finite rating such as 1500.0.")
    tol = _positive_finite("tol", tol)
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter={max_iter!r}; expected an integer >= 1.")
    p, w = _bt_weights(p_raw, weights)
    n = p.shape[0]

    # The likelihood is shift-invariant; (sum theta)^2 / (2n) pins the gauge without moving the
    # optimum (there sum theta = 0 anyway), so the Hessian is positive definite even at l2 = 0
    # whenever the comparison graph is connected.
    gauge = 1.0 / n

    def objective(t: np.ndarray) -> float:
        return _bt_nll(t, p, w) + 0.5 * l2 * float(t @ t) + 0.5 * gauge * float(t.sum()) ** 2

    def grad_hess(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = t[:, None] - t[None, :]
        sig = expit(x)
        r = w * (sig - p)  # d nll / d x_ij
        g = r.sum(axis=1) - r.sum(axis=0) + l2 * t + gauge * t.sum()
        c = w * sig * (1.0 - sig)
        c = c + c.T
        h = np.diag(c.sum(axis=1)) - c + l2 * np.eye(n) + gauge
        return g, h

    if l2 == 0.0:
        _check_mle_exists(p, w)
    result = minimize(objective, np.zeros(n), jac=lambda t: grad_hess(t)[0],
                      hess=lambda t: grad_hess(t)[1], method="trust-exact",
                      options={"gtol": tol, "maxiter": max_iter})
    theta, n_iter = result.x, int(result.nit)
    # trust-exact stops where the objective's rounding (about 1e-13 of its value) hides any
    # further decrease, which can leave the gradient near 1e-7 (1e-4 Elo). Newton steps with the
    # same exact Hessian need no decrease test: from there they converge quadratically, to the
    # last bits in one or two steps.
    for _ in range(4):
        g, h = grad_hess(theta)
        step = np.linalg.solve(h, -g)
        theta = theta + step
        n_iter += 1
        if float(np.max(np.abs(step))) < 1e-13:
            break
    f = objective(theta)
    g, _ = grad_hess(theta)
    # trust-exact may report a precision-loss stop at a point that is already optimal.
    if float(np.max(np.abs(g))) > max(tol, 1e-8) * max(1.0, float(w.sum())):
        raise ConvergenceError(
            f"Bradley-Terry stopped after {n_iter} iterations with gradient "
            f"{float(np.max(np.abs(g))):.3g} ({result.message}); with l2={l2} the outcomes may "
            f"be degenerate. Use l2 > 0 (default {DEFAULT_L2}) or raise max_iter."
        )
    theta = theta - theta.mean()
    ratings = float(mean) + scale * theta
    # Centre once more in rating units so the mean is `mean` to the last bit that float allows.
    ratings = ratings - (ratings.mean() - float(mean))
    return BTFit(
        ratings=ratings,
        theta=theta,
        log_likelihood=-_bt_nll(theta, p, w),
        objective=f,
        n_iter=n_iter,
        grad_norm=float(np.max(np.abs(g))),
        l2=l2,
    )


def bradley_terry(
    P: np.ndarray,
    *,
    l2: float = DEFAULT_L2,
    scale: float = ELO_SCALE,
    mean: float = 1500.0,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Elo-scale Bradley-Terry ratings (n,) with mean 1500; see `fit_bradley_terry`."""
    return fit_bradley_terry(P, l2=l2, scale=scale, mean=mean, weights=weights).ratings


@dataclass(frozen=True)
class PositionBTFit:
    """Result of `fit_position_bradley_terry`.

    ratings: (n,) Elo-scale ratings with mean `mean`; theta: (n,) centred strengths (log-odds);
    bias: the first-option (A) advantage in log-odds (0 = no position preference; 3 = a
    pair of equal strength picks A with probability 0.95); bias_elo: the same on the Elo scale.
    log_likelihood: weighted soft log-likelihood (without the prior); n_iter, grad_norm: from
    the trust-region solver.
    """

    ratings: np.ndarray
    theta: np.ndarray
    bias: float
    log_likelihood: float
    n_iter: int
    grad_norm: float
    l2: float
    scale: float = ELO_SCALE

    @property
    def bias_elo(self) -> float:
        return self.scale * self.bias


def _check_every_player_played(w: np.ndarray) -> None:
    played = (w.sum(axis=0) + w.sum(axis=1)) > 0
    if not np.all(played):
        absent = np.flatnonzero(~played).tolist()
        raise ValueError(
            f"players {absent} have no played match (every outcome involving them is NaN); "
            "expected at least one finite outcome per player: a rating for them would be the "
            "prior's 1500, not a measurement. Find why their logits are missing."
        )


def fit_position_bradley_terry(
    S: np.ndarray,
    *,
    l2: float = DEFAULT_L2,
    scale: float = ELO_SCALE,
    mean: float = 1500.0,
    tol: float = 1e-9,
    max_iter: int = 500,
) -> PositionBTFit:
    """Soft Bradley-Terry with a first-option term, by trust-region Newton (exact Hessian).

    S: (n, n) per-order outcomes, S[i, j] = i's score when i is option A and j option B
    (`per_order_win_matrix(logit_diff)`); NaN = unplayed; diagonal ignored. Model:
    Pr(A wins) = sigmoid(theta_A - theta_B + bias). Minimises the negative soft log-likelihood
    + l2/2 (|theta|^2 + bias^2) (the same weak prior as `fit_bradley_terry`; it keeps the fit
    finite when a model picks A with probability 1.0 in float). Both orders of a pair are
    needed to tell strength from position, as the 4032-prompt design gives. Raises ValueError
    for a player without a played match and ConvergenceError when the solver stops early.
    """
    s_raw = _outcome_matrix("S", S)
    l2 = float(l2)
    if not math.isfinite(l2) or l2 < 0.0:
        raise ValueError(f"l2={l2!r}; expected a finite number >= 0 (default {DEFAULT_L2}).")
    scale = _positive_finite("scale", scale)
    s, w = _bt_weights(s_raw, None)
    _check_every_player_played(w)
    n = s.shape[0]
    gauge = 1.0 / n  # pins sum(theta) = 0 without moving the optimum, as in fit_bradley_terry

    def split(z: np.ndarray) -> tuple[np.ndarray, float]:
        return z[:n], float(z[n])

    def nll(theta: np.ndarray, bias: float) -> float:
        x = theta[:, None] - theta[None, :] + bias
        return -float((w * (s * _log_sigmoid(x) + (1.0 - s) * _log_sigmoid(-x))).sum())

    def objective(z: np.ndarray) -> float:
        theta, bias = split(z)
        return nll(theta, bias) + 0.5 * l2 * float(z @ z) + 0.5 * gauge * float(theta.sum()) ** 2

    def gradient(z: np.ndarray) -> np.ndarray:
        theta, bias = split(z)
        sig = expit(theta[:, None] - theta[None, :] + bias)
        r = w * (sig - s)  # d nll / d x_ij
        g = np.empty(n + 1)
        g[:n] = r.sum(axis=1) - r.sum(axis=0) + gauge * theta.sum()
        g[n] = r.sum()
        return g + l2 * z

    def hessian(z: np.ndarray) -> np.ndarray:
        theta, bias = split(z)
        sig = expit(theta[:, None] - theta[None, :] + bias)
        c = w * sig * (1.0 - sig)
        sym = c + c.T
        h = np.empty((n + 1, n + 1))
        h[:n, :n] = np.diag(sym.sum(axis=1)) - sym + gauge
        h[:n, n] = h[n, :n] = c.sum(axis=1) - c.sum(axis=0)
        h[n, n] = c.sum()
        return h + l2 * np.eye(n + 1)

    result = minimize(objective, np.zeros(n + 1), jac=gradient, hess=hessian,
                      method="trust-exact", options={"gtol": tol, "maxiter": max_iter})
    grad_norm = float(np.max(np.abs(gradient(result.x))))
    # trust-exact may report a precision-loss stop at a point that is already optimal.
    if grad_norm > max(tol, 1e-6) * max(1.0, float(w.sum())):
        raise ConvergenceError(
            f"position Bradley-Terry stopped after {result.nit} iterations with gradient "
            f"{grad_norm:.3g} ({result.message}); the outcomes may be degenerate. Use l2 > 0 "
            f"(default {DEFAULT_L2})."
        )
    theta, bias = split(result.x)
    theta = theta - theta.mean()
    ratings = float(mean) + scale * theta
    ratings = ratings - (ratings.mean() - float(mean))
    return PositionBTFit(ratings=ratings, theta=theta, bias=bias,
                         log_likelihood=-nll(theta, bias), n_iter=int(result.nit),
                         grad_norm=grad_norm, l2=l2, scale=scale)


# ----------------------------------------------------------------------------------------------
# Elo
# ----------------------------------------------------------------------------------------------


def elo_expected(r_a: float, r_b: float) -> float:
    """Expected score of a against b: 1 / (1 + 10**((r_b - r_a) / 400))."""
    # Capping the exponent avoids OverflowError for absurd gaps; 10**-300 is already 0 here.
    return 1.0 / (1.0 + 10.0 ** min((float(r_b) - float(r_a)) / 400.0, 300.0))


def elo_update(r_a: float, r_b: float, score_a: float, k: float = 32.0) -> tuple[float, float]:
    """One standard Elo update; returns (new_a, new_b). Zero-sum: new_a + new_b = r_a + r_b.

    score_a in [0, 1] (soft scores allowed); delta = k * (score_a - expected_a).
    """
    if not (math.isfinite(float(r_a)) and math.isfinite(float(r_b))):
        raise ValueError(f"ratings ({r_a!r}, {r_b!r}) must be finite numbers.")
    if not (0.0 <= float(score_a) <= 1.0):
        raise ValueError(f"score_a={score_a!r}; expected a score in [0, 1] (1 = a wins).")
    k = _positive_finite("k", k)
    delta = k * (float(score_a) - elo_expected(r_a, r_b))
    return float(r_a) + delta, float(r_b) - delta


@dataclass(frozen=True)
class EloResult:
    """Iterative Elo over several seeds.

    mean, sd: (n,) over seeds (sd with ddof=1; zeros for a single seed).
    per_seed: (n_seeds, n) each seed's final pass-averaged ratings.
    passes: passes run per seed; converged: whether each seed met tol before max_passes.
    """

    mean: np.ndarray
    sd: np.ndarray
    passes: list[int]
    converged: list[bool] = field(default_factory=list)
    per_seed: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


def _elo_one_seed(
    a: list[int],
    b: list[int],
    s: list[float],
    n: int,
    k: float,
    start: float,
    rng: np.random.Generator,
    max_passes: int,
    tol: float,
) -> tuple[np.ndarray, int, bool]:
    """Returns (running estimate (n,), passes run, converged); see `iterative_elo`."""
    m = len(a)
    r = [start] * n
    history: list[np.ndarray] = []  # pass-averaged ratings, one (n,) array per pass
    estimate = np.full(n, start)
    for pass_no in range(1, max_passes + 1):
        acc = [0.0] * n
        since = [1] * n  # state index at which each player's current rating began
        for t, idx in enumerate(rng.permutation(m).tolist(), start=1):
            i, j = a[idx], b[idx]
            ri, rj = r[i], r[j]
            delta = k * (s[idx] - 1.0 / (1.0 + 10.0 ** min((rj - ri) / 400.0, 300.0)))
            acc[i] += ri * (t - since[i])
            acc[j] += rj * (t - since[j])
            since[i] = since[j] = t
            r[i] = ri + delta
            r[j] = rj - delta
        for p in range(n):
            acc[p] += r[p] * (m + 1 - since[p])
        history.append(np.asarray(acc) / m)
        previous = estimate
        estimate = np.mean(history[pass_no // 2 :], axis=0)
        if pass_no >= _ELO_MIN_PASSES and float(np.max(np.abs(estimate - previous))) < tol:
            return estimate, pass_no, True
    return estimate, max_passes, False


def iterative_elo_matches(
    a: Sequence[int] | np.ndarray,
    b: Sequence[int] | np.ndarray,
    score_a: Sequence[float] | np.ndarray,
    n_players: int,
    *,
    k: float = 32.0,
    start: float = 1500.0,
    seeds: Iterable[int] = tuple(range(10)),
    max_passes: int = 500,
    tol: float = 0.25,
) -> EloResult:
    """Iterative Elo on an explicit match list; see `iterative_elo` for the procedure.

    a, b, score_a: (m,) player indices and a's soft score in [0, 1]. Returns EloResult.
    """
    a_arr, b_arr, s_arr = _match_arrays(a, b, score_a, n_players)
    k = _positive_finite("k", k)
    tol = _positive_finite("tol", tol)
    if not math.isfinite(float(start)):
        raise ValueError(f"start={start!r}; expected a finite starting rating such as 1500.0.")
    if int(max_passes) != max_passes or max_passes < 2:
        raise ValueError(f"max_passes={max_passes!r}; expected an integer >= 2.")
    seed_list = [int(x) for x in seeds]
    if not seed_list:
        raise ValueError("seeds is empty; expected at least one integer seed, e.g. range(10).")
    a_l, b_l, s_l = a_arr.tolist(), b_arr.tolist(), s_arr.tolist()
    per_seed = np.empty((len(seed_list), int(n_players)))
    passes: list[int] = []
    converged: list[bool] = []
    for row, seed in enumerate(seed_list):
        rng = np.random.default_rng(seed)
        avg, n_pass, ok = _elo_one_seed(
            a_l, b_l, s_l, int(n_players), k, float(start), rng, int(max_passes), tol
        )
        per_seed[row] = avg
        passes.append(n_pass)
        converged.append(ok)
    sd = per_seed.std(axis=0, ddof=1) if len(seed_list) > 1 else np.zeros(int(n_players))
    return EloResult(
        mean=per_seed.mean(axis=0), sd=sd, passes=passes, converged=converged, per_seed=per_seed
    )


def iterative_elo(
    outcomes: np.ndarray,
    *,
    k: float = 32.0,
    start: float = 1500.0,
    seeds: Iterable[int] = tuple(range(10)),
    max_passes: int = 500,
    tol: float = 0.25,
) -> EloResult:
    """The replication blog's iterative Elo with soft scores, averaged over seeds.

    outcomes: (n, n), outcomes[i, j] = i's soft score in the match with i as A and j as B
    (in [0, 1]; diagonal ignored; NaN = unplayed). Pass the per-order matrix
    `per_order_win_matrix(logit_diff)`: each of the n(n-1) prompts is one match, as in the
    blog. (The order-averaged `soft_win_matrix` also works and removes position-bias jitter.)

    Per seed: every player starts at `start`; each pass plays all matches once in a fresh
    random order (numpy default_rng(seed)), applying `elo_update` sequentially with factor k.

    Stability. A fixed-K Elo never settles on noisy data: each match moves ratings by
    k * residual, so snapshots jitter (10-30 Elo between passes on Table-9-like data with
    realistic noise) however long it runs. So the seed's estimate is a double average:
    (1) the pass-averaged ratings of a pass are the mean of each player's rating over the
    n(n-1) post-update states of that pass (independent of which matches came last);
    (2) the estimate after pass p is the mean of the pass-averaged ratings of passes
    p//2 + 1 .. p (the first half is discarded as burn-in). The seed is stable when the
    max-abs change of that estimate from pass p-1 to p is below `tol` Elo points (and
    p >= 4); after `max_passes` it stops with converged = False. Its expected per-pass update
    is the Bradley-Terry score equation, so a stable estimate sits close to the BT fit
    (within a few Elo with the defaults on Table-9-like data).

    Updates are zero-sum, so every state, and hence every estimate, has mean `start`.
    Cost: about 7 ms per pass at n = 64 (pure Python); typically 40-150 passes per seed.
    """
    s = _outcome_matrix("outcomes", outcomes)
    n = s.shape[0]
    played = _off_diagonal(n) & ~np.isnan(s)
    a_idx, b_idx = np.nonzero(played)
    if a_idx.size == 0:
        raise ValueError("outcomes has no played (non-NaN off-diagonal) matches; nothing to rate.")
    return iterative_elo_matches(
        a_idx,
        b_idx,
        s[a_idx, b_idx],
        n,
        k=k,
        start=start,
        seeds=seeds,
        max_passes=max_passes,
        tol=tol,
    )
