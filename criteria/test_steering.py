"""V10-V11: steering an emotion on the steered activities' tokens moves their ratings (paper 3.4).

A control row steers a matched-norm random direction the same way: an effect that any
perturbation of the activity tokens produces is not an emotion effect.
"""

import numpy as np
import pytest

from pipeline.inputs.experiment import CONTROL, EXEMPLARS
from pipeline.inputs.stimuli import load_valence_labels
from pipeline.scorecard.figures_preferences import exemplar_panels, steering_scatter
from pipeline.scorecard.rows import steering_effects as effects_of
from pipeline.scorecard.rows import v10_control_row, v10_row, v11_row
from pipeline.scorecard.rows_coherence import coherence_note
from pipeline.scorecard.rows_controls import with_note
from pipeline.scorecard.rows_denoising import denoising_note, vectors_kept


@pytest.fixture(scope="session")
def steering_effects(steering_results, activity_probes, preference_r):
    return effects_of(steering_results, activity_probes.emotions, preference_r)


@pytest.fixture(scope="session")
def steering_denoising(emotion_vectors, steering_results):
    """How much of the valence axis the neutral projection left in the steered vectors, at
    each steering layer: a steering row that fails because denoising removed the direction
    says so (docs/TOY.md, run 15)."""
    return denoising_note(vectors_kept(emotion_vectors, steering_results.layers,
                                       load_valence_labels()))


def _annotated(result, coherence, names, denoising, **kw):
    """The row with its steering coherence (issue 16) and its vectors' denoising beside it;
    the verdict is unchanged."""
    nlls, reason = coherence
    result = with_note(result, *coherence_note(nlls, names, reason=reason, **kw))
    return with_note(result, *denoising)


@pytest.mark.criterion("V10")
def test_v10_steering_effect_tracks_probe_correlation(runtime, steering_effects,
                                                      steering_results, baseline_signal,
                                                      preference_coherence, steering_denoising,
                                                      scorecard):
    fx = steering_effects
    result = _annotated(v10_row(runtime.spec.name, fx, steering_results, signal=baseline_signal),
                        preference_coherence, fx.names, steering_denoising, control=CONTROL)
    result = scorecard.record(result, figures={"steering-scatter": steering_scatter(
        fx.names, fx.r, fx.delta, runtime.spec.name, control=float(fx.control.mean()))})
    scorecard.require(result)


@pytest.mark.criterion("V11")
def test_v11_steering_effect_has_the_sign_of_the_correlation(
        runtime, steering_effects, steering_results, baseline_preferences, activity_probes,
        baseline_signal, preference_coherence, steering_denoising, scorecard):
    fx = steering_effects
    steered = list(steering_results.steered)
    panels = {}
    for name in (e for e in EXEMPLARS if e in fx.names):  # one without a vector is not steered
        probe = activity_probes.values[:, activity_probes.emotions.index(name)]
        panels[name] = {
            "probe": probe, "baseline": baseline_preferences.ratings,
            "r": np.array(fx.r[fx.names.index(name)]),
            "steered_baseline": baseline_preferences.ratings[steered],
            "delta": fx.per_activity[fx.names.index(name)],
        }
    result = _annotated(v11_row(runtime.spec.name, fx, signal=baseline_signal),
                        preference_coherence, fx.names, steering_denoising, control=CONTROL)
    result = scorecard.record(result, figures={
        "exemplars": exemplar_panels(panels, runtime.spec.name)} if panels else None)
    scorecard.require(result)


@pytest.mark.criterion("V10_control")
def test_v10_control_random_direction_moves_preferences_less_than_emotions(
        runtime, steering_effects, steering_results, baseline_signal, preference_coherence,
        steering_denoising, scorecard):
    fx = steering_effects
    result = _annotated(v10_control_row(runtime.spec.name, fx, signal=baseline_signal),
                        preference_coherence, [*fx.names, CONTROL], steering_denoising,
                        focus=CONTROL)
    result = scorecard.record(result)
    scorecard.require(result)
