"""V5/V6: do probe values at the read position move with a number in the prompt? (numpy)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.inputs.stimuli import NumericalTemplate
from pipeline.measures.stats import spearman_rho
from pipeline.measures.vectors import cosine

STRONG = 0.7


@dataclass(frozen=True)
class PairResult:
    template: str
    emotion: str
    expected_sign: int
    sign_source: str  # "paper" or "harness"
    rho: float
    x: tuple[float, ...]
    probe: tuple[float, ...]  # cosine(activation at read position, emotion vector) per X

    @property
    def sign_ok(self) -> bool:
        return bool(np.sign(self.rho) == self.expected_sign)

    @property
    def strong(self) -> bool:
        return bool(abs(self.rho) > STRONG)


def numerical_pairs(templates: Sequence[NumericalTemplate], ids: Sequence[str],
                    activations: np.ndarray, vector_of) -> list[PairResult]:
    """activations [N, d] in `ids` order ("template|x"); vector_of(emotion) -> [d]."""
    row = {key: i for i, key in enumerate(ids)}
    pairs = []
    for template in templates:
        indices = [row[f"{template.id}|{x}"] for x in template.x_values]
        acts = activations[indices]
        for expected in template.expected:
            probe = cosine(acts, vector_of(expected.emotion)[None, :])
            pairs.append(PairResult(
                template=template.id, emotion=expected.emotion, expected_sign=expected.sign,
                sign_source=expected.source, rho=spearman_rho(np.array(template.x_values, float),
                                                              probe),
                x=tuple(float(x) for x in template.x_values),
                probe=tuple(float(p) for p in probe),
            ))
    return pairs
