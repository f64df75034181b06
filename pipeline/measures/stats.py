"""Statistics used by the scorecard rows: bootstrap intervals, binomial rates, correlations.

Pure numpy/scipy. Every scorecard row carries a 95% interval from a bootstrap over its natural
unit (CRITERIA.md); the blackmail rows (B1/B2) compare two rates with Fisher's exact test and
Newcombe's hybrid score interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import fisher_exact, norm, rankdata

__all__ = [
    "BootstrapResult",
    "bootstrap",
    "bootstrap_ci",
    "one_sided_rate_test",
    "pearson_r",
    "rate_difference_ci",
    "spearman_rho",
    "wilson_interval",
]


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not (0.0 < a < 1.0):
        raise ValueError(f"alpha={alpha!r}; expected a number in (0, 1), e.g. 0.05 for 95%.")
    return a


# ----------------------------------------------------------------------------------------------
# Bootstrap
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap interval.

    low, high: the alpha/2 and 1 - alpha/2 percentiles of the finite replicates (NaN, NaN when
    more than half of the replicates were NaN). n_boot: replicates drawn. n_nan: replicates
    whose statistic was NaN or infinite (dropped).
    """

    low: float
    high: float
    n_boot: int
    n_nan: int

    @property
    def interval(self) -> tuple[float, float]:
        return (self.low, self.high)


def bootstrap(
    statistic: Callable[[Any], float],
    units: np.ndarray | Sequence[Any],
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile bootstrap over the natural unit.

    units: an array (resampled along axis 0, so shape (n_units, ...)) or a sequence of
    arbitrary objects (resampled into a list). Each replicate draws n_units indices with
    replacement from numpy default_rng(seed) and calls statistic on the resampled units.
    Non-finite replicates (degenerate resamples, e.g. a constant column for a correlation)
    are dropped and counted in n_nan; if more than half are non-finite the interval is
    (nan, nan). Deterministic for a fixed seed.
    """
    if not callable(statistic):
        raise ValueError(f"statistic={statistic!r}; expected a callable units -> float.")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r}; expected an integer >= 1 (default 2000).")
    n_boot = int(n_boot)
    alpha = _check_alpha(alpha)
    is_array = isinstance(units, np.ndarray)
    if is_array and units.ndim == 0:
        raise ValueError("units is a 0-d array; expected an array whose first axis is the unit.")
    n_units = len(units)
    if n_units < 1:
        raise ValueError("units is empty; expected at least one unit to resample.")
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n_units, size=n_units)
        sample = units[idx] if is_array else [units[i] for i in idx.tolist()]
        reps[b] = float(statistic(sample))
    finite = reps[np.isfinite(reps)]
    n_nan = n_boot - finite.size
    if 2 * n_nan > n_boot or finite.size == 0:
        return BootstrapResult(low=math.nan, high=math.nan, n_boot=n_boot, n_nan=n_nan)
    low, high = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return BootstrapResult(low=float(low), high=float(high), n_boot=n_boot, n_nan=n_nan)


def bootstrap_ci(
    statistic: Callable[[Any], float],
    units: np.ndarray | Sequence[Any],
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """(low, high) of the percentile bootstrap; see `bootstrap` for details and NaN handling."""
    return bootstrap(statistic, units, n_boot=n_boot, alpha=alpha, seed=seed).interval


# ----------------------------------------------------------------------------------------------
# Binomial rates
# ----------------------------------------------------------------------------------------------


def _check_count(name_k: str, k: int, name_n: str, n: int) -> tuple[int, int]:
    if int(k) != k or int(n) != n:
        raise ValueError(f"{name_k}={k!r}, {name_n}={n!r}; expected integer counts.")
    k, n = int(k), int(n)
    if n < 1:
        raise ValueError(f"{name_n}={n}; expected at least 1 trial.")
    if not (0 <= k <= n):
        raise ValueError(f"{name_k}={k} with {name_n}={n}; expected 0 <= {name_k} <= {name_n}.")
    return k, n


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (no continuity correction)."""
    k, n = _check_count("successes", successes, "n", n)
    alpha = _check_alpha(alpha)
    z = float(norm.ppf(1.0 - alpha / 2.0))
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    # The formula is exact at the boundaries, but rounding can leave e.g. 1e-17 for k = 0.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def one_sided_rate_test(k1: int, n1: int, k0: int, n0: int) -> float:
    """p-value of Fisher's exact test that rate1 = k1/n1 exceeds rate0 = k0/n0 (one-sided).

    Table [[k1, n1 - k1], [k0, n0 - k0]] with alternative='greater' (odds ratio > 1).
    """
    k1, n1 = _check_count("k1", k1, "n1", n1)
    k0, n0 = _check_count("k0", k0, "n0", n0)
    result = fisher_exact([[k1, n1 - k1], [k0, n0 - k0]], alternative="greater")
    return float(result.pvalue)


def rate_difference_ci(
    k1: int, n1: int, k0: int, n0: int, alpha: float = 0.05
) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for rate1 - rate0.

    With Wilson intervals (l1, u1), (l0, u0) and d = p1 - p0:
    (d - sqrt((p1 - l1)^2 + (u0 - p0)^2), d + sqrt((u1 - p1)^2 + (p0 - l0)^2)).
    """
    k1, n1 = _check_count("k1", k1, "n1", n1)
    k0, n0 = _check_count("k0", k0, "n0", n0)
    alpha = _check_alpha(alpha)
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson_interval(k1, n1, alpha)
    l0, u0 = wilson_interval(k0, n0, alpha)
    d = p1 - p0
    low = d - math.hypot(p1 - l1, u0 - p0)
    high = d + math.hypot(u1 - p1, p0 - l0)
    return max(-1.0, low), min(1.0, high)


# ----------------------------------------------------------------------------------------------
# Correlations
# ----------------------------------------------------------------------------------------------


def _paired_vectors(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.ndim != 1 or ya.ndim != 1:
        raise ValueError(f"x and y have shapes {xa.shape} and {ya.shape}; expected two 1-D arrays.")
    if xa.shape != ya.shape:
        raise ValueError(
            f"x has {xa.size} values but y has {ya.size}; expected paired values of equal length."
        )
    if xa.size < 3:
        raise ValueError(f"got {xa.size} pairs; a correlation needs at least 3.")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("x or y contains NaN or inf; drop or impute those pairs first.")
    return xa, ya


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    yc = y - y.mean()
    sxx = float(xc @ xc)
    syy = float(yc @ yc)
    if sxx == 0.0 or syy == 0.0:
        return math.nan
    # sqrt of each factor: the product of two tiny sums of squares can underflow to 0.
    r = float(xc @ yc) / (math.sqrt(sxx) * math.sqrt(syy))
    return max(-1.0, min(1.0, r))


def pearson_r(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation of two (n,) vectors (n >= 3); NaN when either is constant."""
    xa, ya = _paired_vectors(x, y)
    # Exact constancy only: a constant vector's centred values are exactly zero.
    if np.all(xa == xa[0]) or np.all(ya == ya[0]):
        return math.nan
    return _pearson(xa, ya)


def spearman_rho(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties) of two (n,) vectors; NaN if constant."""
    xa, ya = _paired_vectors(x, y)
    if np.all(xa == xa[0]) or np.all(ya == ya[0]):
        return math.nan
    return _pearson(rankdata(xa), rankdata(ya))
