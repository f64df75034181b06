"""V10-V11: steering an emotion on the steered activities' tokens moves their ratings (paper 3.4).

A control row steers a matched-norm random direction the same way: an effect that any
perturbation of the activity tokens produces is not an emotion effect.
"""

import numpy as np
import pytest

from pipeline.inputs.experiment import EXEMPLARS
from pipeline.scorecard.figures_preferences import exemplar_panels, steering_scatter
from pipeline.scorecard.rows import steering_effects as effects_of
from pipeline.scorecard.rows import v10_control_row, v10_row, v11_row


@pytest.fixture(scope="session")
def steering_effects(steering_results, activity_probes, preference_r):
    return effects_of(steering_results, activity_probes.emotions, preference_r)


@pytest.mark.criterion("V10")
def test_v10_steering_effect_tracks_probe_correlation(runtime, steering_effects,
                                                      steering_results, baseline_signal,
                                                      scorecard):
    fx = steering_effects
    result = v10_row(runtime.spec.name, fx, steering_results, signal=baseline_signal)
    result = scorecard.record(result, figures={"steering-scatter": steering_scatter(
        fx.names, fx.r, fx.delta, runtime.spec.name, control=float(fx.control.mean()))})
    scorecard.require(result)


@pytest.mark.criterion("V11")
def test_v11_steering_effect_has_the_sign_of_the_correlation(
        runtime, steering_effects, steering_results, baseline_preferences, activity_probes,
        baseline_signal, scorecard):
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
    result = scorecard.record(v11_row(runtime.spec.name, fx, signal=baseline_signal), figures={
        "exemplars": exemplar_panels(panels, runtime.spec.name)} if panels else None)
    scorecard.require(result)


@pytest.mark.criterion("V10_control")
def test_v10_control_random_direction_moves_preferences_less_than_emotions(
        runtime, steering_effects, steering_results, scorecard):
    result = scorecard.record(v10_control_row(runtime.spec.name, steering_effects))
    scorecard.require(result)
