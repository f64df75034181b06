"""A text-only baseline for the readout rows (issue 16, item 3): the same decision from words.

A six-model replication found a unigram text baseline matching activation probes. So V3/V4 ask
the same question of bag-of-words vectors built the way the emotion vectors are built:

    b_s   = unit(word counts of story s)              lower-cased words, [a-z0-9'] runs
    m_e   = mean over emotion e's stories of b_s       (the emotion's "vector" in word space)
    w_e   = m_e - mean over emotions of m_e            centred across every emotion given,
                                                       which removes the words all stories share
    score(scenario i, emotion j) = cos(unit(word counts of scenario i), w_j)

and hands the [12, 12] scores to the same `implicit_scores` the probes use, so the baseline's
diagonal hits (V3) and mean rank (V4) are computed by the same code as the probe's.

Pure numpy: no torch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.measures.implicit import ImplicitScores, implicit_scores

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return [w.strip("'") for w in _WORD.findall(text.lower()) if w.strip("'")]


def emotion_word_vectors(stories: Mapping[str, Sequence[str]]) -> tuple[tuple[str, ...],
                                                                          np.ndarray,
                                                                          dict[str, int]]:
    """(emotions, [E, V] centred mean unit word-count vectors, vocabulary) from each emotion's
    story texts; an emotion with no story is left out (as it has no vector)."""
    emotions = tuple(e for e, texts in stories.items() if len(texts))
    if len(emotions) < 2:
        raise ValueError(f"stories for {len(emotions)} emotion(s); the text baseline centres "
                         "across emotions and needs at least 2 with a story")
    vocabulary: dict[str, int] = {}
    rows: list[dict[int, float]] = []
    for e in emotions:
        total: dict[int, float] = {}
        for text in stories[e]:
            counts = Counter(vocabulary.setdefault(w, len(vocabulary)) for w in words(text))
            norm = np.sqrt(sum(c * c for c in counts.values())) or 1.0
            for index, c in counts.items():
                total[index] = total.get(index, 0.0) + c / norm
        rows.append({i: v / len(stories[e]) for i, v in total.items()})
    matrix = np.zeros((len(emotions), len(vocabulary)))
    for r, row in enumerate(rows):
        matrix[r, list(row)] = list(row.values())
    return emotions, matrix - matrix.mean(axis=0, keepdims=True), vocabulary


def text_vector(text: str, vocabulary: Mapping[str, int]) -> np.ndarray:
    """[V] word counts of `text` over `vocabulary` (unknown words cannot match any emotion)."""
    out = np.zeros(len(vocabulary))
    for w in words(text):
        if w in vocabulary:
            out[vocabulary[w]] += 1.0
    return out


def text_implicit_scores(scenarios: Sequence[str], scenario_emotions: Sequence[str],
                         stories: Mapping[str, Sequence[str]]) -> ImplicitScores:
    """V3/V4's scores from text alone: scenario i against the word vector of emotion i's
    stories, among the scenario emotions. `stories` should hold every emotion (171), since the
    centring runs across all of them, as the emotion vectors' does."""
    emotions, matrix, vocabulary = emotion_word_vectors(stories)
    missing = [e for e in scenario_emotions if e not in emotions]
    if missing:
        raise ValueError(f"no story for scenario emotion(s) {missing}; the text baseline needs "
                         "stories for every emotion it scores (leave those scenarios out)")
    chosen = matrix[[emotions.index(e) for e in scenario_emotions]]
    texts = np.stack([text_vector(s, vocabulary) for s in scenarios])
    return implicit_scores(texts, chosen, tuple(scenario_emotions))


def text_cosines(texts: Sequence[str],
                 stories: Mapping[str, Sequence[str]]) -> tuple[tuple[str, ...], np.ndarray]:
    """(emotions, [N, E]) cosine of each text's word counts with each emotion's centred word
    vector: the text-only stand-in for probe values (V8/V9's activities). A text that shares
    no word with the stories scores 0 everywhere."""
    emotions, matrix, vocabulary = emotion_word_vectors(stories)
    x = np.stack([text_vector(t, vocabulary) for t in texts])
    x_norm = np.linalg.norm(x, axis=1, keepdims=True)
    m_norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    x = x / np.where(x_norm == 0, 1.0, x_norm)
    return emotions, x @ (matrix / np.where(m_norm == 0, 1.0, m_norm)).T
