"""M1 math on planted profiles, the U/A token positions on the Table 3 prompts, and the
mirroring stage's readouts on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from pipeline.inputs.artifacts import ArtifactStore
from pipeline.inputs.registry import get_spec
from pipeline.inputs.stimuli import load_mirroring_prompts
from pipeline.measures.mirroring import (
    POSITIONS,
    SENTENCE_END,
    centred_r,
    correlate,
    mirroring_stats,
    pooled_r,
    probe_values,
)
from pipeline.measures.results import load_mirroring
from pipeline.model.loading import resolve_weights
from pipeline.model.probes import span_means
from pipeline.model.prompts import last_char_token, render_prompt
from pipeline.model.runtime import ModelRuntime
from pipeline.stages.behaviour import MirroringConfig, mirroring_stage
from pipeline.stages.extraction import StageSettings
from pipeline.testmodels.tiny import TINY_MODEL_DIR


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(TINY_MODEL_DIR)


@pytest.mark.parametrize("fmt", ["chat", "raw"])
def test_the_user_readout_is_the_last_question_mark_and_the_period_before_it(tokenizer, fmt):
    for item in load_mirroring_prompts():
        rendered = render_prompt(tokenizer, item.prompt, fmt=fmt, chat_template_args={})
        user = rendered.token_span("user")
        punct = last_char_token(rendered, SENTENCE_END)
        period = last_char_token(rendered, ".")
        assert user[0] <= period < punct < user[1] <= rendered.read_position
        start, end = rendered.offsets[punct]
        assert "?" in rendered.text[start:end]  # every Table 3 prompt ends "What do you think?"
        start, end = rendered.offsets[period]
        assert "." in rendered.text[start:end]


def test_a_user_text_without_sentence_punctuation_is_rejected(tokenizer):
    rendered = render_prompt(tokenizer, "no punctuation here", fmt="raw", chat_template_args={})
    with pytest.raises(ValueError, match="none of"):
        last_char_token(rendered, SENTENCE_END)


def test_probe_values_are_projections_on_unit_vectors():
    acts = np.array([[3.0, 4.0], [1.0, 0.0]])  # [2, d]
    vectors = np.array([[2.0, 0.0], [0.0, -5.0]])  # [E, d]
    assert np.allclose(probe_values(acts, vectors), [[3.0, -4.0], [1.0, 0.0]])


def test_pooled_r_is_pearson_over_every_scenario_emotion_point():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 6)), rng.standard_normal((8, 6))
    assert np.isclose(pooled_r(x, y), np.corrcoef(x.ravel(), y.ravel())[0, 1])


def test_shared_emotion_offsets_inflate_pooled_r_but_not_the_centred_r():
    rng = np.random.default_rng(1)
    offsets = np.array([5.0, -3.0, 8.0, 0.0, -6.0, 2.0])  # each emotion's level, shared
    user = offsets + rng.standard_normal((8, 6))
    assistant = offsets + rng.standard_normal((8, 6))  # independent scenario-level noise
    assert pooled_r(user, assistant) > 0.9
    assert abs(centred_r(user, assistant)) < 0.4


def test_a_planted_scenario_signal_survives_centring():
    rng = np.random.default_rng(2)
    signal = rng.standard_normal((8, 6))
    user = signal + 0.1 * rng.standard_normal((8, 6))
    assistant = 2.0 * signal + 7.0  # same profile, rescaled and shifted
    assert centred_r(user, assistant) > 0.95


def test_the_interval_resamples_scenarios_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    user = rng.standard_normal((8, 6))
    assistant = 0.5 * user + rng.standard_normal((8, 6))
    corr = correlate(user, assistant, n_boot=500)
    assert corr.n_scenarios == 8
    assert corr.ci[0] < corr.r < corr.ci[1]
    exact = correlate(user, 3 * user, n_boot=200)
    assert exact.r == pytest.approx(1.0) and exact.ci == pytest.approx((1.0, 1.0))


def test_scenarios_with_an_empty_continuation_are_left_out_of_that_correlation():
    rng = np.random.default_rng(4)
    user = rng.standard_normal((8, 6))
    response = user.copy()
    response[2] = np.nan
    corr = correlate(user, response, n_boot=100)
    assert corr.n_scenarios == 7 and corr.r == pytest.approx(1.0)


def test_mirroring_stats_checks_the_activation_layout():
    with pytest.raises(ValueError, match="positions"):
        mirroring_stats(np.zeros((8, 2, 4)), np.ones((6, 4)), list("abcdef"), ["t"] * 8)
    with pytest.raises(ValueError, match="vectors for"):
        mirroring_stats(
            np.zeros((8, len(POSITIONS), 4)), np.ones((5, 4)), list("abcdef"), ["t"] * 8
        )


def test_loving_rises_counts_scenarios_where_the_read_position_is_higher():
    acts = np.zeros((8, len(POSITIONS), 2))
    acts[:, 2, 0] = 1.0  # the read position has more of dimension 0 in every scenario ...
    acts[:3, 0, 0] = 2.0  # ... except three where the user token has even more
    acts[:, :, 1] = np.arange(8)[:, None]
    stats = mirroring_stats(
        acts, np.eye(2), ["loving", "calm"], [f"s{i}" for i in range(8)], n_boot=50
    )
    assert stats.loving_rises == 5


@pytest.fixture(scope="module")
def tiny_runtime():
    spec = get_spec("tiny_raw")
    return ModelRuntime(spec, resolve_weights(spec), device="cpu")


def test_the_mirroring_stage_reads_each_position_as_a_prompt_only_pass_would(
    tmp_path, tiny_runtime
):
    runtime = tiny_runtime
    readouts = load_mirroring(
        mirroring_stage(
            runtime,
            ArtifactStore(tmp_path),
            MirroringConfig(continuation_tokens=5),
            StageSettings(log=lambda message: None),
        )
    )
    assert readouts.activations.shape == (8, len(POSITIONS), 64)
    assert len(readouts.continuations) == 8
    prompts = [
        render_prompt(runtime.tokenizer, p.prompt, fmt="raw", chat_template_args={})
        for p in load_mirroring_prompts()
    ]
    spans = [[(p.read_position, p.read_position + 1)] for p in prompts]
    alone = span_means(
        runtime.model, prompts, spans, [readouts.layer], pad_id=runtime.tokenizer.pad_token_id
    )
    for i, prompt in enumerate(prompts):
        assert readouts.positions[i]["read"] == prompt.read_position
        np.testing.assert_allclose(readouts.activations[i, 2], alone[i][0, 0], atol=1e-4)
        n = readouts.positions[i]["response_tokens"]
        assert 0 <= n <= 5
        assert np.isfinite(readouts.activations[i, 3]).all() == (n > 0)
