"""How much of the vectors' valence axis the neutral projection keeps (pipeline/measures/
denoising.py, pipeline/scorecard/rows_denoising.py): planted neutral text that varies along
valence loses the axis and is flagged; neutral text orthogonal to it keeps the axis whole; a
random axis keeps sqrt(1 - k/d) on average; the sentence and the report say so."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.measures.denoising import LOW_KEPT, DenoisingKept, denoising_kept
from pipeline.measures.results import EmotionVectors
from pipeline.measures.vectors import pca_from_moments, project_out
from pipeline.scorecard.report import report_notes
from pipeline.scorecard.results import judge
from pipeline.scorecard.rows_controls import with_note
from pipeline.scorecard.rows_denoising import denoising_note, vectors_kept

D = 32
EMOTIONS = [f"e{i}" for i in range(20)]
VALENCE = {e: ("positive" if i < 8 else "negative") for i, e in enumerate(EMOTIONS)}
SIGN = np.array([1.0 if VALENCE[e] == "positive" else -1.0 for e in EMOTIONS])


def _vectors(seed: int = 0, valence_scale: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Centred emotion vectors [E, D] with a valence axis along a known unit direction."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=D)
    axis /= np.linalg.norm(axis)
    raw = rng.normal(scale=0.1, size=(len(EMOTIONS), D)) + valence_scale * SIGN[:, None] * axis
    return raw - raw.mean(axis=0), axis


def _neutral_pcs(directions: np.ndarray, seed: int = 1):
    """The harness's neutral PCA over tokens that vary mostly along `directions` [m, D]."""
    rng = np.random.default_rng(seed)
    tokens = rng.normal(scale=0.05, size=(4000, D))
    tokens += rng.normal(scale=5.0, size=(4000, len(directions))) @ directions
    return pca_from_moments(tokens.sum(0), tokens.T @ tokens, len(tokens))


def _kept(raw, pcs):
    return denoising_kept(raw, project_out(raw, pcs.components), EMOTIONS, VALENCE, layer=1,
                          k=pcs.k, neutral_share=float(pcs.explained.sum()))


def test_neutral_text_along_valence_removes_the_axis_and_is_flagged():
    raw, axis = _vectors()
    pcs = _neutral_pcs(axis[None, :])
    assert pcs.k == 1
    kept = _kept(raw, pcs)
    assert kept.axis_kept < 0.05 and kept.low
    assert kept.chance == pytest.approx(np.sqrt(1 - 1 / D))
    sentence, details = denoising_note([kept])
    assert "most of the axis is projected out" in sentence
    assert details["denoising"][0]["low"] and "varies along valence" in details[
        "denoising"][0]["note"]


def test_neutral_text_orthogonal_to_valence_keeps_the_axis():
    raw, axis = _vectors()
    rng = np.random.default_rng(3)
    other = rng.normal(size=(2, D))
    other -= np.outer(other @ axis, axis)  # both orthogonal to the valence axis
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    pcs = _neutral_pcs(other)
    kept = _kept(raw, pcs)
    # The PCs are estimated, so they are not exactly orthogonal to the axis.
    assert kept.axis_kept > 0.99 and not kept.low
    assert 0 < kept.variance_kept < 1
    sentence, details = denoising_note([kept])
    assert "projected out:" not in sentence and "note" not in details["denoising"][0]


def test_a_random_axis_keeps_sqrt_of_one_minus_k_over_d_on_average():
    rng = np.random.default_rng(11)
    basis = np.linalg.qr(rng.normal(size=(D, D)))[0][:, :8].T  # 8 orthonormal rows
    squares = []
    for seed in range(400):
        raw, _ = _vectors(seed)
        squares.append(denoising_kept(raw, project_out(raw, basis), EMOTIONS, VALENCE,
                                      layer=0, k=8, neutral_share=0.5).axis_kept ** 2)
    assert np.mean(squares) == pytest.approx(1 - 8 / D, abs=0.03)


