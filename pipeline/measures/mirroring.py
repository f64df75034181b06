"""M1: does the assistant's emotion profile mirror the user's? (Table 3; numpy only past the
token positions.)

For each of the 8 prompts the probes are read at the user's last sentence-final punctuation
token (U; the paper's "user's final period") and at the read position (A; the paper's
"Assistant colon"). M1 is the Pearson r pooled over the 8 x E (scenario, emotion) points; the
within-emotion-centred r removes each emotion's mean over scenarios first, so a probe that is
simply high everywhere ("loving" rises at A in every scenario) cannot make the profiles look
alike. Scenarios are the unit of the bootstrap: 8 scenarios, not 48 independent points.

Precondition: a low r means dissociation only if the user's emotion is readable at U at all.
The paper chose these prompts because "the user's expressed emotion differs from the expected
reply" (Table 3; data/paper/NOTES.md 5.1): the claim is that the model represents the user's
emotion at U and another one at A. Random weights represent neither, and their U and A profiles
are uncorrelated for that reason alone (the toy's twin gave r 0.09, a PASS). So M1 first asks
whether U identifies the user's emotion: for the Table 3 prompts whose user plainly states one
of the probed emotions (`USER_EMOTIONS`, harness-authored from the prompts' own words), the rank
of that emotion among the probed ones at U, within-emotion centred, must beat chance (the exact
rank-sum test below, one-sided p < 0.05).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.measures.stats import bootstrap, pearson_r
from pipeline.measures.vectors import unit

DEFAULT_EMOTIONS: tuple[str, ...] = ("happy", "calm", "loving", "sad", "afraid", "angry")
SENTENCE_END = ".?!"
# HARNESS-AUTHORED: the emotion each Table 3 user expresses, among DEFAULT_EMOTIONS, from the
# prompt's own words ("makes me really nervous", "fired me ... with no warning", "completely
# unhelpful ... wasted my time", "my entire retirement savings into this new cryptocurrency",
# "I'm sure it's nothing to worry about", "honey never spoils"). "24hr no-sleep drive" and
# "Another boring report" state none of the six plainly and are left unlabelled.
USER_EMOTIONS: dict[str, str] = {
    "AI scares me": "afraid",
    "Fired, no warning": "sad",
    "Useless response": "angry",
    "All-in on crypto": "happy",
    "Ignoring chest pains": "calm",
    "3000yr-old honey": "happy",
}
READABLE_ALPHA = 0.05
MIN_LABELLED = 3  # fewer labelled scenarios (emotions without a vector) cannot show anything
# Rows of the activation array the mirroring stage stores, in this order.
POSITIONS: tuple[str, ...] = ("user_punct", "user_period", "read", "response")



def probe_values(activations: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Projection on each unit emotion vector: activations [..., d], vectors [E, d] -> [..., E]."""
    return np.asarray(activations, dtype=np.float64) @ unit(np.asarray(vectors, np.float64)).T


def pooled_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r over every (scenario, emotion) point of two [S, E] profiles."""
    return pearson_r(np.ravel(x), np.ravel(y))


def centred_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pooled r after removing each emotion's mean over scenarios from both profiles."""
    return pooled_r(x - x.mean(axis=0, keepdims=True), y - y.mean(axis=0, keepdims=True))


def _scenario_ci(statistic, x: np.ndarray, y: np.ndarray, n_boot: int, seed: int):
    units = np.stack([x, y], axis=1)  # [S, 2, E]: resample whole scenarios
    result = bootstrap(lambda u: statistic(u[:, 0], u[:, 1]), units, n_boot=n_boot, seed=seed)
    return result.interval


@dataclass(frozen=True)
class Correlation:
    r: float
    ci: tuple[float, float]  # 95% percentile bootstrap over scenarios
    n_scenarios: int


