"""The planted emotion channel's lexicon: which of Table 2's twelve emotions a token implies (numpy).

The channel (`channel.py`) writes, at every position, the mean of this lexicon over the context so
far into a few reserved residual dimensions. This module only computes the lexicon, from counts of
tokens in labelled harness-authored text:

    class c in the twelve emotions
    p(c | t)   = (n[t, c] + alpha) / (n[t] + alpha * C)            additive smoothing
    w[t, c]    = log p(c | t), centred over c                       log-odds among the twelve
    lex[t, c]  = n[t] / (n[t] + shrink) * w[t, c]                  rare tokens shrink to 0

so a token never counted, or counted as often for every emotion ("the", "my"), carries
nothing, and a token seen only in one emotion's situations, or an emotion's own word or
signature noun, carries that emotion. Centring over the twelve matters: any part common to all
twelve would be summed over every context into one large shared vector (a first version
against a "neutral" class did that, and the shared part, about the residual's whole norm in
neutral text, slowed training). No test prompt is counted: the situations are
`situations.IMPLICIT_SITUATIONS`, which a test keeps apart from the paper's prompts.

Pure numpy: no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def class_counts(token_lists: Iterable[tuple[int, Sequence[int], float]], vocab_size: int,
                 n_classes: int) -> np.ndarray:
    """[V, C] weighted token counts from (class, token ids, weight) triples."""
    counts = np.zeros((vocab_size, n_classes))
    for cls, ids, weight in token_lists:
        if not 0 <= cls < n_classes:
            raise ValueError(f"class {cls} is outside 0..{n_classes - 1}")
        np.add.at(counts[:, cls], np.asarray(ids, dtype=np.int64), weight)
    return counts


def document_frequency(documents: Iterable[Sequence[int]], vocab_size: int) -> np.ndarray:
    """[V] the share of `documents` (token id lists) that contain each token at least once."""
    df = np.zeros(vocab_size)
    n = 0
    for ids in documents:
        df[np.unique(np.asarray(ids, dtype=np.int64))] += 1
        n += 1
    if n == 0:
        raise ValueError("no documents to count a document frequency over; expected at least one")
    return df / n


def without_common(lex: np.ndarray, df: np.ndarray, max_df: float) -> np.ndarray:
    """The lexicon with every token that occurs in at least `max_df` of the documents set to 0.

    Sixty situations per class give function words ("it", "the", "was") log-odds of 1-3 by
    sampling alone, and in stories those tokens carried a third of the code's mass (run 12):
    noise at every position, largest where the running mean is over few tokens."""
    if not 0 < max_df <= 1:
        raise ValueError(f"max document frequency {max_df}: expected a share in (0, 1]")
    if df.shape != lex.shape[:1]:
        raise ValueError(f"document frequencies of shape {df.shape}: expected [{lex.shape[0]}]")
    return np.where((df >= max_df)[:, None], 0.0, lex)


def lexicon(counts: np.ndarray, alpha: float = 0.5, shrink: float = 10.0) -> np.ndarray:
    """[V, C] shrunken log-odds of each class given each token, centred over the classes."""
    if counts.ndim != 2 or counts.shape[1] < 2:
        raise ValueError(f"counts of shape {counts.shape}: expected [vocabulary, classes] with at "
                         "least 2 classes")
    n_classes = counts.shape[1]
    total = counts.sum(axis=1, keepdims=True)
    w = np.log((counts + alpha) / (total + alpha * n_classes))
    w = w - w.mean(axis=1, keepdims=True)
    return total / (total + shrink) * w
