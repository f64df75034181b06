"""Layer sweep: the layer-dependent rows (V1-V6, V9, V10, V10_control, V11, M1) at every layer of
`--layers`, reported as a layer x criterion table and a plot (issue 8, item 4).

Readouts and the logit lens are cached at every layer already; activity probes and mirroring
readouts are captured at all sweep layers in one forward pass each. V10/V11 at layer L steer at
L with r read at L: one steered preference stage per layer (on an 8B model about as long as the
default V10 run, per layer; the registry layer reuses the default run's artifact). Per-layer
verdicts are reported, not asserted: the scorecard rows keep their assertions.
"""

import pytest

from pipeline.measures.results import preference_correlations
from pipeline.scorecard.rows import (
    SWEEP_CRITERIA,
    implicit_at,
    m1_row,
    mirroring_at,
    numerical_at,
    steering_effects,
    v1_row,
    v2_row,
    v3_row,
    v4_row,
    v5_row,
    v6_row,
    v9_row,
    v10_control_row,
    v10_row,
    v11_row,
)
from pipeline.scorecard.sweep import sweep_table


def test_layer_sweep(request, harness_options, model_spec, scorecard):
    layers = harness_options.layers
    if layers is None:
        pytest.skip("layer sweep: pass --layers (e.g. --layers 14-24 or 14,16,18) to evaluate "
                    "V1-V6, V9-V11 and M1 at each of those layers")
    # Fixtures are fetched only now, so a run without --layers builds and loads nothing here.
    fixture = request.getfixturevalue
    run = fixture("stage_run")  # the stage graph: layered stages take `layers`
    vectors, readouts, lens = fixture("emotion_vectors"), fixture("readouts"), fixture("logit_lens")
    baseline, signal = fixture("baseline_preferences"), fixture("baseline_signal")
    emotions = fixture("mirroring_emotions")
    spec = fixture("runtime").spec
    name = spec.name
    probes = run.result("activity_probes", layers=layers)
    mirroring = run.result("mirroring", layers=layers)
    results = {}
    for layer in layers:
        implicit, numerical = implicit_at(readouts, vectors, layer), numerical_at(readouts,
                                                                                  vectors, layer)
        at_layer = probes.only(layer)
        if (layer,) == tuple(spec.probe_layers) == tuple(spec.steering_layers):
            # The default V10 run already steered here with the same probes: reuse its artifact.
            steering = fixture("steering_results")
        else:
            steering = run.result("steered_preferences", layers=[layer],
                                  given={"activity_probes": at_layer})
        r = preference_correlations(at_layer, baseline)
        fx = steering_effects(steering, at_layer.emotions, r)
        rows = [
            v1_row(name, lens, layer), v2_row(name, lens, layer),
            v3_row(name, implicit, layer), v4_row(name, implicit),
            v5_row(name, numerical, layer), v6_row(name, numerical),
            v9_row(name, at_layer.emotions, at_layer.values, baseline.ratings, at_layer.layers,
                   signal=signal),
            v10_row(name, fx, steering, signal=signal), v10_control_row(name, fx, signal=signal),
            v11_row(name, fx, signal=signal),
            m1_row(name, mirroring_at(mirroring, vectors, emotions, layer), mirroring, layer),
        ]
        results[layer] = sorted(rows, key=lambda row: SWEEP_CRITERIA.index(row.id))
    payload = scorecard.note_layer_sweep(name, sweep_table(name, spec.analysis_layer, results))
    assert payload["layers"] == list(layers)
