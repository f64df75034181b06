"""The denoising sentence beside the rows that read denoised vectors: G1 at the analysis layer,
V10, V11 and V10_control at the steering layers.

It says how much of the vectors' valence axis, and of their variance, the neutral projection
kept at the row's layer (pipeline/measures/denoising.py), against what a random axis keeps. The
verdict never changes: `with_note` (rows_controls) appends the sentence and merges
`details["denoising"]`; below LOW_KEPT the sentence says most of the axis was projected out,
and the report's notes repeat it once per model and layer (pipeline/scorecard/report.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.measures.denoising import LOW_KEPT, DenoisingKept, denoising_kept
from pipeline.measures.results import EmotionVectors


def vectors_kept(vectors: EmotionVectors, layers: Sequence[int],
                 valence: Mapping[str, str]) -> list[DenoisingKept]:
    """One `DenoisingKept` per layer, from the vectors artifact's raw and denoised arrays."""
    return [denoising_kept(vectors.at(layer, denoised=False), vectors.at(layer),
                           vectors.emotions, valence, layer=layer, k=vectors.pcs[layer].k,
                           neutral_share=float(np.sum(vectors.pcs[layer].explained)))
            for layer in layers]


def low_kept_text(kept: DenoisingKept) -> str:
    """The warning: what a reader should conclude when most of the axis is gone."""
    return (f"the neutral projection keeps {kept.axis_kept:.2f} of the vectors' valence axis "
            f"at layer {kept.layer} (a random axis keeps {kept.chance:.2f}): the neutral text "
            f"varies along valence there, so the denoised vectors carry little of it")


def denoising_note(kept: Sequence[DenoisingKept]) -> tuple[str, dict]:
    """The sentence and `details["denoising"]` for one row, one clause per layer."""
    clauses, entries = [], []
    for item in kept:
        pcs, keep = ("PC", "keeps") if item.k == 1 else ("PCs", "keep")
        head = (f"the {item.k} neutral {pcs} at layer {item.layer} ({item.neutral_share:.0%} of "
                f"the neutral variance) {keep}")
        if np.isnan(item.axis_kept):
            clause = (f"{head} {item.variance_kept:.0%} of the vectors' variance; their valence "
                      f"axis cannot be formed ({item.reason})")
        else:
            clause = (f"{head} {item.axis_kept:.2f} of the vectors' valence axis (a random axis "
                      f"keeps {item.chance:.2f}) and {item.variance_kept:.0%} of their variance")
            if item.low:
                clause += (f"; below {LOW_KEPT:g}, most of the axis is projected out: the "
                           "neutral text varies along valence at this layer")
        clauses.append(clause)
        entry = {"layer": item.layer, "k": item.k, "neutral_share": item.neutral_share,
                 "valence_axis_kept": None if np.isnan(item.axis_kept) else item.axis_kept,
                 "chance": item.chance, "variance_kept": item.variance_kept,
                 "n_positive": item.n_positive, "n_negative": item.n_negative,
                 "low": item.low, "threshold": LOW_KEPT}
        if item.reason:
            entry["reason"] = item.reason
        if item.low:
            entry["note"] = low_kept_text(item)
        entries.append(entry)
    if not clauses:
        return "", {}
    return " Denoising: " + "; ".join(clauses) + ".", {"denoising": entries}
