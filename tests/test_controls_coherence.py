"""Steering coherence (issue 16): the steered model's perplexity on held-out neutral texts
against the unsteered model's, beside V10, V11, V10_control, B1 and B2 (pipeline/measures/
coherence.py, pipeline/stages/coherence.py, pipeline/scorecard/rows_coherence.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.measures.coherence import (
    BROKEN_NATS,
    BROKEN_RATIO,
    coherence_ratio,
    ratio_text,
    summarize,
)
from pipeline.stages.behaviour import BlackmailConfig

RNG = np.random.default_rng(7)
BASE = RNG.uniform(2.0, 5.0, size=16)  # plausible mean NLLs of 16 texts, nats per token


# --- the pure ratio ---------------------------------------------------------------------------


def test_identical_nlls_give_ratio_one_and_not_broken():
    found = coherence_ratio(BASE, BASE.copy())
    assert found.ratio == 1.0 and found.ci == (1.0, 1.0) and found.delta_nats == 0.0
    assert not found.broken and found.n_texts == 16


def test_a_planted_shift_of_0_6_nats_is_broken_and_its_interval_holds_it():
    noise = RNG.normal(0.0, 0.05, size=16)
    found = coherence_ratio(BASE, BASE + 0.6 + noise)
    assert found.broken
    assert found.ratio == pytest.approx(math.exp(0.6 + noise.mean()))
    low, high = found.ci
    assert BROKEN_RATIO < low < found.ratio < high


def test_a_small_shift_is_not_broken():
    found = coherence_ratio(BASE, BASE + 0.05)
    assert found.ratio == pytest.approx(math.exp(0.05)) and not found.broken


def test_the_threshold_itself_is_not_broken_and_just_above_it_is():
    assert BROKEN_NATS == pytest.approx(math.log(1.5))
    at = coherence_ratio(BASE, BASE + BROKEN_NATS)
    assert at.ratio == pytest.approx(BROKEN_RATIO)
    assert not coherence_ratio(BASE, BASE + BROKEN_NATS - 1e-9).broken
    assert coherence_ratio(BASE, BASE + BROKEN_NATS + 1e-6).broken


def test_the_ratio_is_paired_over_texts():
    # Texts of very different difficulty, each shifted by the same 0.1: a paired interval is
    # tight; an unpaired one would span the texts' spread.
    found = coherence_ratio(BASE, BASE + 0.1)
    assert found.ci[1] - found.ci[0] < 1e-9


def test_an_overflowing_steered_model_is_an_infinite_ratio():
    steered = BASE.copy()
    steered[3] = np.nan
    found = coherence_ratio(BASE, steered)
    assert math.isinf(found.ratio) and found.broken


def test_a_huge_ratio_is_written_in_three_significant_digits():
    # Gemma 3 270M's random direction at strength 0.5 multiplied perplexity by 3.68e21.
    assert ratio_text(1.0349) == "1.03" and ratio_text(999.0) == "999.00"
    assert ratio_text(3.6830021045213583e21) == "3.68e+21" and ratio_text(math.inf) == "inf"
    found = coherence_ratio(BASE, BASE + 49.66)
    assert found.text().startswith("x3.") and "e+21" in found.text() and len(found.text()) < 40


def test_bad_shapes_and_unsteered_overflow_are_refused():
    with pytest.raises(ValueError, match="two equal non-empty vectors"):
        coherence_ratio(BASE, BASE[:3])
    with pytest.raises(ValueError, match="unsteered NLL is not finite"):
        coherence_ratio(np.full(4, np.inf), np.ones(4))


def test_the_summary_names_the_median_the_worst_and_the_broken():
    steered = np.stack([BASE + 0.01, BASE + 0.02, BASE + 0.9])
    found = summarize(("a", "b", "c"), BASE, steered)
    assert found.median == pytest.approx(math.exp(0.02))
    assert found.worst[0] == "c" and found.broken == ("c",)
    assert found.of("a").ratio == pytest.approx(math.exp(0.01))
    with pytest.raises(ValueError, match="no steered condition"):
        summarize((), BASE, np.zeros((0, 16)))


# --- the stages on the shipped tiny model -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runtime(tiny_spec, tiny_location):
    from pipeline.model.runtime import ModelRuntime

    return ModelRuntime(tiny_spec, tiny_location, device="cpu", scale="smoke")


def _fake_vectors(runtime, mean_norm: float):
    from pipeline.measures.results import EmotionVectors

    n_layers = runtime.spec.n_layers
    d = runtime.model.config.hidden_size
    raw = np.random.default_rng(1).standard_normal((n_layers, 2, d))
    return EmotionVectors(("calm", "desperate"), raw, raw, np.full(n_layers, mean_norm), (),
                          np.array([3, 3]), key=f"fake-vectors-{mean_norm}")


def _steering(runtime, strength: float):
    from pipeline.inputs.experiment import CONTROL
    from pipeline.measures.results import SteeringResults

    return SteeringResults(("desperate", CONTROL), (0,), np.zeros((2, 1, 1)), np.zeros((2, 1)),
                           np.zeros(1), strength, tuple(runtime.spec.steering_layers),
                           key=f"fake-steering-{strength}")


def test_a_zero_strength_steer_leaves_the_perplexity_exactly_unchanged(tiny_runtime, tmp_path):
    from pipeline.inputs.artifacts import ArtifactStore
    from pipeline.measures.results import load_coherence
    from pipeline.stages.coherence import preference_coherence_stage

    store = ArtifactStore(tmp_path)
    nlls = load_coherence(preference_coherence_stage(
        tiny_runtime, store, _steering(tiny_runtime, 0.0), _fake_vectors(tiny_runtime, 10.0)))
    assert nlls.conditions == ("desperate", "random") and nlls.steered.shape == (2, 16)
    assert np.isfinite(nlls.unsteered).all()
    found = summarize(nlls.conditions, nlls.unsteered, nlls.steered)
    assert [r.ratio for r in found.ratios] == [1.0, 1.0] and not found.broken


def test_the_tiny_models_random_weights_are_at_chance_so_no_steer_shows_damage(tiny_runtime,
                                                                              tmp_path):
    """The tiny model predicts uniformly over its vocabulary whatever its residual stream (mean
    NLL ln 1024 = 6.93), so even a steer 50 times the layer norm leaves the ratio at 1: the
    stage marks such a model as at chance, and the rows say the ratio cannot show damage."""
    from pipeline.inputs.artifacts import ArtifactStore
    from pipeline.measures.results import load_coherence
    from pipeline.stages.coherence import blackmail_coherence_stage

    store = ArtifactStore(tmp_path)
    config = BlackmailConfig(strengths=(0.0, 0.05, 50.0), n_rollouts=1)
    nlls = load_coherence(blackmail_coherence_stage(
        tiny_runtime, store, _fake_vectors(tiny_runtime, 100.0), config))
    assert nlls.conditions == ("desperate+0.050", "desperate+50.000", "calm+0.050",
                               "calm+50.000", "random+0.050", "random+50.000")
    assert nlls.vocab_size == 1024 and nlls.at_chance
    assert nlls.unsteered_perplexity == pytest.approx(1024, rel=0.01)
    found = summarize(nlls.conditions, nlls.unsteered, nlls.steered)
    assert not found.broken and found.worst[1].ratio == pytest.approx(1.0, abs=0.02)


# --- the rows' sentence and every report format -----------------------------------------------


def _nlls(shifts: dict[str, float], vocab_size: int = 50000, base=BASE):
    from pipeline.measures.results import CoherenceNLLs

    names = tuple(shifts)
    return CoherenceNLLs(names, (0.5,) * len(names), tuple(f"t{i}" for i in range(base.size)),
                         base, np.stack([base + shifts[n] for n in names]), key="k",
                         vocab_size=vocab_size)


def _row(model: str = "toy"):
    from pipeline.scorecard.results import judge

    return judge("V10", model, 0.9, (0.8, 0.95), explanation="An effect.")


def test_a_coherent_row_reports_median_worst_and_control_and_is_not_broken():
    from pipeline.scorecard.rows_coherence import coherence_note

    nlls = _nlls({"happy": 0.01, "hostile": 0.05, "sad": 0.02, "random": 0.03})
    sentence, details = coherence_note(nlls, ["happy", "hostile", "sad"], control="random")
    c = details["coherence"]
    assert c["median"] == pytest.approx(math.exp(0.02)) and not c["broken"]
    assert c["worst"]["condition"] == "hostile" and c["control"]["ratio"] == pytest.approx(
        math.exp(0.03))
    assert "median x1.02 over 3 steered conditions" in sentence
    assert "(hostile)" in sentence and "matched-norm random x1.03" in sentence
    assert "not broken" in sentence and "steered model broken" not in sentence


def test_a_broken_row_says_so_and_the_compared_cell_decides():
    from pipeline.scorecard.rows_coherence import coherence_note

    nlls = _nlls({"desperate+0.050": 0.6, "desperate+0.100": 1.2, "random+0.050": 0.0})
    sentence, details = coherence_note(nlls, ["desperate+0.050", "desperate+0.100"],
                                       focus="desperate+0.050", control="random+0.050")
    assert details["coherence"]["broken"] and details["coherence"]["decided_by"] == (
        "desperate+0.050")
    assert "at desperate +0.05" in sentence and "steered model broken" in sentence
    assert details["coherence"]["broken_conditions"] == ["desperate+0.050", "desperate+0.100"]
    # The compared cell intact, a stronger one broken: the row is not broken, the worst is named.
    nlls = _nlls({"desperate+0.050": 0.01, "desperate+0.100": 1.2})
    sentence, details = coherence_note(nlls, ["desperate+0.050", "desperate+0.100"],
                                       focus="desperate+0.050")
    assert not details["coherence"]["broken"] and "(desperate +0.1)" in sentence


def test_coherence_that_cannot_be_computed_says_why():
    from pipeline.scorecard.rows_coherence import coherence_note

    sentence, details = coherence_note(_nlls({"random": 0.0}), ["calm+0.050"])
    assert "cannot be computed (none of the row's conditions (calm+0.050) was steered)" in sentence
    assert details["coherence"]["computed"] is False
    sentence, _ = coherence_note(None, ["calm"], reason="calm has no emotion vector")
    assert sentence == " Steering coherence: cannot be computed (calm has no emotion vector)."


def test_a_model_at_chance_is_marked_uninformative():
    from pipeline.scorecard.rows_coherence import coherence_note

    chance = np.full(16, math.log(1024.0))
    sentence, details = coherence_note(_nlls({"happy": 0.0}, vocab_size=1024, base=chance),
                                       ["happy"])
    assert details["coherence"]["at_chance"] and "uninformative here" in sentence
    assert "perplexity 1024 against a vocabulary of 1024" in sentence


def test_coherence_is_shown_in_every_report_format(tmp_path):
    import json

    from pipeline.scorecard.html import scorecard_html
    from pipeline.scorecard.report import report_notes, terminal_lines, write_report_files
    from pipeline.scorecard.results import render_markdown, table_rows
    from pipeline.scorecard.rows_coherence import coherence_note
    from pipeline.scorecard.rows_controls import with_note

    fine = with_note(_row("toy"), *coherence_note(_nlls({"happy": 0.01}), ["happy"]))
    broken = with_note(_row("toy_random"), *coherence_note(_nlls({"happy": 0.9}), ["happy"]))
    results = [(fine, "passed"), (broken, "passed")]
    assert fine.verdict == broken.verdict == _row().verdict == "PASS"  # verdicts unchanged
    assert fine.explanation.startswith("An effect. Steering coherence")

    terminal = "\n".join(terminal_lines(results))
    assert "V10 (toy): steering coherence x1.01 (median of 1)" in terminal
    assert "V10 (toy_random): steering coherence x2.46 (median of 1)" in terminal
    assert "STEERED MODEL BROKEN" in terminal and "(steered model broken)" in terminal

    markdown = render_markdown(table_rows(results), report_notes(results))
    assert "PASS (steered model broken)" in markdown and "neutral_texts.toml" in markdown
    assert "V10 (toy): steering coherence x1.01" in markdown

    write_report_files(tmp_path, results, {}, {})
    rows = json.loads((tmp_path / "scorecard.json").read_text())["results"]
    assert [r["details"]["coherence"]["broken"] for r in rows] == [False, True]
    assert "Steering coherence" in rows[1]["explanation"]
    assert "steering coherence x2.46" in (tmp_path / "scorecard.md").read_text()

    page = scorecard_html(results, report_notes(results), {}, {}, tmp_path)
    assert "steered model broken: the effect comes with a model" in page
    assert "V10 (toy): steering coherence x1.01" in page
