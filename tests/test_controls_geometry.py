"""Planted signals for G1 (PC1 of the emotion vectors against valence): no model, seeded arrays.

As in tests/test_rows_known_answers.py: vectors whose main axis is valence give PASS, isotropic
noise gives FAIL, and vectors built so that |r(PC1, valence)| sits just either side of the
">= 0.5" threshold fall on the documented sides (Pearson r is not exact in floating point, so
the sides are 0.49 and 0.51).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.inputs.stimuli import load_emotions, load_valence_labels
from pipeline.measures.geometry import component_alignment, principal_components
from pipeline.scorecard.results import load_criteria
from pipeline.scorecard.rows_controls import g1_row

MODEL = "planted"
EMOTIONS = load_emotions()
VALENCE = load_valence_labels()
SIGN = np.array([1.0 if VALENCE[e] == "positive" else -1.0 for e in EMOTIONS])
D = 64


def test_g1_threshold_is_the_documented_one():
    spec = load_criteria()["G1"]
    assert (spec.direction, spec.threshold, spec.paper) == (">=", 0.5, 0.81)


def test_pca_recovers_a_planted_axis_and_its_variance_share():
    rng = np.random.default_rng(0)
    axis = rng.normal(size=D)
    axis /= np.linalg.norm(axis)
    vectors = 3.0 * SIGN[:, None] * axis + 0.1 * rng.normal(size=(len(EMOTIONS), D))
    pcs = principal_components(vectors)
    assert pcs.explained[0] > 0.9
    assert abs(np.corrcoef(pcs.scores[:, 0], SIGN)[0, 1]) > 0.99


def _planted(strength: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return strength * SIGN[:, None] * rng.normal(size=D) + rng.normal(size=(len(EMOTIONS), D))


def test_g1_passes_when_valence_is_the_main_axis():
    result = g1_row(MODEL, _planted(3.0), EMOTIONS, VALENCE, layer=0, n_boot=200)
    assert result.value > 0.95 and result.passed, result.sentence()
    assert result.harness_authored and "G2" in result.explanation


def test_g1_fails_on_isotropic_noise():
    result = g1_row(MODEL, _planted(0.0), EMOTIONS, VALENCE, layer=0, n_boot=200)
    assert result.value < 0.3 and not result.passed, result.sentence()


def test_g1_sign_of_the_component_does_not_matter():
    vectors = _planted(3.0)
    assert g1_row(MODEL, -vectors, EMOTIONS, VALENCE, layer=0, n_boot=50).value == pytest.approx(
        g1_row(MODEL, vectors, EMOTIONS, VALENCE, layer=0, n_boot=50).value)


def _orthogonal(rng, against: list[np.ndarray]) -> np.ndarray:
    """A standardised random vector orthogonal to the constant and to every vector given."""
    basis = np.column_stack([np.ones(len(EMOTIONS)), *against])
    x = rng.normal(size=len(EMOTIONS))
    x -= basis @ np.linalg.lstsq(basis, x, rcond=None)[0]
    return x / x.std()


def _at_r(target: float, seed: int = 4) -> np.ndarray:
    """PC1 scores with Pearson r = target against valence exactly (up to rounding): column 0
    has variance 1 and column 1, uncorrelated with it, 0.01, so PC1 is column 0."""
    rng = np.random.default_rng(seed)
    y = (SIGN - SIGN.mean()) / SIGN.std()
    u = _orthogonal(rng, [y])
    s = target * y + np.sqrt(1 - target**2) * u
    t = _orthogonal(rng, [y, u])
    vectors = np.zeros((len(EMOTIONS), D))
    vectors[:, 0], vectors[:, 1] = s, 0.1 * t
    return vectors


@pytest.mark.parametrize(("target", "verdict"), [(0.51, True), (0.49, False)])
def test_g1_near_its_threshold(target, verdict):
    result = g1_row(MODEL, _at_r(target), EMOTIONS, VALENCE, layer=0, n_boot=50)
    assert result.value == pytest.approx(target, abs=1e-9)
    assert result.passed is verdict, result.sentence()


def test_g1_leaves_out_emotions_without_a_vector():
    vectors = _planted(3.0)
    gone = EMOTIONS[:3]
    vectors[:3] = np.nan
    result = g1_row(MODEL, vectors, EMOTIONS, VALENCE, layer=0, missing=gone, n_boot=50)
    assert result.details["n_emotions"] == len(EMOTIONS) - 3 and result.passed
    assert result.details["missing"] == list(gone)


def test_an_emotion_without_a_label_is_left_out_of_the_alignment():
    vectors = _planted(3.0)
    labels = {e: v for e, v in VALENCE.items() if e != EMOTIONS[0]}
    fit = component_alignment(vectors, EMOTIONS, labels, n_boot=20)
    assert EMOTIONS[0] not in fit.emotions and len(fit.emotions) == len(EMOTIONS) - 1


def test_nan_vectors_are_a_one_sentence_error():
    vectors = _planted(3.0)
    vectors[0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf; drop the emotions without a vector"):
        principal_components(vectors)
