"""Planted answers for the text-only baseline of V3/V4 and V8/V9 (issue 16, item 3): no model.

Stories of each emotion use that emotion's signature words; a scenario that uses its own
emotion's words is a text-baseline hit, one that uses another emotion's words a miss. So the
baseline's V3 count lands where it is planted (12, 8 = V3's threshold, and chance on words
shared by every emotion), and the probe's margin over it is reported with its sign.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.measures.implicit import implicit_scores
from pipeline.measures.text_baseline import (
    emotion_word_vectors,
    text_cosines,
    text_implicit_scores,
    text_vector,
    words,
)
from pipeline.scorecard.rows import v3_row, v4_row
from pipeline.scorecard.rows_controls import preference_text_margin, text_baseline_margin, with_note

TWELVE = tuple(f"emo{i}" for i in range(12))
OTHERS = tuple(f"other{i}" for i in range(20))
SHARED = "the day was long and she walked home past the old house by the river".split()


def _signature(emotion: str) -> list[str]:
    return [f"{emotion}word{k}" for k in range(4)]


def _stories(seed: int = 0) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    out = {}
    for e in TWELVE + OTHERS:
        out[e] = [" ".join(rng.permutation(SHARED + _signature(e) * 2)) for _ in range(5)]
    return out


def _scenarios(n_own: int) -> list[str]:
    """Scenario i uses emotion i's words for the first n_own, emotion i+1's for the rest."""
    return [" ".join(SHARED[:6] + _signature(TWELVE[i if i < n_own else (i + 1) % 12]))
            for i in range(12)]


@pytest.mark.parametrize("n_own", [12, 8, 7, 0])
def test_the_baseline_hits_where_the_words_match(n_own):
    scores = text_implicit_scores(_scenarios(n_own), TWELVE, _stories())
    assert int(scores.diagonal_hits().sum()) == n_own
    assert v3_row("planted", scores, 0).passed is (n_own >= 8)  # V3's own rule on the baseline


def test_words_shared_by_every_emotion_carry_no_signal():
    scenarios = [" ".join(SHARED) for _ in range(12)]
    scores = text_implicit_scores(scenarios, TWELVE, _stories())
    assert np.allclose(scores.raw, 0.0)  # the centring removed them: no decision from them


def test_the_centring_runs_across_every_emotion_given():
    emotions, matrix, vocabulary = emotion_word_vectors(_stories())
    assert len(emotions) == 32 and np.allclose(matrix.mean(axis=0), 0.0)
    assert text_vector("The RIVER, the river end", vocabulary)[vocabulary["river"]] == 2.0
    assert words("Don't 'quote' me") == ["don't", "quote", "me"]


def _probe(n_hits: int, seed: int = 2):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(12, 64))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    targets = [i if i < n_hits else (i + 1) % 12 for i in range(12)]
    return implicit_scores(3.0 * vectors[targets] + 0.05 * rng.normal(size=(12, 64)), vectors,
                           TWELVE)


def test_the_probes_margin_is_reported_with_its_sign():
    text = text_implicit_scores(_scenarios(4), TWELVE, _stories())
    sentence, details = text_baseline_margin("V3", _probe(12), text)
    assert "4/12; the probe's margin +8 (beats it)" in sentence
    assert details["text_baseline"]["probe_margin"] == 8
    sentence, _ = text_baseline_margin("V3", _probe(2), text)
    assert "margin -2 (does not beat it)" in sentence
    sentence, details = text_baseline_margin("V4", _probe(12), text)
    assert details["text_baseline"]["probe_margin"] > 0 and "(beats it)" in sentence


def test_the_note_keeps_the_verdict_and_adds_the_baseline():
    probe = _probe(12)
    row = v4_row("planted", probe)
    noted = with_note(row, *text_baseline_margin(
        "V4", probe, text_implicit_scores(_scenarios(12), TWELVE, _stories())))
    assert noted.passed == row.passed and noted.value == row.value
    assert "Text-only baseline" in noted.sentence() and "text_baseline" in noted.details


def test_a_scenario_emotion_without_stories_is_a_one_sentence_error():
    stories = _stories()
    stories["emo3"] = []
    with pytest.raises(ValueError, match=r"no story for scenario emotion\(s\) \['emo3'\]"):
        text_implicit_scores(_scenarios(12), TWELVE, stories)


# ---------------------------------------------------------------------------------------------
# V8/V9: activities against each emotion's stories

POSITIVE, NEGATIVE = ("emo0", "emo1", "emo2"), ("emo3", "emo4", "emo5")
VALENCE = {e: ("positive" if e in POSITIVE or e.startswith("other") and int(e[5:]) % 2 else
               "negative") for e in TWELVE + OTHERS}


def _activities(planted: bool, n: int = 16, seed: int = 7):
    """Liked activities use positive emotions' words, disliked ones negative emotions' words
    (planted); or every activity uses only the shared words (null). Ratings: liked high."""
    rng = np.random.default_rng(seed)
    texts, ratings = [], []
    for i in range(n):
        liked = i % 2 == 0
        pool = POSITIVE if liked else NEGATIVE
        signature = _signature(pool[i % 3]) if planted else []
        texts.append(" ".join(list(rng.permutation(SHARED))[:5] + signature))
        ratings.append((1600.0 if liked else 1400.0) + rng.normal())
    return texts, np.array(ratings)


def test_the_text_baseline_finds_planted_valence_words_in_the_activities():
    texts, ratings = _activities(planted=True)
    emotions, values = text_cosines(texts, _stories())
    sentence, details = preference_text_margin("V8", 0.0, emotions, values, ratings, VALENCE)
    assert details["text_baseline"]["value"] == 3 and "3+3" in sentence
    assert "margin -3 (does not beat it)" in sentence
    sentence, details = preference_text_margin("V9", 10.0, emotions, values, ratings, VALENCE)
    assert details["text_baseline"]["value"] >= 6  # the six planted emotions at least


def test_activities_without_story_words_leave_the_baseline_uncomputable():
    texts, ratings = _activities(planted=False)
    emotions, values = text_cosines(["zzz qqq"] * len(texts), _stories())
    assert np.allclose(values, 0.0)
    sentence, details = preference_text_margin("V8", 3.0, emotions, values, ratings, VALENCE)
    assert "cannot be computed" in sentence and details == {}
    sentence, details = preference_text_margin("V9", 5.0, emotions, values, ratings, VALENCE)
    assert details["text_baseline"]["value"] == 0 and "(beats it)" in sentence
