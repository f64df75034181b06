"""Controls no public replication has (issue 16): G1 geometry, R1 split-half reliability.

G1 reads the emotion-vectors artifact; the rows' math is in pipeline/measures/ and the rows
in pipeline/rows_controls.py, with planted-signal tests in tests/test_controls_*.py.
"""

import pytest

from pipeline.rows_controls import g1_row
from pipeline.stimuli import load_valence_labels


@pytest.mark.criterion("G1")
def test_g1_first_component_is_valence(runtime, emotion_vectors, scorecard):
    layer = runtime.spec.analysis_layer
    result = scorecard.record(g1_row(
        runtime.spec.name, emotion_vectors.at(layer), emotion_vectors.emotions,
        load_valence_labels(), layer=layer, missing=emotion_vectors.missing))
    scorecard.require(result)
