"""Emotion-vector math on numpy arrays (no model, no torch).

    m_e = sums_e / counts_e                      per-emotion mean of story means
    v_e = m_e - mean_e' m_e'                     minus the mean across emotions
    v_e <- v_e - U U^T v_e                       neutral top PCs (>= 50% variance) projected out
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.inputs.errors import BadInput

VARIANCE_TO_REMOVE = 0.5


class EmptyEmotion(BadInput):
    def __init__(self, message: str, empty: Sequence[str] = ()):
        super().__init__(message)
        self.empty = list(empty)


def empty_emotions(counts: np.ndarray, names: Sequence[str]) -> list[str]:
    """The emotions with no usable story (count 0), in emotion order."""
    return [names[i] for i in np.flatnonzero(np.asarray(counts) == 0)]


def emotion_means(sums: np.ndarray, counts: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """sums [L, E, d], counts [E] -> means [L, E, d].

    An emotion with no usable story has no mean: its slice is NaN, never zero, so that any use
    of it downstream shows up instead of passing for a real (if short) vector. Callers drop it
    (`EmotionVectors.present`) and say so in the row. Raises only when no emotion has a story.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if len(counts) != len(names):
        raise ValueError(f"{len(counts)} counts for {len(names)} emotion names")
    if not (counts > 0).any():
        raise EmptyEmotion(
            f"none of the {len(names)} emotions has a usable story (every story was missing, "
            "unparseable or shorter than 50 tokens); expected at least one story of 50 tokens or "
            "more for some emotion; raise max_new_tokens, use a larger --scale, or inspect "
            "calls-*.jsonl in the stories artifact", list(names))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[None, :, None]
    means[:, counts == 0, :] = np.nan
    return means


def center_across_emotions(means: np.ndarray) -> np.ndarray:
    """[L, E, d] -> [L, E, d] with the mean over emotions removed at every layer.

    The mean is over the emotions that have a vector (NaN slices are skipped and stay NaN).
    """
    present = ~np.isnan(means).any(axis=(0, 2))
    return means - means[:, present].mean(axis=1, keepdims=True)


@dataclass(frozen=True)
class NeutralPCA:
    components: np.ndarray  # [k, d], orthonormal rows, descending variance
    explained: np.ndarray  # [k] fraction of total variance per component

    @property
    def k(self) -> int:
        return self.components.shape[0]


def pca_from_moments(
    total: np.ndarray, gram: np.ndarray, count: int, fraction: float = VARIANCE_TO_REMOVE
) -> NeutralPCA:
    """Centred token-level PCA from sum x [d] and sum x x^T [d, d] over `count` tokens.

    Keeps the smallest k whose components explain >= `fraction` of the variance.
    """
    if count < 2:
        raise ValueError(f"neutral PCA needs at least 2 tokens, got {count}")
    mean = total / count
    cov = gram / count - np.outer(mean, mean)
    cov = (cov + cov.T) / 2  # symmetrise away accumulation round-off before eigh
    values, vectors = np.linalg.eigh(cov)
    values, vectors = np.clip(values[::-1], 0.0, None), vectors[:, ::-1]
    share = values / values.sum()
    k = int(np.searchsorted(np.cumsum(share), fraction - 1e-12) + 1)
    return NeutralPCA(components=vectors[:, :k].T.copy(), explained=share[:k].copy())


def project_out(vectors: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Remove the span of orthonormal `components` [k, d] from `vectors` [..., d]."""
    return vectors - (vectors @ components.T) @ components


def unit(vectors: np.ndarray, axis: int = -1) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=axis, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine along the last axis with broadcasting."""
    return (unit(a) * unit(b)).sum(-1)
