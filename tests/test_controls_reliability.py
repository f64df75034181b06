"""Planted signals for R1 (split-half reliability by topic): no model, seeded story means.

Stories whose means carry a per-emotion vector give PASS; pure noise gives FAIL; half vectors
built so that every emotion's split-half cosine is exactly 0.51 or 0.49 fall on the documented
sides of ">= 0.5"; and the small scales (two topics, one topic) give a computed FAIL that says
why, never a crash.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.measures.reliability import split_half, split_topics, topic_sums
from pipeline.scorecard.results import load_criteria
from pipeline.scorecard.rows_controls import r1_row

MODEL = "planted"
N_EMOTIONS, D = 20, 96
EMOTIONS = tuple(f"e{i}" for i in range(N_EMOTIONS))


def _stories(signal: float, n_topics: int = 8, per_call: int = 3, seed: int = 0):
    """Story means = signal * v_emotion + a topic offset + story noise, every (emotion, topic)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(N_EMOTIONS, D))
    topic_offsets = rng.normal(size=(n_topics, D))
    means, emotion_index, topics = [], [], []
    for e in range(N_EMOTIONS):
        for t in range(n_topics):
            for _ in range(per_call):
                means.append(signal * vectors[e] + topic_offsets[t] + rng.normal(size=D))
                emotion_index.append(e)
                topics.append(f"topic{t}")
    return np.array(means), emotion_index, topics


def _row(means, emotion_index, topics, components=None):
    sums = topic_sums(means, emotion_index, topics, N_EMOTIONS, components)
    return r1_row(MODEL, split_half(sums, EMOTIONS, n_boot=100), layer=0)


def test_r1_threshold_is_the_documented_one():
    spec = load_criteria()["R1"]
    assert (spec.direction, spec.threshold) == (">=", 0.5)


def test_topics_split_alternately_and_disjointly():
    a, b = split_topics([f"t{i}" for i in range(7)])
    assert a == ("t0", "t2", "t4", "t6") and b == ("t1", "t3", "t5")
    assert not set(a) & set(b)


def test_r1_passes_on_planted_emotion_vectors():
    result = _row(*_stories(signal=1.0))
    assert result.value > 0.8 and result.passed, result.sentence()
    assert result.details["n_distinct"] == N_EMOTIONS
    assert result.ci[0] > 0.5


def test_r1_fails_on_noise():
    result = _row(*_stories(signal=0.0))
    assert abs(result.value) < 0.3 and not result.passed, result.sentence()
    assert result.details["n_distinct"] < N_EMOTIONS // 2


def test_topic_offsets_shared_by_every_emotion_cancel_in_the_centring():
    # A huge topic offset, identical for all emotions of a topic, is removed by centring
    # across emotions: it must not make noise look reliable.
    means, emotion_index, topics = _stories(signal=0.0)
    offsets = {t: 50.0 * np.random.default_rng(9).normal(size=D) for t in set(topics)}
    means = means + np.array([offsets[t] for t in topics])
    assert not _row(means, emotion_index, topics).passed


def _exact(target: float) -> tuple[np.ndarray, list[int], list[str]]:
    """Every emotion's split-half cosine is exactly `target`: a_e = v_e + c n_e in half A and
    b_e = v_e + c m_e in half B with v, n, m orthonormal and c^2 = 1/target - 1; emotion 2i+1
    is emotion 2i negated, so the centring across emotions changes nothing."""
    basis = np.linalg.qr(np.random.default_rng(5).normal(size=(D, D)))[0].T  # orthonormal rows
    c = np.sqrt(1.0 / target - 1.0)
    means, emotion_index, topics = [], [], []
    for e in range(N_EMOTIONS):
        pair, sign = divmod(e, 2)
        v, n, m = basis[3 * pair], basis[3 * pair + 1], basis[3 * pair + 2]
        a, b = (1 - 2 * sign) * (v + c * n), (1 - 2 * sign) * (v + c * m)
        for t in range(4):  # topics 0, 2 are half A; 1, 3 half B
            means.append(a if t % 2 == 0 else b)
            emotion_index.append(e)
            topics.append(f"topic{t}")
    return np.array(means), emotion_index, topics


@pytest.mark.parametrize(("target", "verdict"), [(0.51, True), (0.49, False)])
def test_r1_near_its_threshold(target, verdict):
    result = _row(*_exact(target))
    assert result.value == pytest.approx(target, abs=1e-9)
    assert result.passed is verdict, result.sentence()


def test_two_topics_give_a_value_but_fail_on_the_missing_interval():
    result = _row(*_stories(signal=1.0, n_topics=2))
    assert result.value > 0.5 and not result.passed
    assert result.unmet_precondition.startswith("only 1 and 1 topic(s) per half")
    assert "FAIL, precondition unmet" in result.sentence()


def test_one_topic_cannot_be_computed_and_says_so():
    result = _row(*_stories(signal=1.0, n_topics=1))
    assert np.isnan(result.value) and not result.passed and result.value_text == "n/a"
    assert "cannot be computed" in result.sentence()


def test_short_stories_and_emotions_missing_from_a_half_are_left_out():
    means, emotion_index, topics = _stories(signal=1.0, n_topics=4)
    # Emotion 0's half-B stories (topics 1 and 3) were all too short: zero means.
    for i, (e, t) in enumerate(zip(emotion_index, topics, strict=True)):
        if e == 0 and t in ("topic1", "topic3"):
            means[i] = 0.0
    result = _row(means, emotion_index, topics)
    assert result.details["unscored"] == ["e0"] and result.details["n_scored"] == N_EMOTIONS - 1
    assert "e0" in result.explanation and result.passed


def test_projecting_out_a_shared_direction_removes_it():
    means, emotion_index, topics = _stories(signal=0.0)
    direction = np.zeros(D)
    direction[0] = 1.0
    # Plant emotion structure only along one axis, then project that axis out: noise remains.
    codes = np.random.default_rng(3).normal(size=N_EMOTIONS) * 20.0
    means[:, 0] += codes[emotion_index]
    assert _row(means, emotion_index, topics).passed
    assert not _row(means, emotion_index, topics, components=direction[None]).passed


def test_mismatched_inputs_are_a_one_sentence_error():
    means, emotion_index, topics = _stories(signal=1.0, n_topics=2)
    with pytest.raises(ValueError, match="expected one row per story"):
        topic_sums(means, emotion_index[:-1], topics, N_EMOTIONS)


def test_chunked_sums_equal_one_pass(monkeypatch):
    import pipeline.measures.reliability as reliability

    means, emotion_index, topics = _stories(signal=1.0, n_topics=3)
    whole = topic_sums(means, emotion_index, topics, N_EMOTIONS)
    monkeypatch.setattr(reliability, "CHUNK", 7)
    chunked = topic_sums(means, emotion_index, topics, N_EMOTIONS)
    assert np.allclose(whole.sums, chunked.sums) and (whole.counts == chunked.counts).all()
