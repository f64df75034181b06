"""The embedding null's vectors (issue 16): emotion vectors built the real way at the token
embeddings, the residual stream before any block.

    m_e = sums_e / counts_e          per-emotion mean of story means (embedding rows, pooled
                                     exactly as the real capture pools)
    v_e = m_e - mean_e' m_e'         minus the mean across emotions
    v_e <- v_e - U U^T v_e           the neutral dialogues' top PCs of the embedding rows
                                     (>= 50% of the variance) projected out

The same functions as the real vectors (pipeline.measures.vectors), on one "layer", so that
whatever the rows then find in the null is what the token identities alone carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.measures.vectors import (
    NeutralPCA,
    center_across_emotions,
    emotion_means,
    pca_from_moments,
    project_out,
)


@dataclass(frozen=True)
class NullVectors:
    raw: np.ndarray  # [1, E, d]
    denoised: np.ndarray  # [1, E, d]
    pca: NeutralPCA


def null_vectors(sums: np.ndarray, counts: np.ndarray, names: Sequence[str],
                 total: np.ndarray, gram: np.ndarray, n_tokens: int) -> NullVectors:
    """sums [E, d] and counts [E] of the stories' pooled embeddings, and the neutral tokens'
    sum [d], Gram matrix [d, d] and count -> the null vectors, one layer deep."""
    raw = center_across_emotions(emotion_means(np.asarray(sums)[None], counts, names))
    pca = pca_from_moments(np.asarray(total, dtype=np.float64), np.asarray(gram, np.float64),
                           n_tokens)
    return NullVectors(raw, project_out(raw[0], pca.components)[None], pca)