def correlate(
    x: np.ndarray, y: np.ndarray, *, centred: bool = False, n_boot: int = 2000, seed: int = 0
) -> Correlation:
    """Pooled (or within-emotion-centred) r of two [S, E] profiles, scenarios with a NaN dropped."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(
            f"profiles have shapes {x.shape} and {y.shape}; expected two [scenarios, emotions]"
        )
    keep = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    x, y = x[keep], y[keep]
    statistic = centred_r if centred else pooled_r
    if len(x) < 3:
        return Correlation(float("nan"), (float("nan"), float("nan")), int(len(x)))
    return Correlation(statistic(x, y), _scenario_ci(statistic, x, y, n_boot, seed), int(len(x)))


def rank_sum_p(observed: int, n: int, k: int) -> float:
    """P(sum of n independent uniform ranks in 1..k <= observed): exact, by convolution."""
    dist = np.zeros(1)
    dist[0] = 1.0  # index = sum so far
    for _ in range(n):
        nxt = np.zeros(len(dist) + k)
        for r in range(1, k + 1):
            nxt[r : r + len(dist)] += dist / k
        dist = nxt
    return float(dist[: observed + 1].sum())


@dataclass(frozen=True)
class Readability:
    """Is the user's emotion readable at U? (M1's precondition)"""

    titles: tuple[str, ...]  # the labelled scenarios used
    labels: tuple[str, ...]
    ranks: tuple[int, ...]  # the label's rank among the probed emotions at U (1 = highest)
    n_emotions: int
    p_value: float  # one-sided exact rank-sum test against uniform ranks

    @property
    def readable(self) -> bool:
        return len(self.ranks) >= MIN_LABELLED and self.p_value < READABLE_ALPHA

    def text(self) -> str:
        ranks = ", ".join(f"{t} {lab} {r}" for t, lab, r in
                          zip(self.titles, self.labels, self.ranks, strict=True))
        return (f"user's emotion at U ranks {ranks} of {self.n_emotions} (rank-sum p = "
                f"{self.p_value:.3g}, needs < {READABLE_ALPHA} over at least {MIN_LABELLED} "
                "labelled prompts)")

    def unmet(self) -> str:
        return "" if self.readable else f"the user's emotion is not readable at U: {self.text()}"


def user_readability(user: np.ndarray, emotions: Sequence[str], titles: Sequence[str],
                     labels: Mapping[str, str]) -> Readability:
    """user [S, E] at U. Each emotion's mean over scenarios is removed first, so a probe that
    is high everywhere cannot look like the user's emotion in every scenario."""
    user = np.asarray(user, np.float64)
    centred = user - np.nanmean(user, axis=0, keepdims=True)
    used, names, ranks = [], [], []
    for s, title in enumerate(titles):
        label = labels.get(title)
        if label is None or label not in emotions or not np.isfinite(centred[s]).all():
            continue
        own = centred[s, list(emotions).index(label)]
        used.append(title)
        names.append(label)
        ranks.append(int(1 + (centred[s] > own).sum()))
    p = rank_sum_p(sum(ranks), len(ranks), len(emotions)) if ranks else float("nan")
    return Readability(tuple(used), tuple(names), tuple(ranks), len(emotions), p)


@dataclass(frozen=True)
class MirroringStats:
    emotions: tuple[str, ...]
    titles: tuple[str, ...]
    user: np.ndarray  # [S, E] probe values at the user's last sentence-final punctuation
    assistant: np.ndarray  # [S, E] at the read position
    response: np.ndarray  # [S, E] mean over the greedy continuation (NaN row: empty response)
    user_period: np.ndarray  # [S, E] at the user's last '.' (the paper's literal wording)
    pooled: Correlation  # M1: user vs assistant
    centred: Correlation
    pooled_period: Correlation  # sensitivity: the last '.' instead of the last punctuation
    user_vs_response: Correlation  # the paper's continuation check (0.59)
    assistant_vs_response: Correlation  # (0.87)
    loving_rises: int | None = None  # scenarios where 'loving' is higher at A than at U
    readability: Readability | None = None  # the precondition (None: not computed)


def mirroring_stats(
    activations: np.ndarray,
    vectors: np.ndarray,
    emotions: Sequence[str],
    titles: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    user_labels: Mapping[str, str] | None = None,
) -> MirroringStats:
    """activations [S, len(POSITIONS), d] from the mirroring stage, vectors [E, d];
    user_labels: title -> the user's emotion (default: USER_EMOTIONS, the Table 3 titles)."""
    if activations.ndim != 3 or activations.shape[1] != len(POSITIONS):
        raise ValueError(
            f"activations have shape {activations.shape}; expected [scenarios, "
            f"{len(POSITIONS)} positions {POSITIONS}, d_model]"
        )
    if vectors.shape[0] != len(emotions):
        raise ValueError(f"{vectors.shape[0]} vectors for {len(emotions)} emotions; pass one each")
    probes = probe_values(activations, vectors)  # [S, P, E]
    user, period, assistant, response = (probes[:, i] for i in range(len(POSITIONS)))
    loving = list(emotions).index("loving") if "loving" in emotions else None
    return MirroringStats(
        emotions=tuple(emotions),
        titles=tuple(titles),
        user=user,
        assistant=assistant,
        response=response,
        user_period=period,
        pooled=correlate(user, assistant, n_boot=n_boot, seed=seed),
        centred=correlate(user, assistant, centred=True, n_boot=n_boot, seed=seed),
        pooled_period=correlate(period, assistant, n_boot=n_boot, seed=seed),
        user_vs_response=correlate(user, response, n_boot=n_boot, seed=seed),
        assistant_vs_response=correlate(assistant, response, n_boot=n_boot, seed=seed),
        loving_rises=None
        if loving is None
        else int((assistant[:, loving] > user[:, loving]).sum()),
        readability=user_readability(user, emotions, titles,
                                     USER_EMOTIONS if user_labels is None else user_labels),
    )