def test_the_threshold_itself_is_not_low_and_just_below_it_is():
    def at(value):
        return DenoisingKept(layer=0, k=1, neutral_share=0.5, axis_kept=value, chance=0.9,
                             variance_kept=0.8, n_positive=1, n_negative=1)

    assert LOW_KEPT == 0.5
    assert not at(LOW_KEPT).low and at(LOW_KEPT - 1e-9).low and not at(float("nan")).low


def test_an_exact_geometric_case():
    # Two emotions, axis (3, 4) - (-3, -4); removing the second coordinate keeps 3/5 of it.
    raw = np.array([[3.0, 4.0], [-3.0, -4.0]])
    kept = denoising_kept(raw, project_out(raw, np.array([[0.0, 1.0]])), ["a", "b"],
                          {"a": "positive", "b": "negative"}, layer=2, k=1, neutral_share=0.6)
    assert kept.axis_kept == pytest.approx(0.6) and kept.variance_kept == pytest.approx(0.36)
    assert kept.chance == pytest.approx(np.sqrt(0.5)) and not kept.low


def test_emotions_without_a_vector_or_a_label_are_left_out():
    raw, axis = _vectors()
    pcs = _neutral_pcs(axis[None, :])
    denoised = project_out(raw, pcs.components)
    full = _kept(raw, pcs)
    raw_nan, den_nan = raw.copy(), denoised.copy()
    raw_nan[0] = den_nan[0] = np.nan
    gone = denoising_kept(raw_nan, den_nan, EMOTIONS, VALENCE, layer=1, k=1, neutral_share=0.5)
    assert gone.n_positive == full.n_positive - 1 and np.isfinite(gone.axis_kept)
    unlabelled = {e: v for e, v in VALENCE.items() if e != "e19"}
    partial = denoising_kept(raw, denoised, EMOTIONS, unlabelled, layer=1, k=1,
                             neutral_share=0.5)
    assert partial.n_negative == full.n_negative - 1


def test_one_valence_alone_gives_no_axis_and_says_why():
    raw, _ = _vectors()
    only_negative = {e: "negative" for e in EMOTIONS}
    kept = denoising_kept(raw, raw.copy(), EMOTIONS, only_negative, layer=3, k=2,
                          neutral_share=0.5)
    assert np.isnan(kept.axis_kept) and not kept.low and "0 positive" in kept.reason
    sentence, details = denoising_note([kept])
    assert "cannot be formed (0 positive and 20 negative" in sentence
    assert details["denoising"][0]["valence_axis_kept"] is None


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="must both be"):
        denoising_kept(np.zeros((3, 4)), np.zeros((3, 5)), ["a", "b", "c"], VALENCE, layer=0,
                       k=1, neutral_share=0.5)


def test_vectors_kept_reads_the_artifacts_arrays_per_layer():
    raw0, axis = _vectors(0)
    raw1, _ = _vectors(1)
    along, across = _neutral_pcs(axis[None, :]), _neutral_pcs(np.eye(D)[:1])
    vectors = EmotionVectors(
        emotions=tuple(EMOTIONS), raw=np.stack([raw0, raw1]),
        denoised=np.stack([project_out(raw0, along.components),
                           project_out(raw1, across.components)]),
        mean_norms=np.ones(2), pcs=(along, across), counts=np.ones(len(EMOTIONS)), key="k")
    first, second = vectors_kept(vectors, [0, 1], VALENCE)
    assert first.layer == 0 and first.low
    assert second.layer == 1 and not second.low and second.k == across.k


def test_the_report_names_a_low_layer_once_per_model():
    raw, axis = _vectors()
    sentence, details = denoising_note([_kept(raw, _neutral_pcs(axis[None, :]))])
    rows = [with_note(judge(name, "toy", 1.0, (0.5, 1.5), value_text="1", explanation="x."),
                      sentence, details) for name in ("V10", "V11")]
    notes = [n for n in report_notes([(r, "passed") for r in rows]) if "Denoising" in n]
    assert notes == [f"* Denoising (toy): {details['denoising'][0]['note']}."]
    assert rows[0].explanation.endswith(sentence) and "Denoising: the 1 neutral PC at layer 1" \
        in sentence
