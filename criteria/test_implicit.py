"""V3-V4: Table 2 scenarios evoke their emotion at the read position (paper Figure 2)."""

import pytest

from pipeline.scorecard.figures import implicit_heatmap
from pipeline.scorecard.rows import implicit_at, v3_row, v4_row


@pytest.fixture(scope="session")
def implicit(runtime, readouts, emotion_vectors):
    return implicit_at(readouts, emotion_vectors, runtime.spec.analysis_layer)


@pytest.mark.criterion("V3")
def test_v03_diagonal_dominance(runtime, implicit, scorecard):
    result = v3_row(runtime.spec.name, implicit, runtime.spec.analysis_layer)
    result = scorecard.record(result, figures={"implicit-heatmap": implicit_heatmap(
        implicit, runtime.spec.name)})
    scorecard.require(result)


@pytest.mark.criterion("V4")
def test_v04_intended_emotion_ranks_high(runtime, implicit, scorecard):
    result = scorecard.record(v4_row(runtime.spec.name, implicit))
    scorecard.require(result)
