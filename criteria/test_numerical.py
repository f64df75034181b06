"""V5-V6: probes at the read position track a number's meaning (paper Figure 3).

Only the Tylenol wording and 12 of the 24 expected signs are the paper's; the other templates,
every X value and the remaining signs are harness-authored (data/harness/numerical_templates.toml),
and every row says so.
"""

import pytest

from pipeline.scorecard.figures import numerical_grid
from pipeline.scorecard.rows import numerical_at, v5_row, v6_row


@pytest.fixture(scope="session")
def numerical(runtime, readouts, emotion_vectors):
    return numerical_at(readouts, emotion_vectors, runtime.spec.analysis_layer)


@pytest.mark.criterion("V5")
def test_v05_probes_move_with_numbers_in_the_expected_direction(runtime, numerical, scorecard):
    result = v5_row(runtime.spec.name, numerical, runtime.spec.analysis_layer)
    result = scorecard.record(result, figures={"numerical-grid": numerical_grid(
        numerical, runtime.spec.name)})
    scorecard.require(result)


@pytest.mark.criterion("V6")
def test_v06_probes_move_with_numbers_strongly(runtime, numerical, scorecard):
    result = scorecard.record(v6_row(runtime.spec.name, numerical))
    scorecard.require(result)
