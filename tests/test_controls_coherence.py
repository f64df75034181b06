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
    summarize,
)

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
    from pipeline.stages.behaviour import BlackmailConfig
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
