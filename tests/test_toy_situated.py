"""The toy's read-position examples (pipeline/testmodels/toy/situated.py): not test prompts,
and their targets and losses do what they say."""

import json
import random
import re
import tomllib

import pytest
import torch

from pipeline.inputs.stimuli import HARNESS_DIR, PAPER_DIR, load_emotions
from pipeline.testmodels.toy.corpus import (
    CorpusConfig,
    Example,
    StoryWriter,
    build_corpus,
    corpus_sha256,
)
from pipeline.testmodels.toy.lens import LensConfig, PointTarget, point_losses, valence_axis
from pipeline.testmodels.toy.situated import (
    implicit_examples,
    numeric_examples,
    numeric_valence,
    situation_sentences,
)
from pipeline.testmodels.toy.situations import IMPLICIT_SITUATIONS, NUMERIC_TEMPLATES


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9{}' ]", " ", text.lower()).split()


def _grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _test_prompts() -> list[str]:
    paper = json.loads((PAPER_DIR / "implicit_scenarios.json").read_text())
    prompts = [s["prompt"] for s in paper["scenarios"]]
    prompts += [s["prompt"] for s in paper["table3_user_vs_assistant_dissociation"]["scenarios"]]
    prompts += [s["prompt"] for s in paper["table15_antagonistic_and_control_prompts"]["prompts"]]
    harness = tomllib.loads((HARNESS_DIR / "numerical_templates.toml").read_text())
    prompts += [t["template"].replace("{X}", "") for t in harness["templates"]]
    return prompts


def test_no_situation_or_template_shares_four_words_with_a_test_prompt():
    banned = set().union(*(_grams(p) for p in _test_prompts()))
    entries = [s for group in IMPLICIT_SITUATIONS.values() for s in group]
    entries += [t[0].replace("{X}", "") for t in NUMERIC_TEMPLATES]
    shared = {e: _grams(e) & banned for e in entries if _grams(e) & banned}
    assert not shared, shared


def test_mixed_situations_keep_their_emotion_and_share_no_four_words_with_a_test_prompt():
    banned = set().union(*(_grams(p) for p in _test_prompts()))
    labels = {e: "positive" for e in IMPLICIT_SITUATIONS}
    plain = list(implicit_examples(random.Random(0), 48, labels, Example))
    mixed = list(implicit_examples(random.Random(0), 2400, labels, Example, mix=1.0))
    bank = {s for group in IMPLICIT_SITUATIONS.values() for s in group}
    assert all(e.user in bank for e in plain)
    assert sum(e.user not in bank for e in mixed) == len(mixed)
    for example in mixed:  # both halves come from the situations of the example's emotion
        own = {s for text in IMPLICIT_SITUATIONS[example.meta["emotion"]]
               for s in re.split(r"(?<=[.!?])\s+", text)}
        assert set(re.split(r"(?<=[.!?])\s+", example.user)) <= own, example.user
    assert not [e.user for e in mixed if _grams(e.user) & banned]
    assert "situated_mix" not in CorpusConfig(situated=True).describe()


def test_implicit_situations_never_name_an_emotion():
    emotions = {e.lower() for e in load_emotions()}
    named = [(key, s) for key, group in IMPLICIT_SITUATIONS.items() for s in group
             if emotions & set(_words(s))]
    assert not named, named[:5]


def test_numeric_valence_runs_from_the_bad_end_to_the_good_end():
    assert numeric_valence(10, 1, 10, 1000, True) == 1.0  # small dose: good
    assert numeric_valence(1000, 1, 10, 1000, True) == -1.0
    assert numeric_valence(100, 1, 10, 1000, True) == pytest.approx(0.0)
    assert numeric_valence(90, -1, 10, 90, False) == 1.0  # lived long: less bad
    examples = list(numeric_examples(random.Random(0), 2 * len(NUMERIC_TEMPLATES), Example))
    assert all(-1 <= e.meta["valence"] <= 1 and "{X}" not in e.user for e in examples)


def test_situated_examples_are_off_by_default_and_leave_the_rest_unchanged():
    small = dict(n_story_prompt=4, n_story=8, preference_repeats=0, n_scene_preference=10,
                 n_feeling=4, n_describe=4, n_neutral=2)
    plain = build_corpus(CorpusConfig(**small))
    on = build_corpus(CorpusConfig(**small, situated=True, n_implicit=24, n_numeric=36))
    assert not any(e.kind in ("implicit", "numeric") for e in plain)
    kept = [e for e in on if e.kind not in ("implicit", "numeric")]
    assert sorted(map(repr, kept)) == sorted(map(repr, plain))
    assert corpus_sha256(plain) == corpus_sha256(build_corpus(CorpusConfig(**small)))
    assert "situated" not in CorpusConfig().describe()


