"""V3-V4: Table 2 scenarios evoke their emotion at the read position (paper Figure 2)."""

import pytest

from pipeline.inputs.stimuli import load_implicit_scenarios
from pipeline.measures.results import load_items
from pipeline.measures.text_baseline import text_implicit_scores
from pipeline.scorecard.figures import implicit_heatmap
from pipeline.scorecard.rows import implicit_at, v3_row, v4_row
from pipeline.scorecard.rows_controls import text_baseline_margin, with_note
from pipeline.scorecard.rows_null import null_row, with_embedding_null


@pytest.fixture(scope="session")
def implicit(runtime, readouts, emotion_vectors):
    return implicit_at(readouts, emotion_vectors, runtime.spec.analysis_layer)


@pytest.fixture(scope="session")
def text_baseline(implicit, stories):
    """The same V3/V4 decision from the words alone (issue 16): each scenario against the bag
    of words of each emotion's stories, over the scenarios the probe scores."""
    by_emotion: dict[str, list[str]] = {}
    for item in load_items(stories):
        by_emotion.setdefault(item["emotion"], []).append(item["text"])
    prompts = {s.emotion: s.prompt for s in load_implicit_scenarios()}
    return text_implicit_scores([prompts[e] for e in implicit.emotions], implicit.emotions,
                                by_emotion)


def null_implicit(null):
    """The scenarios' read-position embeddings against the embedding null's vectors."""
    return implicit_at(null.readouts, null.vectors, 0)


@pytest.mark.criterion("V3")
def test_v03_diagonal_dominance(runtime, implicit, text_baseline, embedding_null, scorecard):
    name = runtime.spec.name
    result = v3_row(name, implicit, runtime.spec.analysis_layer)
    result = with_note(result, *text_baseline_margin("V3", implicit, text_baseline))
    result = with_embedding_null(result, *null_row(
        embedding_null, lambda null: v3_row(name, null_implicit(null), 0)))
    result = scorecard.record(result, figures={"implicit-heatmap": implicit_heatmap(
        implicit, runtime.spec.name)})
    scorecard.require(result)


@pytest.mark.criterion("V4")
def test_v04_intended_emotion_ranks_high(runtime, implicit, text_baseline, embedding_null,
                                        scorecard):
    name = runtime.spec.name
    result = with_note(v4_row(name, implicit), *text_baseline_margin("V4", implicit,
                                                                     text_baseline))
    result = with_embedding_null(result, *null_row(
        embedding_null, lambda null: v4_row(name, null_implicit(null))))
    result = scorecard.record(result)
    scorecard.require(result)
