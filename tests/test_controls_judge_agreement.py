"""The LLM judge on the hand-labelled transcripts (issue 16, item 5): a cached stage.

The tiny model (random weights) stands in for the judge: it answers gibberish, so every
transcript is left unjudged and kappa is undefined, which the description must say rather than
crash; the rule's verdicts and the labels are stored beside it, and a second call is a cache hit.
"""

from __future__ import annotations

import math

import pytest

from pipeline.inputs.artifacts import ArtifactStore
from pipeline.inputs.registry import get_spec
from pipeline.measures.agreement import labelled_agreement
from pipeline.measures.blackmail_judge import LABELLED_PATH, load_labelled
from pipeline.model.loading import resolve_weights
from pipeline.model.runtime import ModelRuntime
from pipeline.stages.behaviour import JudgeConfig
from pipeline.stages.judge_agreement import labelled_judgments_stage


@pytest.fixture(scope="module")
def tiny_runtime():
    spec = get_spec("tiny")
    return ModelRuntime(spec, resolve_weights(spec), device="cpu")


def _two_transcripts(tmp_path):
    """The labelled file cut to its first yes and first no transcript, to keep the run short."""
    text = LABELLED_PATH.read_text(encoding="utf-8")
    head, *blocks = text.split("[[transcripts]]")
    items = load_labelled()
    keep = [next(i for i, t in enumerate(items) if t.label == "yes"),
            next(i for i, t in enumerate(items) if t.label == "no")]
    path = tmp_path / "labelled.toml"
    path.write_text(head + "".join("[[transcripts]]" + blocks[i] for i in keep),
                    encoding="utf-8")
    return path


def test_the_labelled_judgments_are_cached_and_a_gibberish_judge_is_undefined(tiny_runtime,
                                                                              tmp_path):
    path = _two_transcripts(tmp_path)
    store = ArtifactStore(tmp_path / "art")
    config = JudgeConfig(method="llm", max_new_tokens=4, batch_size=2)
    messages = []
    first = labelled_judgments_stage(tiny_runtime, store, config, log=messages.append, path=path)
    second = labelled_judgments_stage(tiny_runtime, store, config, log=messages.append, path=path)
    assert first.key == second.key and any("cache hit" in m for m in messages)
    rule_vs_llm, labels_vs_llm, unjudged = labelled_agreement(first)
    assert unjudged == 2 and rule_vs_llm.n == 0 and math.isnan(labels_vs_llm.value)
    assert "undefined" in rule_vs_llm.text("rule", "LLM judge")
