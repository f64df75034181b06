"""G1/G2: the principal components of the emotion vectors against valence and arousal.

The paper (section 3, Fig. 5) runs a PCA over its 171 emotion vectors: PC1 explains 26% of
the variance and correlates with human valence norms at r = 0.81, PC2 15% and arousal 0.66
(on the 45 emotions shared with the norms). A PC's sign is arbitrary, so the rows use |r|.

    X_c = X - mean over emotions          (the vectors are already centred; harmless again)
    X_c = U S V^T                          scores = U S, explained_k = S_k^2 / sum S^2
    r_k = Pearson(scores[:, k], label)     label: +1 positive, -1 negative (point-biserial)

Pure numpy: no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh

from pipeline.measures.stats import bootstrap_ci

VALENCE_CODE = {"positive": 1.0, "negative": -1.0}


@dataclass(frozen=True)
class Components:
    scores: np.ndarray  # [E, k] each emotion's coordinate on PC1..PCk
    explained: np.ndarray  # [k] share of the total variance of each component


def principal_components(vectors: np.ndarray, k: int = 2) -> Components:
    """PCA over emotions (rows of `vectors` [E, d]): the first k scores and variance shares."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"vectors of shape {x.shape}; expected [emotions >= 3, d]")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or inf; drop the emotions without a vector first")
    # The Gram matrix is [E, E]: cheaper than an SVD of [E, d] when d is the residual width,
    # and a bootstrap over emotions only re-indexes it.
    return components_from_gram(x @ x.T, k)


def components_from_gram(gram: np.ndarray, k: int = 2) -> Components:
    """PCA from the uncentred Gram matrix X X^T [E, E]: double-centring centres X's rows."""
    n = gram.shape[0]
    k = min(k, n)
    # Double-centring without the n x n centring matrix: G - row means - column means + mean.
    centred = (gram - gram.mean(axis=0, keepdims=True) - gram.mean(axis=1, keepdims=True)
               + gram.mean())
    centred = (centred + centred.T) / 2
    # Only the top k eigenpairs (the bootstrap calls this 1000 times); the total variance is
    # the trace, so the other eigenvalues are never needed.
    values, vectors_e = eigh(centred, subset_by_index=[n - k, n - 1])
    values, vectors_e = np.clip(values[::-1], 0.0, None), vectors_e[:, ::-1]
    total = float(np.trace(centred))
    scores = vectors_e * np.sqrt(values)  # U S
    explained = values / total if total > 0 else np.full(k, np.nan)
    return Components(scores=scores, explained=explained)


def _abs_r(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denominator = np.sqrt(xc @ xc) * np.sqrt(yc @ yc)
    return float(abs(xc @ yc) / denominator) if denominator > 0 else float("nan")


@dataclass(frozen=True)
class Alignment:
    """|r| of PC1 and PC2 with one per-emotion label, and their variance shares."""

    emotions: tuple[str, ...]
    abs_r: tuple[float, float]  # |Pearson r| of PC1 and of PC2 with the label
    explained: tuple[float, float]  # variance share of PC1 and PC2
    ci: tuple[float, float]  # 95% bootstrap interval of |r| of the scored component
    component: int  # 0 for PC1 (G1, valence), 1 for PC2 (G2, arousal)

    @property
    def value(self) -> float:
        return self.abs_r[self.component]


def label_array(emotions: Sequence[str], labels: Mapping[str, float | str]) -> np.ndarray:
    """Numeric labels for `emotions`: numbers pass through, "positive"/"negative" -> +1/-1."""
    out = []
    for e in emotions:
        if e not in labels:
            raise ValueError(f"no label for emotion {e!r}; every scored emotion needs one")
        value = labels[e]
        out.append(VALENCE_CODE[value] if isinstance(value, str) else float(value))
    return np.array(out, dtype=np.float64)


def component_alignment(vectors: np.ndarray, emotions: Sequence[str],
                        labels: Mapping[str, float | str], *, component: int = 0,
                        n_boot: int = 1000, seed: int = 0) -> Alignment:
    """PCA over the emotions that have a label, then |r| of PC1/PC2 with the label.

    The interval resamples emotions (rows) and redoes the PCA each time, so it carries the
    uncertainty of which direction is PC1 as well as of the correlation.
    """
    keep = [i for i, e in enumerate(emotions) if e in labels]
    names = tuple(emotions[i] for i in keep)
    x = np.asarray(vectors, dtype=np.float64)[keep]
    y = label_array(names, labels)
    pcs = principal_components(x, k=2)
    abs_r = tuple(_abs_r(pcs.scores[:, j], y) for j in range(2))

    gram = x @ x.T

    def statistic(rows: np.ndarray) -> float:
        scores = components_from_gram(gram[np.ix_(rows, rows)], k=2).scores[:, component]
        return _abs_r(scores, y[rows])

    ci = bootstrap_ci(statistic, np.arange(len(names)), n_boot=n_boot, seed=seed)
    return Alignment(emotions=names, abs_r=abs_r,  # type: ignore[arg-type]
                     explained=tuple(float(v) for v in pcs.explained),  # type: ignore[arg-type]
                     ci=ci, component=component)
