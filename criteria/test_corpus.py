"""The story corpus behind every vector: what was generated, and whether every emotion has one.

Not a paper claim and not a scorecard row: a check that the rows above rest on real stories,
with the counts (empty, unparseable, truncated, too short), the usable stories per emotion and a
few samples in the report. An emotion with no usable story has no vector: the check fails and
names it, and every row leaves it out and says so (the rows still run).
"""

import pytest
from safetensors.numpy import load_file

from pipeline.inputs.stimuli import load_emotions
from pipeline.measures.results import load_items

N_SAMPLES = 3
SAMPLE_CHARS = 600


def per_emotion_counts(activations) -> dict[str, int]:
    """Usable stories (50+ tokens) behind each emotion's vector, from the capture's counts."""
    counts = load_file(str(activations.file("activations.safetensors")))["counts"]
    return {e: int(c) for e, c in zip(load_emotions(), counts, strict=True)}


# A scale too small to give every emotion a story (ci on a real model) fails this check by
# design: data/expected_outcomes.toml says so under the key "corpus".
@pytest.mark.outcome("corpus")
def test_every_emotion_has_usable_generated_stories(runtime, stories, activations, scorecard):
    summary = dict(stories.provenance.get("result", {}))
    summary.update({f"capture_{k}": v for k, v in activations.provenance["result"].items()})
    counts = per_emotion_counts(activations)
    minimum = runtime.scale.min_stories
    empty, short = runtime.scale.shortfall(counts)
    summary.update({"usable_stories_per_emotion": counts,
                    "min_stories_at_this_scale": minimum,
                    "emotions_without_story": empty, "emotions_short": short})
    items = load_items(stories)
    step = max(1, len(items) // N_SAMPLES)
    samples = [{"emotion": it["emotion"], "text": it["text"][:SAMPLE_CHARS]}
               for it in items[::step][:N_SAMPLES]]
    scorecard.note_corpus(runtime.spec.name, summary, samples)
    assert not empty and not short, (
        f"{runtime.spec.name} at scale {runtime.scale.name!r}: {len(empty)} emotion(s) have no "
        f"story of 50+ tokens and no vector ({', '.join(empty) or 'none'}); {len(short)} have "
        f"fewer than the {minimum} this scale asks for "
        f"({', '.join(f'{e} {counts[e]}' for e in short) or 'none'}). Every row leaves the "
        "emotions without a vector out and says so; for more stories use a larger --scale or "
        "--stories-file"
    )
