"""R1: split-half reliability of the emotion vectors, split by topic.

Stories of one (emotion, topic) call are near paraphrases, so a split by story leaks: both
halves would hold the same topic's stories. Here the topics are split into two disjoint halves
(alternately, in the paper's topic order), every emotion vector is built from each half the way
the vectors stage builds it from all stories, and the two are compared:

    m_e^H = mean over the usable stories of emotion e whose topic is in half H
    v_e^H = m_e^H - mean_e' m_e'^H          centred across the emotions present in both halves
    v_e^H <- v_e^H - U U^T v_e^H            the same neutral PCs projected out
    cos_e = cos(v_e^A, v_e^B)               value: median over emotions

An emotion is *distinct* when its halves agree with each other better than either half agrees
with any other emotion's other half: cos(A_e, B_e) > max over f != e of cos(A_e, B_f) and of
cos(A_f, B_e). The interval resamples topics within each half (with replacement) and rebuilds.

Pure numpy: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# At least this many topics in each half for an interval over topics: with one topic a half
# cannot be resampled (every replicate is the same topic).
MIN_TOPICS_PER_HALF = 2
CHUNK = 8192  # story means converted to float64 at a time


def split_topics(topics: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Two disjoint halves, alternately in the given (paper) order: deterministic, and each
    half spans the whole list instead of its first or second 50."""
    ordered = list(dict.fromkeys(topics))
    return tuple(ordered[0::2]), tuple(ordered[1::2])


@dataclass(frozen=True)
class TopicSums:
    sums: np.ndarray  # [T, E, d] sum of usable story means per (topic, emotion)
    counts: np.ndarray  # [T, E] usable stories per (topic, emotion)
    topics: tuple[str, ...]


def topic_sums(story_means: np.ndarray, emotion_index: Sequence[int], topics: Sequence[str],
               n_emotions: int, components: np.ndarray | None = None) -> TopicSums:
    """Per-(topic, emotion) sums of story means [N, d]; a story whose mean is exactly zero had
    no pooled token (shorter than the pooling start) and is not usable, as in the counts.

    `components` [k, d] (orthonormal) are projected out of every story mean first: projection
    and the mean over emotions are both linear, so this equals projecting the half vectors.
    """
    means = np.asarray(story_means)
    if means.ndim != 2 or len(means) != len(emotion_index) or len(means) != len(topics):
        raise ValueError(f"story means of shape {means.shape} for {len(emotion_index)} emotion "
                         f"indices and {len(topics)} topics; expected one row per story")
    names = tuple(dict.fromkeys(topics))
    t_index = {t: i for i, t in enumerate(names)}
    ti = np.array([t_index[t] for t in topics], dtype=np.int64)
    ei = np.asarray(emotion_index, dtype=np.int64)
    sums = np.zeros((len(names) * n_emotions, means.shape[1]), dtype=np.float64)
    counts = np.zeros(len(names) * n_emotions, dtype=np.int64)
    # In chunks: at the paper's scale the story means are 205,200 x d float32, and a float64
    # copy of all of them at once would be twice that again.
    for start in range(0, len(means), CHUNK):
        x = means[start:start + CHUNK].astype(np.float64)
        usable = np.any(x != 0, axis=1)
        if components is not None and len(components):
            x = x - (x @ components.T) @ components
        group = (ti[start:start + CHUNK] * n_emotions + ei[start:start + CHUNK])[usable]
        np.add.at(sums, group, x[usable])
        np.add.at(counts, group, 1)
    sums = sums.reshape(len(names), n_emotions, -1)
    counts = counts.reshape(len(names), n_emotions)
    return TopicSums(sums=sums, counts=counts, topics=names)


