"""The V7-V11 statistics from ratings and probe values: pure numpy and scipy, no model.

Shapes: N activities (64), E emotions (171), C steered conditions; ratings on the Elo scale.
Bootstraps resample the natural unit of each row: activities for V7-V9 (within category for
V7, so each category keeps its 8 members), emotions for V10-V11, steered activities for the
random-direction control. The ratings themselves are not refitted inside a bootstrap: the
resampled unit is the one the statistic averages or correlates over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from pipeline.measures.ratings import ELO_SCALE, bt_log_likelihood, soft_win_matrix
from pipeline.measures.stats import bootstrap

# V8-V11 correlate emotion probes with the ratings, so they presuppose ratings that carry a
# preference at all (docs/DESIGN_NOTES.md, "Preference signal").
SIGNAL_ALPHA = 0.05


def category_means(ratings: np.ndarray, categories: Sequence[str]) -> dict[str, float]:
    """Mean rating per category, in order of first appearance."""
    ratings = np.asarray(ratings, dtype=float)
    if ratings.shape != (len(categories),):
        raise ValueError(f"ratings {ratings.shape} vs {len(categories)} categories; one each")
    names = list(dict.fromkeys(categories))
    labels = np.asarray(categories)
    return {name: float(ratings[labels == name].mean()) for name in names}


@dataclass(frozen=True)
class CategoryGap:
    gap: float  # top minus bottom category mean
    top: str
    bottom: str
    means: dict[str, float]


def category_gap(ratings: np.ndarray, categories: Sequence[str]) -> CategoryGap:
    means = category_means(ratings, categories)
    top = max(means, key=means.__getitem__)
    bottom = min(means, key=means.__getitem__)
    return CategoryGap(means[top] - means[bottom], top, bottom, means)


def category_gap_interval(
    ratings: np.ndarray, categories: Sequence[str], *, n_boot: int = 2000, seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile interval of the gap, resampling activities with replacement within category."""
    ratings = np.asarray(ratings, dtype=float)
    labels = np.asarray(categories)
    groups = [ratings[labels == name] for name in dict.fromkeys(categories)]
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        means = [g[rng.integers(0, len(g), len(g))].mean() for g in groups]
        reps[b] = max(means) - min(means)
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class PreferenceSignal:
    """Whether the ratings can be told from indifference: a likelihood-ratio test.

    Each of the prompts is read as one observed A/B answer whose expected outcome is its soft
    win, and the Bradley-Terry fit is tested against equal strengths (every answer a coin
    toss, position bias cancelled by the order average). A model whose ratings sit within a
    few Elo of each other has correlations with them, but they are correlations with noise a
    researcher asking each question once could not see; V8-V11 do not count them.
    """

    statistic: float  # 2 x (log-likelihood of the fit - log-likelihood of indifference)
    dof: int  # activities - 1
    p_value: float
    n_answers: int  # played ordered prompts
    rating_sd: float  # Elo

    @property
    def detectable(self) -> bool:
        return self.p_value < SIGNAL_ALPHA

    def text(self) -> str:
        return (f"preference signal: likelihood ratio {self.statistic:.3g} on {self.dof} df "
                f"against indifference over {self.n_answers} answers, p = {self.p_value:.2g}; "
                f"rating sd {self.rating_sd:.3g} Elo")

    def unmet(self) -> str:
        """The precondition V8-V11 report when the ratings carry no detectable preference."""
        if self.detectable:
            return ""
        return (f"no detectable preference: the ratings cannot be told from indifference "
                f"(likelihood ratio {self.statistic:.3g} on {self.dof} df over {self.n_answers} "
                f"answers, p = {self.p_value:.2g} >= {SIGNAL_ALPHA}; rating sd "
                f"{self.rating_sd:.3g} Elo); the value is shown but cannot pass")

    def note(self) -> str:
        """For a row's explanation: the test when it passed (an unmet one is said already)."""
        return f"; {self.text()}" if self.detectable else ""


def preference_signal(logit_diff: np.ndarray, ratings: np.ndarray) -> PreferenceSignal:
    """logit_diff [N, N] (row = A), ratings [N] on the Elo scale fitted to it."""
    p = soft_win_matrix(logit_diff)
    ratings = np.asarray(ratings, dtype=float)
    if ratings.shape != (p.shape[0],) or not np.all(np.isfinite(ratings)):
        raise ValueError(f"ratings {ratings.shape} for a {p.shape} preference matrix; expected "
                         f"{p.shape[0]} finite Elo ratings, one per activity")
    theta = (ratings - ratings.mean()) / ELO_SCALE
    fitted = bt_log_likelihood(theta, p)
    indifferent = bt_log_likelihood(np.zeros_like(theta), p)
    # The ratings are the (lightly regularised) MLE, so the fit is at least as likely as
    # indifference up to rounding; clip that rounding rather than report a negative statistic.
    statistic = max(0.0, 2.0 * (fitted - indifferent))
    dof = len(ratings) - 1
    played = int(np.sum(~np.isnan(p)))
    return PreferenceSignal(statistic, dof, float(chi2.sf(statistic, dof)), played,
                            float(ratings.std()))


def columnwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each column of x [N, E] with y [N] -> [E]; NaN where either is constant."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x {x.shape} and y {y.shape}; expected [N, E] and [N]")
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    sxx = np.einsum("ne,ne->e", xc, xc)
    syy = float(yc @ yc)
    with np.errstate(invalid="ignore", divide="ignore"):
        # sqrt of each factor: their product underflows to 0 for tiny but non-constant columns
        r = (yc @ xc) / (np.sqrt(sxx) * np.sqrt(syy))
    r[(sxx == 0) | (syy == 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


@dataclass(frozen=True)
class ValenceExtremes:
    top: list[str]  # highest r first
    bottom: list[str]  # lowest r first
    positive_in_top: int
    negative_in_bottom: int

    @property
    def score(self) -> int:
        """The V8 value: both counts must reach the threshold, so the smaller one decides."""
        return min(self.positive_in_top, self.negative_in_bottom)


def valence_extremes(
    emotions: Sequence[str], r: np.ndarray, valence: dict[str, str], k: int = 3
) -> ValenceExtremes:
    """Top and bottom k emotions by r (NaN excluded) and how many have the expected valence."""
    r = np.asarray(r, dtype=float)
    finite = np.flatnonzero(np.isfinite(r))
    if len(finite) < 2 * k:
        raise ValueError(f"only {len(finite)} emotions have a finite r; need {2 * k}")
    # numpy sorts (the V8 bootstrap calls this 2000 times); ties go to the earlier emotion
    top = [emotions[i] for i in finite[np.lexsort((finite, -r[finite]))][:k]]
    bottom = [emotions[i] for i in finite[np.lexsort((finite, r[finite]))][:k]]
    return ValenceExtremes(
        top, bottom,
        sum(valence[e] == "positive" for e in top),
        sum(valence[e] == "negative" for e in bottom),
    )


def count_strong(r: np.ndarray, threshold: float = 0.3) -> int:
    """Emotions with |r| > threshold (V9); NaN counts as not strong."""
    r = np.asarray(r, dtype=float)
    return int(np.sum(np.abs(np.nan_to_num(r, nan=0.0)) > threshold))


def activity_bootstrap(
    statistic, probe: np.ndarray, ratings: np.ndarray, *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Interval of statistic(r) where r = columnwise_pearson over resampled activities."""
    probe = np.asarray(probe, dtype=float)
    ratings = np.asarray(ratings, dtype=float)

    def replicate(rows: np.ndarray) -> float:
        return float(statistic(columnwise_pearson(probe[rows], ratings[rows])))

    return bootstrap(replicate, np.arange(len(ratings)), n_boot=n_boot, seed=seed).interval


def delta_elo(
    steered: np.ndarray, baseline: np.ndarray, activities: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per condition: mean over the steered activities of steered minus baseline rating.

    steered [C, N], baseline [N] -> (mean [C], per-activity deltas [C, len(activities)]).
    """
    steered = np.asarray(steered, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    if steered.ndim != 2 or steered.shape[1] != baseline.shape[0]:
        raise ValueError(f"steered {steered.shape} vs baseline {baseline.shape}; expected [C, N]")
    idx = list(activities)
    per_activity = steered[:, idx] - baseline[idx]  # [C, S]
    return per_activity.mean(axis=1), per_activity


def sign_agreement(r: np.ndarray, delta: np.ndarray) -> int:
    """Conditions whose Delta-Elo has the sign of their r (a zero on either side disagrees)."""
    r = np.asarray(r, dtype=float)
    delta = np.asarray(delta, dtype=float)
    return int(np.sum((np.sign(r) == np.sign(delta)) & (np.sign(r) != 0)))


def pearson_pairs(pairs: np.ndarray) -> float:
    """Pearson r of the two columns of pairs [n, 2]; NaN when either is constant."""
    x, y = pairs[:, 0], pairs[:, 1]
    if np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def sign_agreement_pairs(pairs: np.ndarray) -> float:
    return float(sign_agreement(pairs[:, 0], pairs[:, 1]))


def control_ratio(control: np.ndarray, emotions: np.ndarray) -> float:
    """|mean Delta-Elo of the control| / median over emotions of |mean Delta-Elo|.

    control [S], emotions [C, S]: per-steered-activity deltas.
    """
    denominator = float(np.median(np.abs(np.asarray(emotions).mean(axis=1))))
    if denominator == 0.0:
        return float("nan")
    return abs(float(np.mean(control))) / denominator


def control_ratio_interval(
    control: np.ndarray, emotions: np.ndarray, *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Resample the steered activities jointly for the control and every emotion."""
    control = np.asarray(control, dtype=float)
    emotions = np.asarray(emotions, dtype=float)

    def replicate(cols: np.ndarray) -> float:
        return control_ratio(control[cols], emotions[:, cols])

    return bootstrap(replicate, np.arange(control.shape[0]), n_boot=n_boot, seed=seed).interval
