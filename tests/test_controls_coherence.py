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
