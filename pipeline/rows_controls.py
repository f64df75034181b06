"""Scorecard rows for the controls no public replication has (issue 16): G1, R1.

Like pipeline/rows.py, each `*_row` turns measurements (from pipeline/measures/) into a
`CriterionResult`; the criterion tests (criteria/test_controls.py) call them, and the planted
signal tests (tests/test_controls_*.py) call them on synthetic inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.measures.geometry import component_alignment
from pipeline.scorecard import CriterionResult, judge

VALENCE_SOURCE = ("valence labels are harness-authored from the paper's Table 12 clusters "
                  "(data/harness/valence_labels.toml); no human valence/arousal norms ship "
                  "with a package on the index under a licence that allows use (NRC VAD is "
                  "research-only and not on PyPI), so G2 (PC2 against arousal) waits for norms")


def g1_row(model: str, vectors: np.ndarray, emotions: Sequence[str],
           valence: Mapping[str, str], *, layer: int, missing: Sequence[str] = (),
           n_boot: int = 1000) -> CriterionResult:
    """vectors [E, d] (denoised, one layer); emotions without a vector (`missing`) left out."""
    present = [i for i, e in enumerate(emotions) if e not in set(missing)]
    fit = component_alignment(np.asarray(vectors)[present], [emotions[i] for i in present],
                              valence, component=0, n_boot=n_boot)
    left_out = (f" Left out (no vector): {len(missing)} emotion(s)." if missing else "")
    return judge(
        "G1", model, fit.value, fit.ci,
        value_text=f"{fit.value:.2f}",
        explanation=(
            f"PC1 explains {fit.explained[0]:.0%} of the variance over {len(fit.emotions)} "
            f"emotions (paper 26%), |r| with valence {fit.abs_r[0]:.2f}; PC2 explains "
            f"{fit.explained[1]:.0%} (paper 15%), |r| with valence {fit.abs_r[1]:.2f}. A PC's "
            "sign is arbitrary, so |r|. G2 (PC2 against arousal, paper 0.66) waits for human "
            f"arousal norms.{left_out}"),
        method=(f"PCA over emotions of the denoised vectors at layer {layer}; Pearson r of the "
                "PC1 scores with +1/-1 valence; bootstrap over emotions redoes the PCA"),
        harness_authored=VALENCE_SOURCE,
        details={"layer": layer, "abs_r_pc1": fit.abs_r[0], "abs_r_pc2": fit.abs_r[1],
                 "explained_pc1": fit.explained[0], "explained_pc2": fit.explained[1],
                 "n_emotions": len(fit.emotions), "missing": list(missing)},
    )
