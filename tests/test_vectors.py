"""Vector math: planted directions come back, projections remove exactly their subspace."""

import numpy as np
import pytest

from pipeline.measures.vectors import (
    center_across_emotions,
    cosine,
    emotion_means,
    empty_emotions,
    pca_from_moments,
    project_out,
)


def test_a_planted_emotion_direction_is_recovered():
    rng = np.random.default_rng(0)
    d, n_emotions, per_emotion = 64, 6, 2000
    planted = rng.normal(size=(n_emotions, d))
    sums = np.zeros((1, n_emotions, d))
    for e in range(n_emotions):
        stories = planted[e] + rng.normal(scale=3.0, size=(per_emotion, d)) + 5.0  # shared offset
        sums[0, e] = stories.sum(0)
    vectors = center_across_emotions(emotion_means(sums, np.full(n_emotions, per_emotion),
                                                   [str(i) for i in range(n_emotions)]))
    truth = planted - planted.mean(0)
    assert cosine(vectors[0], truth).min() >= 0.99


def test_an_emotion_with_no_stories_has_a_nan_vector_and_the_others_are_centred_without_it():
    names = ["afraid", "grief-stricken", "calm"]
    sums = np.zeros((1, 3, 2))
    sums[0, 0], sums[0, 2] = [4.0, 0.0], [0.0, 8.0]
    counts = np.array([2, 0, 4])
    assert empty_emotions(counts, names) == ["grief-stricken"]
    vectors = center_across_emotions(emotion_means(sums, counts, names))
    assert np.isnan(vectors[0, 1]).all()
    # means (2, 0) and (0, 2); centred on their own mean (1, 1), not dragged towards a zero
    np.testing.assert_allclose(vectors[0, [0, 2]], [[1.0, -1.0], [-1.0, 1.0]])


def test_no_emotion_with_a_story_is_an_error_that_says_how_to_fix_it():
    with pytest.raises(ValueError, match="none of the 2 emotions has a usable story.*--scale"):
        emotion_means(np.zeros((1, 2, 3)), np.array([0, 0]), ["afraid", "grief-stricken"])


def _moments(tokens):
    return tokens.sum(0), tokens.T @ tokens, len(tokens)


def test_pca_keeps_the_smallest_k_explaining_half_the_variance():
    rng = np.random.default_rng(1)
    scales = np.array([10.0, 6.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    tokens = rng.normal(size=(20_000, 8)) * scales + 7.0  # non-zero mean: PCA must centre
    pca = pca_from_moments(*_moments(tokens))
    variance = scales**2 / (scales**2).sum()  # 0.62, 0.22, ...: first PC alone passes 50%
    assert pca.k == 1
    assert pca.explained[0] == pytest.approx(variance[0], abs=0.02)
    assert abs(pca.components[0, 0]) > 0.99


def test_projection_leaves_no_component_in_the_removed_subspace():
    rng = np.random.default_rng(2)
    tokens = rng.normal(size=(5_000, 16)) @ rng.normal(size=(16, 16))
    pca = pca_from_moments(*_moments(tokens), fraction=0.9)
    vectors = rng.normal(size=(171, 16))
    cleaned = project_out(vectors, pca.components)
    assert np.abs(cleaned @ pca.components.T).max() < 1e-10
    # and nothing orthogonal to the subspace is touched
    residual = vectors - vectors @ pca.components.T @ pca.components
    np.testing.assert_allclose(cleaned, residual, atol=1e-12)
