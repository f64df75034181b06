"""V1-V2: emotion vectors read through the unembedding (paper Table 1), each beside the same
count for vectors built at the token embeddings (the embedding null, issue 16)."""

import pytest

from pipeline.scorecard.figures import logit_lens_table
from pipeline.scorecard.rows import v1_row, v2_row
from pipeline.scorecard.rows_null import null_row, with_embedding_null


@pytest.mark.criterion("V1")
def test_v01_vectors_promote_their_own_word(runtime, logit_lens, embedding_null, scorecard):
    layer = runtime.spec.analysis_layer
    name = runtime.spec.name
    result = with_embedding_null(v1_row(name, logit_lens, layer), *null_row(
        embedding_null, lambda null: v1_row(name, null.logit_lens, 0)))
    result = scorecard.record(result, figures={
        "logit-lens": logit_lens_table(logit_lens["layers"][layer]["table1"], name)})
    scorecard.require(result)


@pytest.mark.criterion("V2")
def test_v02_opposite_valences_push_logits_apart(runtime, logit_lens, embedding_null, scorecard):
    name = runtime.spec.name
    result = with_embedding_null(v2_row(name, logit_lens, runtime.spec.analysis_layer),
                                 *null_row(embedding_null,
                                           lambda null: v2_row(name, null.logit_lens, 0)))
    scorecard.require(scorecard.record(result))
