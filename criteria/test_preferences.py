"""V7-V9: the model has activity preferences and its emotion probes track them (paper Fig. 4)."""

import numpy as np
import pytest

from pipeline.inputs.stimuli import load_valence_labels
from pipeline.measures.results import load_items
from pipeline.measures.text_baseline import text_cosines
from pipeline.scorecard.figures_preferences import (
    category_ratings,
    correlation_bars,
    strength_histogram,
)
from pipeline.scorecard.rows import v7_row, v8_row, v9_row
from pipeline.scorecard.rows_controls import preference_text_margin, with_note
from pipeline.scorecard.rows_null import null_row, with_embedding_null


@pytest.fixture(scope="session")
def activity_text_values(stories, baseline_preferences):
    """(emotions, [64, E]): each activity's words against each emotion's stories' words, the
    text-only stand-in for the probe values (issue 16)."""
    by_emotion: dict[str, list[str]] = {}
    for item in load_items(stories):
        by_emotion.setdefault(item["emotion"], []).append(item["text"])
    return text_cosines([a.text for a in baseline_preferences.activities], by_emotion)


@pytest.mark.criterion("V7")
def test_v07_model_has_activity_preferences(runtime, baseline_preferences, baseline_signal,
                                            scorecard):
    prefs = baseline_preferences
    paper = np.array([a.elo for a in prefs.activities], dtype=float)
    result = scorecard.record(v7_row(runtime.spec.name, prefs, baseline_signal), figures={
        "category-ratings": category_ratings(prefs.ratings, prefs.categories, runtime.spec.name,
                                             paper_elo=paper)})
    scorecard.require(result)


@pytest.mark.criterion("V8")
def test_v08_preference_follows_valence(runtime, activity_probes, baseline_preferences,
                                        preference_r, baseline_signal, activity_text_values,
                                        embedding_null, scorecard):
    valence = load_valence_labels()
    ratings = baseline_preferences.ratings
    result = v8_row(runtime.spec.name, activity_probes.emotions, activity_probes.values,
                    ratings, valence, signal=baseline_signal)
    result = with_note(result, *preference_text_margin(
        "V8", result.value, *activity_text_values, ratings, valence))
    result = with_embedding_null(result, *null_row(embedding_null, lambda null: v8_row(
        runtime.spec.name, null.vectors.emotions, null.probe_values, ratings, valence,
        signal=baseline_signal)))
    result = scorecard.record(result, figures={"correlation-bars": correlation_bars(
        activity_probes.emotions, preference_r, valence, runtime.spec.name,
        n_activities=len(baseline_preferences.activities))})
    scorecard.require(result)


@pytest.mark.criterion("V9")
def test_v09_many_emotions_correlate_with_preference(runtime, activity_probes,
                                                      baseline_preferences, preference_r,
                                                      baseline_signal, activity_text_values,
                                                      embedding_null, scorecard):
    ratings = baseline_preferences.ratings
    result = v9_row(runtime.spec.name, activity_probes.emotions, activity_probes.values,
                    ratings, activity_probes.layers, signal=baseline_signal)
    result = with_note(result, *preference_text_margin(
        "V9", result.value, *activity_text_values, ratings, load_valence_labels()))
    result = with_embedding_null(result, *null_row(embedding_null, lambda null: v9_row(
        runtime.spec.name, null.vectors.emotions, null.probe_values, ratings, (),
        signal=baseline_signal)))
    result = scorecard.record(result, figures={"r-histogram": strength_histogram(
        preference_r, runtime.spec.name)})
    scorecard.require(result)
