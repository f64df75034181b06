"""The embedding null (issue 16): its vector math on planted signals, the rows' "beats the
null" in each row's direction, a null that cannot be computed, and the null in every report
format (terminal table, Markdown, JSON, HTML)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.measures.embedding_null import null_vectors
from pipeline.measures.implicit import implicit_scores
from pipeline.scorecard.html import scorecard_html
from pipeline.scorecard.report import terminal_lines, write_report_files
from pipeline.scorecard.results import judge, table_rows
from pipeline.scorecard.rows import v1_row, v3_row, v4_row
from pipeline.scorecard.rows_null import (
    beats_null,
    embedding_null_note,
    null_row,
    with_embedding_null,
)

NAMES = ("happy", "sad", "calm", "angry")


def _logit_lens(hits):
    return {"emotions": list(NAMES), "missing": [],
            "own_tokens": [{"emotion": e, "ids": [i], "single_token": True}
                           for i, e in enumerate(NAMES)],
            "layers": [{"hits": list(hits), "pair_dots": [], "table1": {}}]}


def _implicit(diagonal: float, rng_seed: int = 0):
    """Readouts whose cosine with their own emotion's vector is planted at `diagonal`."""
    rng = np.random.default_rng(rng_seed)
    vectors = np.eye(4, 8)
    noise = rng.normal(scale=0.1, size=(4, 8))
    readouts = diagonal * np.eye(4, 8) + noise
    return implicit_scores(readouts, vectors, NAMES)


def test_the_null_vectors_are_centred_and_lose_the_neutral_direction():
    """Plant an emotion signal on axes 0-3 and a large shared nuisance on axis 5 that the
    neutral tokens vary along: the null vectors keep the first and lose the second."""
    d = 8
    sums = np.zeros((4, d))
    sums[np.arange(4), np.arange(4)] = 3.0
    sums[:, 5] = [10.0, -10.0, 4.0, -4.0]  # differs by emotion, but it is the neutral axis
    counts = np.array([1, 1, 1, 1])
    rng = np.random.default_rng(1)
    tokens = rng.normal(scale=0.05, size=(500, d))
    tokens[:, 5] += rng.normal(scale=5.0, size=500)
    built = null_vectors(sums, counts, NAMES, tokens.sum(0), tokens.T @ tokens, len(tokens))
    assert built.raw.shape == built.denoised.shape == (1, 4, d)
    np.testing.assert_allclose(built.raw[0].mean(0), 0, atol=1e-12)
    assert built.pca.k == 1 and abs(built.pca.components[0, 5]) > 0.99
    assert np.abs(built.denoised[0, :, 5]).max() < 0.05  # the nuisance axis is gone
    assert np.argmax(built.denoised[0, :, :4], axis=1).tolist() == [0, 1, 2, 3]


def test_an_emotion_without_a_story_has_a_nan_null_vector():
    sums = np.eye(4, 6)
    built = null_vectors(sums, np.array([1, 0, 1, 1]), NAMES, np.zeros(6), np.eye(6) * 10, 10)
    assert np.isnan(built.denoised[0, 1]).all() and np.isfinite(built.denoised[0, [0, 2, 3]]).all()


def test_a_real_row_that_beats_its_null_says_yes_and_keeps_its_verdict():
    real = v1_row("toy", _logit_lens([1, 1, 1, 0]), 0)
    null = v1_row("toy", _logit_lens([0, 0, 0, 0]), 0)
    noted = with_embedding_null(real, null)
    assert noted.passed == real.passed and noted.value == real.value
    assert "Embedding null" in noted.explanation and "0/4; beats the null: yes" in noted.explanation
    assert noted.details["embedding_null"]["beats"] is True
    assert noted.details["embedding_null"]["value"] == 0.0
    assert noted.explanation.startswith(real.explanation)


def test_a_null_equal_to_the_real_row_is_not_beaten():
    real = v1_row("toy", _logit_lens([1, 1, 0, 0]), 0)
    noted = with_embedding_null(real, v1_row("toy", _logit_lens([1, 0, 1, 0]), 0))
    assert "2/4; beats the null: no" in noted.explanation
    assert noted.details["embedding_null"]["beats"] is False


def test_beating_follows_each_rows_direction():
    """V3 counts hits (higher is better); V4 is a mean rank (lower is better)."""
    strong, flat = _implicit(1.0), _implicit(0.0, rng_seed=3)
    v3 = with_embedding_null(v3_row("toy", strong, 0), v3_row("toy", flat, 0))
    assert v3.value > v3.details["embedding_null"]["value"] and \
        v3.details["embedding_null"]["beats"] is True
    v4 = with_embedding_null(v4_row("toy", strong), v4_row("toy", flat))
    assert v4.value < v4.details["embedding_null"]["value"]
    assert v4.details["embedding_null"]["beats"] is True
    assert "lower is better" in v4.explanation
    reversed_v4 = with_embedding_null(v4_row("toy", flat), v4_row("toy", strong))
    assert reversed_v4.details["embedding_null"]["beats"] is False
    assert beats_null(2.0, 3.0, higher_is_better=False) is True
    assert beats_null(3.0, 3.0, higher_is_better=True) is False
    assert beats_null(float("nan"), 3.0, higher_is_better=True) is None


def test_a_model_without_a_null_is_said_and_a_broken_null_is_an_error():
    real = v1_row("toy", _logit_lens([1, 1, 1, 0]), 0)

    def broken(null):
        raise KeyError("happy")

    with pytest.raises(KeyError):  # a bug in the null's row is an error, never a sentence
        null_row(object(), broken)
    refused, reason = null_row("this model has no embedding-only stream: EmbeddingMismatch",
                               broken)
    assert refused is None and "EmbeddingMismatch" in reason
    noted = with_embedding_null(real, refused, reason)
    assert ("Embedding null: cannot be computed (this model has no embedding-only stream: "
            "EmbeddingMismatch); beats the null: n/a") in noted.explanation
    assert noted.passed == real.passed and noted.details["embedding_null"]["beats"] is None
    sentence, details = embedding_null_note(real, None)
    assert "cannot be computed (no null row)" in sentence and details["embedding_null"]


@pytest.fixture
def rows():
    real = v1_row("toy", _logit_lens([1, 1, 1, 0]), 0)
    with_null = with_embedding_null(real, v1_row("toy", _logit_lens([0, 0, 0, 0]), 0))
    without = judge("V7", "toy", 10.0, (5.0, 15.0), value_text="10", explanation="x.")
    return [(with_null, "passed" if with_null.passed else "failed"),
            (without, "passed" if without.passed else "failed")]


def test_the_null_is_shown_in_every_report_format(rows, tmp_path):
    cells = table_rows(rows)
    assert cells[0][-2] == "0/4 (beaten)" and cells[1][-2] == ""
    assert "embedding null" in terminal_lines(rows)[0] and "0/4 (beaten)" in \
        terminal_lines(rows)[0]
    write_report_files(tmp_path, rows, {}, {})
    markdown = (tmp_path / "scorecard.md").read_text()
    assert "| embedding null |" in markdown and "0/4 (beaten)" in markdown
    data = json.loads((tmp_path / "scorecard.json").read_text())
    assert "embedding null" in data["meta"]["columns"]
    assert data["results"][0]["details"]["embedding_null"]["beats"] is True
    assert "beats the null: yes" in data["results"][0]["explanation"]
    page = scorecard_html(rows, [], {}, {}, tmp_path)
    assert "<th>embedding null</th>" in page and "<td>0/4 (beaten)</td>" in page
    assert "beats the null: yes" in page
