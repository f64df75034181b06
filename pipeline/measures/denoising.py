"""How much of the emotion vectors the neutral projection keeps (a diagnostic; it decides no
verdict). Numpy only.

The harness projects the top principal components of neutral-dialogue activations out of every
emotion vector (pipeline.measures.vectors: v_e <- P v_e, P = I - U U^T). That is the paper's
denoising, and it assumes neutral text does not vary along the emotions. Where it does, the
projection removes the emotions' own directions, and every row that reads the denoised vectors
(the steering rows, the logit lens, the geometry) sees less of them, silently: docs/TOY.md,
run 15, found toys whose neutral dialogues varied along the valence direction at the steering
layer, where the denoised vectors kept 0.34-0.50 of the valence axis, and the steering rows
failed for it. So the rows that read denoised vectors say, per layer:

    a       = mean(v_e, e positive) - mean(v_e, e negative)    over the raw vectors
    kept    = ||P a|| / ||a||                                  (P a = the same axis of the
                                                                denoised vectors)
    chance  = sqrt(1 - k / d)       a unit axis uniformly random in R^d has E ||P a||^2 = 1 - k/d
    variance kept = sum_e ||P v_e||^2 / sum_e ||v_e||^2

Valence labels are the harness-authored ones G1 uses. `kept` below LOW_KEPT (more than half of
the axis's length removed) is flagged in the row's sentence and the report's notes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.measures.geometry import VALENCE_CODE

LOW_KEPT = 0.5


@dataclass(frozen=True)
class DenoisingKept:
    layer: int
    k: int  # neutral components projected out
    neutral_share: float  # share of the neutral variance they explain
    axis_kept: float  # ||P a|| / ||a|| (NaN when the axis cannot be formed; see `reason`)
    chance: float  # sqrt(1 - k/d): what a random axis keeps on average
    variance_kept: float  # sum ||P v||^2 / sum ||v||^2 over the emotions with a vector
    n_positive: int
    n_negative: int
    reason: str = ""  # why axis_kept is NaN ('' when it is a number)

    @property
    def low(self) -> bool:
        """More than half of the valence axis's length projected out."""
        return bool(self.axis_kept < LOW_KEPT)  # False for NaN


def denoising_kept(raw: np.ndarray, denoised: np.ndarray, emotions: Sequence[str],
                   valence: Mapping[str, str], *, layer: int, k: int,
                   neutral_share: float) -> DenoisingKept:
    """raw, denoised: [E, d] at one layer (denoised = raw with k neutral PCs projected out).

    Emotions without a vector (NaN rows) and without a 'positive'/'negative' label are left
    out. The axis is NaN (with a reason) when one valence has no emotion or the axis is zero.
    """
    raw, denoised = np.asarray(raw, dtype=np.float64), np.asarray(denoised, dtype=np.float64)
    if raw.shape != denoised.shape or raw.ndim != 2 or raw.shape[0] != len(emotions):
        raise ValueError(f"raw {raw.shape} and denoised {denoised.shape} must both be "
                         f"[{len(emotions)} emotions, d]")
    d = raw.shape[1]
    if not 0 <= k <= d:
        raise ValueError(f"k = {k} neutral components in a {d}-dimensional space")
    present = np.isfinite(raw).all(axis=1) & np.isfinite(denoised).all(axis=1)
    # G1's +1/-1 coding; an emotion without a label codes 0 and joins neither side.
    sign = np.array([VALENCE_CODE.get(valence.get(e, ""), 0.0) for e in emotions])
    pos, neg = present & (sign > 0), present & (sign < 0)
    total = float((raw[present] ** 2).sum())
    variance = float((denoised[present] ** 2).sum()) / total if total > 0 else float("nan")
    reason = ""
    if not pos.any() or not neg.any():
        reason = (f"{int(pos.sum())} positive and {int(neg.sum())} negative emotions have a "
                  "vector; the axis needs at least one of each")
        kept = float("nan")
    else:
        axis = raw[pos].mean(axis=0) - raw[neg].mean(axis=0)
        length = float(np.linalg.norm(axis))
        if length == 0:
            reason, kept = "the positive and negative means coincide", float("nan")
        else:
            kept = float(np.linalg.norm(denoised[pos].mean(axis=0)
                                        - denoised[neg].mean(axis=0))) / length
    return DenoisingKept(layer=layer, k=int(k), neutral_share=float(neutral_share),
                         axis_kept=kept, chance=float(np.sqrt(1 - k / d)),
                         variance_kept=variance, n_positive=int(pos.sum()),
                         n_negative=int(neg.sum()), reason=reason)
