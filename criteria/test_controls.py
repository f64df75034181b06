"""Controls no public replication has (issue 16): G1 geometry, R1 split-half reliability.

G1 reads the emotion-vectors artifact, R1 the per-story means of the activations artifact
(analysis layer) with each story's topic from the stories artifact; the rows' math is in pipeline/measures/ and the rows
in pipeline/rows_controls.py, with planted-signal tests in tests/test_controls_*.py.
"""

import json

import pytest

from pipeline.inputs.stimuli import load_valence_labels
from pipeline.measures.reliability import split_half, topic_sums
from pipeline.measures.results import load_items
from pipeline.scorecard.rows_controls import g1_row, r1_row, with_note
from pipeline.scorecard.rows_denoising import denoising_note, vectors_kept
from pipeline.scorecard.rows_null import null_row, with_embedding_null


@pytest.mark.criterion("G1")
def test_g1_first_component_is_valence(runtime, emotion_vectors, embedding_null, scorecard):
    layer = runtime.spec.analysis_layer
    valence = load_valence_labels()
    result = g1_row(runtime.spec.name, emotion_vectors.at(layer), emotion_vectors.emotions,
                    valence, layer=layer, missing=emotion_vectors.missing)
    # The null's interval is never shown: fewer resamples, the same value.
    result = with_embedding_null(result, *null_row(embedding_null, lambda null: g1_row(
        runtime.spec.name, null.vectors.at(0), null.vectors.emotions, valence, layer=0,
        missing=null.vectors.missing, n_boot=200)))
    # How much of the valence axis the neutral projection left for G1 to find (docs/TOY.md,
    # run 15: denoising can remove it silently).
    result = with_note(result, *denoising_note(vectors_kept(emotion_vectors, [layer], valence)))
    scorecard.require(scorecard.record(result))


def story_topic_sums(activations, stories, emotion_vectors, layer):
    """Per-(topic, emotion) sums of the analysis layer's story means (the activations stage
    keeps one mean per story there), with the neutral PCs of that layer projected out."""
    from safetensors.numpy import load_file

    tensors = load_file(str(activations.file("activations.safetensors")))
    if "story_means" not in tensors:
        return None
    ids = json.loads(activations.file("story_ids.json").read_text())
    by_id = {it["id"]: it for it in load_items(stories)}
    rows = [i for i, story in enumerate(ids) if by_id[story].get("topic") is not None]
    index = {e: i for i, e in enumerate(emotion_vectors.emotions)}
    means = tensors["story_means"]
    return topic_sums(means if len(rows) == len(ids) else means[rows],
                      [index[by_id[ids[i]]["emotion"]] for i in rows],
                      [by_id[ids[i]]["topic"] for i in rows], len(emotion_vectors.emotions),
                      emotion_vectors.pcs[layer].components)


@pytest.mark.criterion("R1")
def test_r1_split_half_reliability_by_topic(runtime, activations, stories, emotion_vectors,
                                            scorecard):
    layer = runtime.spec.analysis_layer
    sums = story_topic_sums(activations, stories, emotion_vectors, layer)
    if sums is None:
        pytest.fail(f"R1: the activations artifact {activations.path} has no per-story means; "
                    "rebuild it with --rebuild activations", pytrace=False)
    split = split_half(sums, emotion_vectors.emotions)
    scorecard.require(scorecard.record(r1_row(runtime.spec.name, split, layer=layer)))