def test_point_losses_read_only_their_positions():
    generator = torch.Generator().manual_seed(0)
    unembedding = torch.randn(40, 16, generator=generator)
    axis = valence_axis(unembedding, [1, 2], [3, 4])
    hidden = torch.randn(2, 6, 16, generator=generator)
    points = [(PointTarget(2, word=5, valence=0.5),), (PointTarget(4, valence=-1.0),)]
    lens, valence = point_losses(hidden, points, unembedding, 1.0, 0.0, axis, 0.5)
    changed = hidden.clone()
    changed[0, 3] += 10  # not a point
    again = point_losses(changed, points, unembedding, 1.0, 0.0, axis, 0.5)
    assert torch.equal(lens, again[0]) and torch.equal(valence, again[1])
    # At the target cosine the valence term is zero; along the word's row the lens term falls.
    at_target = hidden.clone()
    for row, (position, want) in enumerate(((2, 0.25), (4, -0.5))):
        orth = torch.randn(16, generator=generator)
        orth = orth - (orth @ axis) * axis
        orth = orth / orth.norm()
        at_target[row, position] = want * axis + (1 - want ** 2) ** 0.5 * orth
    assert point_losses(at_target, points, unembedding, 1.0, 0.0, axis, 0.5)[1] < 1e-10
    toward = hidden.clone()
    toward[0, 2] = unembedding[5]
    assert point_losses(toward, points, unembedding, 1.0, 0.0, axis, 0.5)[0] < lens
    assert point_losses(hidden, [(), ()], unembedding, 1.0, 0.0, axis, 0.5) == (None, None)


def test_point_weight_needs_the_lens_on_and_is_off_by_default():
    assert LensConfig().point_weight == 0 and "point_weight" not in LensConfig().describe()
    with pytest.raises(ValueError, match="point weight 1"):
        LensConfig(weight=0, valence_weight=0, level_weight=0, point_weight=1)


def test_a_late_point_start_is_a_share_of_the_steps_off_by_default_and_needs_a_point_weight():
    assert LensConfig().point_start == 0 and "point_start" not in LensConfig().describe()
    assert LensConfig(point_weight=1, point_start=0.6).describe()["point_start"] == 0.6
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=f"point start {bad}: expected a share"):
            LensConfig(point_weight=1, point_start=bad)
    with pytest.raises(ValueError, match="point start 0.5 with point weight 0"):
        LensConfig(point_start=0.5)


def test_dropout_keeps_some_of_the_joined_words_in_order():
    from pipeline.testmodels.toy.situated import mixed_situation

    bank = IMPLICIT_SITUATIONS["calm"]
    whole = mixed_situation(random.Random(3), bank)
    thinned = mixed_situation(random.Random(3), bank, dropout=0.5)
    words, kept = whole.split(), thinned.split()
    assert 0 < len(kept) < len(words)
    position = 0  # the kept words are a subsequence of the joined message
    for word in kept:
        position = words.index(word, position) + 1
    assert mixed_situation(random.Random(3), bank, dropout=1.0).split()[0] in words


def test_situation_stories_put_their_emotions_statements_in_its_stories_only():
    sad = situation_sentences("sad")
    assert sad and all(s in " ".join(IMPLICIT_SITUATIONS["sad"]) for s in sad)
    assert not any(s.endswith("?") for s in sad)
    assert situation_sentences("nostalgic") == ()  # not one of Table 2's twelve
    plain, on = StoryWriter(CorpusConfig()), StoryWriter(CorpusConfig(situation_stories=2))
    story = on.story(random.Random(3), "sad", "A walk")
    assert sum(s in story for s in sad) >= 1  # two draws, possibly the same sentence twice
    assert not any(s in plain.story(random.Random(3), "sad", "A walk") for s in sad)
    # An emotion without situations gets the same story with or without the option.
    assert on.story(random.Random(3), "nostalgic", "A walk") == \
        plain.story(random.Random(3), "nostalgic", "A walk")
    assert "situation_stories" not in CorpusConfig().describe()
    assert CorpusConfig(situation_stories=2).describe()["situation_stories"] == 2
