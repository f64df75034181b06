"""M1: the user's and the assistant's emotions dissociate (paper section 5.1, Figures 10-11).

Probes at the user's last sentence-final punctuation (U) and at the read position (A) on the 8
Table 3 prompts; M1 is their pooled Pearson r. The row also reports the within-emotion-centred r
and the paper's continuation check (how well U and A predict the mean probe values over a short
greedy continuation: paper 0.59 and 0.87).
"""

import pytest

from pipeline.scorecard.figures_behaviour import mirroring_scatter
from pipeline.scorecard.rows import m1_row, mirroring_at


@pytest.fixture(scope="session")
def mirroring(mirroring_readouts, emotion_vectors, mirroring_emotions):
    return mirroring_at(mirroring_readouts, emotion_vectors, mirroring_emotions,
                        mirroring_readouts.layer)


@pytest.mark.criterion("M1")
def test_m1_user_and_assistant_emotions_dissociate(
    runtime, mirroring, mirroring_readouts, scorecard
):
    result = m1_row(runtime.spec.name, mirroring, mirroring_readouts, mirroring_readouts.layer)
    result = scorecard.record(
        result, figures={"mirroring": mirroring_scatter(mirroring, runtime.spec.name)}
    )
    scorecard.require(result)
