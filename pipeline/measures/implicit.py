"""V3/V4: do the Table 2 scenarios light up their own emotion at the read position? (numpy)"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.measures.vectors import cosine


@dataclass(frozen=True)
class ImplicitScores:
    emotions: tuple[str, ...]  # the 12 scenario emotions, row i = scenario i = vector i
    raw: np.ndarray  # [12, 12] cosine(activation of scenario i, vector of emotion j)
    centred: np.ndarray  # [12, 12] same with the mean activation over scenarios removed

    def ranks(self, centred: bool = False) -> np.ndarray:
        """[12] rank (1 = best) of scenario i's own emotion among the 12 in row i."""
        scores = self.centred if centred else self.raw
        own = np.diag(scores)
        return 1 + (scores > own[:, None]).sum(axis=1)

    def diagonal_hits(self, centred: bool = False) -> np.ndarray:
        return self.ranks(centred) == 1

    def winners(self, centred: bool = False) -> list[str]:
        scores = self.centred if centred else self.raw
        return [self.emotions[j] for j in scores.argmax(axis=1)]


def implicit_scores(activations: np.ndarray, vectors: np.ndarray,
                    emotions: tuple[str, ...]) -> ImplicitScores:
    """activations [12, d] (scenario order) and vectors [12, d] (same emotion order)."""
    if activations.shape[0] != len(emotions) or vectors.shape[0] != len(emotions):
        raise ValueError(
            f"need one activation and one vector per scenario emotion ({len(emotions)}); got "
            f"{activations.shape[0]} activations and {vectors.shape[0]} vectors"
        )
    raw = cosine(activations[:, None, :], vectors[None, :, :])
    centred_acts = activations - activations.mean(axis=0, keepdims=True)
    centred = cosine(centred_acts[:, None, :], vectors[None, :, :])
    return ImplicitScores(emotions, raw, centred)
