"""V1-V2: emotion vectors read through the unembedding (paper Table 1)."""

import pytest

from pipeline.scorecard.figures import logit_lens_table
from pipeline.scorecard.rows import v1_row, v2_row


@pytest.mark.criterion("V1")
def test_v01_vectors_promote_their_own_word(runtime, logit_lens, scorecard):
    layer = runtime.spec.analysis_layer
    result = scorecard.record(v1_row(runtime.spec.name, logit_lens, layer), figures={
        "logit-lens": logit_lens_table(logit_lens["layers"][layer]["table1"], runtime.spec.name)})
    scorecard.require(result)


@pytest.mark.criterion("V2")
def test_v02_opposite_valences_push_logits_apart(runtime, logit_lens, scorecard):
    result = scorecard.record(v2_row(runtime.spec.name, logit_lens, runtime.spec.analysis_layer))
    scorecard.require(result)
