"""M1: does the assistant's emotion profile mirror the user's? (Table 3; numpy only past the
token positions.)

For each of the 8 prompts the probes are read at the user's last sentence-final punctuation
token (U; the paper's "user's final period") and at the read position (A; the paper's
"Assistant colon"). M1 is the Pearson r pooled over the 8 x E (scenario, emotion) points; the
within-emotion-centred r removes each emotion's mean over scenarios first, so a probe that is
simply high everywhere ("loving" rises at A in every scenario) cannot make the profiles look
alike. Scenarios are the unit of the bootstrap: 8 scenarios, not 48 independent points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.measures.stats import bootstrap, pearson_r
from pipeline.measures.vectors import unit

DEFAULT_EMOTIONS: tuple[str, ...] = ("happy", "calm", "loving", "sad", "afraid", "angry")
SENTENCE_END = ".?!"
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


def mirroring_stats(
    activations: np.ndarray,
    vectors: np.ndarray,
    emotions: Sequence[str],
    titles: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> MirroringStats:
    """activations [S, len(POSITIONS), d] from the mirroring stage, vectors [E, d]."""
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
    )