def _half_vectors(sums: TopicSums, weights: np.ndarray) -> np.ndarray:
    """[E, d] means over the topics weighted by `weights` [T] (0 = not in the half); NaN rows
    for emotions with no usable story there."""
    total = np.tensordot(weights, sums.sums, axes=1)
    count = weights @ sums.counts
    with np.errstate(invalid="ignore", divide="ignore"):
        means = total / count[:, None]
    means[count == 0] = np.nan
    return means


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cos_e [E], distinct [E] bool, present [E] bool) for half vectors a, b [E, d]."""
    present = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
    cos = np.full(len(a), np.nan)
    distinct = np.zeros(len(a), dtype=bool)
    if present.sum() < 2:
        return cos, distinct, present
    a_c = a[present] - a[present].mean(axis=0)
    b_c = b[present] - b[present].mean(axis=0)
    cross = _unit_rows(a_c) @ _unit_rows(b_c).T  # [P, P]: cos(A_e, B_f)
    own = np.diag(cross).copy()
    off = cross.copy()
    np.fill_diagonal(off, -np.inf)
    rival = np.maximum(off.max(axis=1), off.max(axis=0))
    cos[present] = own
    distinct[present] = own > rival
    return cos, distinct, present


@dataclass(frozen=True)
class SplitHalf:
    emotions: tuple[str, ...]
    cosines: np.ndarray  # [E] NaN where an emotion has no usable story in a half
    distinct: np.ndarray  # [E] bool
    halves: tuple[tuple[str, ...], tuple[str, ...]]  # the topics of each half
    ci: tuple[float, float]  # 95% interval of the median over a bootstrap of topics

    @property
    def scored(self) -> np.ndarray:
        return ~np.isnan(self.cosines)

    @property
    def median(self) -> float:
        return float(np.median(self.cosines[self.scored])) if self.scored.any() else float("nan")

    @property
    def n_distinct(self) -> int:
        return int(self.distinct.sum())

    @property
    def unscored(self) -> list[str]:
        return [e for e, s in zip(self.emotions, self.scored, strict=True) if not s]

    @property
    def enough_topics(self) -> bool:
        return min(len(h) for h in self.halves) >= MIN_TOPICS_PER_HALF


def split_half(sums: TopicSums, emotions: Sequence[str], *, n_boot: int = 200,
               seed: int = 0, alpha: float = 0.05) -> SplitHalf:
    """Median split-half cosine over emotions, the distinct count, and a topic bootstrap."""
    half_a, half_b = split_topics(sums.topics)
    n_t = len(sums.topics)
    index = {t: i for i, t in enumerate(sums.topics)}
    ia = np.array([index[t] for t in half_a], dtype=np.int64)
    ib = np.array([index[t] for t in half_b], dtype=np.int64)
    nan = float("nan")
    if not len(ia) or not len(ib):
        e = len(emotions)
        return SplitHalf(tuple(emotions), np.full(e, nan), np.zeros(e, dtype=bool),
                         (half_a, half_b), (nan, nan))

    def weights(chosen: np.ndarray) -> np.ndarray:
        w = np.zeros(n_t)
        np.add.at(w, chosen, 1.0)
        return w

    cos, distinct, _ = _compare(_half_vectors(sums, weights(ia)), _half_vectors(sums, weights(ib)))
    ci = (nan, nan)
    if min(len(ia), len(ib)) >= MIN_TOPICS_PER_HALF:
        rng = np.random.default_rng(seed)
        medians = []
        for _ in range(n_boot):
            ra = rng.choice(ia, size=len(ia), replace=True)
            rb = rng.choice(ib, size=len(ib), replace=True)
            c, _, present = _compare(_half_vectors(sums, weights(ra)),
                                     _half_vectors(sums, weights(rb)))
            if present.any():
                medians.append(np.median(c[present]))
        if len(medians) * 2 >= n_boot:
            low, high = np.quantile(medians, [alpha / 2, 1 - alpha / 2])
            ci = (float(low), float(high))
    return SplitHalf(tuple(emotions), cos, distinct, (half_a, half_b), ci)
