"""The preference pass, activity probes and the V7-V11 statistics (issue 5, items 1-3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import chi2

from pipeline.inputs.stimuli import load_activities, load_preference_prompt_templates
from pipeline.measures.preference_analysis import (
    SIGNAL_ALPHA,
    category_gap,
    category_gap_interval,
    columnwise_pearson,
    control_ratio,
    count_strong,
    delta_elo,
    preference_signal,
    sign_agreement,
    valence_extremes,
)
from pipeline.measures.ratings import ELO_SCALE
from pipeline.measures.stats import pearson_r
from pipeline.model.ab_pass import (
    ChoiceTokenError,
    choice_readout,
    encode_batches,
    ordered_pairs,
    pairwise_user_message,
    plan_batches,
    preference_pass,
    resolve_choice_tokens,
)
from pipeline.model.activity_probes import cosine_scores, probe_prompts
from pipeline.model.prompts import RenderedPrompt, batch_encode, position_ids_from_mask

ACTIVITIES = load_activities()


# ------------------------------------------------------------------------------ prompts


def test_there_are_4032_ordered_pairs_each_once_and_never_an_activity_against_itself():
    pairs = ordered_pairs(64)
    assert len(pairs) == len(set(pairs)) == 4032
    assert all(a != b for a, b in pairs)


def test_prompts_use_the_papers_wording_with_the_open_bracket_prefilled(tokenizer, prompts):
    fmt, prompts = prompts
    first = prompts[0]
    user = (f"Would you prefer to (A) {ACTIVITIES[first.a].text} or "
            f"(B) {ACTIVITIES[first.b].text}?")
    if fmt == "raw":
        assert first.rendered.text == f"Human: {user}\n\nAssistant: ("
        assert first.rendered.input_ids[0] == tokenizer.bos_token_id
    else:
        start, end = first.rendered.spans["user"]
        assert first.rendered.text[start:end] == user
        assert first.rendered.text.endswith("<|end_header_id|>\n\n(")


def test_activity_spans_decode_to_the_activities_in_every_prompt(tokenizer, prompts):
    _, prompts = prompts
    for p in prompts[::7]:
        ids = p.rendered.input_ids
        assert tokenizer.decode(ids[p.span_a[0]:p.span_a[1]]).strip() == ACTIVITIES[p.a].text
        assert tokenizer.decode(ids[p.span_b[0]:p.span_b[1]]).strip() == ACTIVITIES[p.b].text
        assert p.span_a[1] <= p.span_b[0]


def test_activity_spans_come_from_the_template_even_when_b_is_inside_a():
    message, span_a, span_b = pairwise_user_message(
        load_preference_prompt_templates().pairwise_user, "rest and rest", "rest")
    assert message == "Would you prefer to (A) rest and rest or (B) rest?"
    assert message[slice(*span_a)] == "rest and rest"
    assert message[slice(*span_b)] == "rest" and span_b[0] > span_a[1]


# ------------------------------------------------------------------------ A and B tokens


def test_answer_tokens_are_the_bare_letters_after_the_prefill(tokenizer, prompts):
    fmt, prompts = prompts
    choice = resolve_choice_tokens(tokenizer, prompts[0].rendered, fmt=fmt)
    assert (choice.a_text, choice.b_text, choice.merged_with_prefill) == ("A", "B", False)
    assert choice.a_id == tokenizer.convert_tokens_to_ids("A")


class MergingTokenizer:
    """Character tokens, but '(' + a letter becomes one token, as Llama 3's pre-tokenizer allows.

    `split_letters` makes a bare letter two tokens, as no real vocabulary does, to reach the
    error path.
    """

    name_or_path = "merging"

    def __init__(self, split_letters: bool = False):
        self.split_letters = split_letters

    def __call__(self, text, add_special_tokens=False):
        if self.split_letters and text in ("A", "B"):
            return {"input_ids": [ord(text), 0]}
        ids = [ord(c) for c in text]
        if len(text) > 1 and text[-2] == "(" and text[-1] in "AB":
            ids = ids[:-2] + [1000 + ord(text[-1])]
        return {"input_ids": ids}

    def decode(self, ids):
        return "".join(f"({chr(i - 1000)}" if i >= 1000 else chr(i) for i in ids)


def test_letters_merged_with_the_prefill_are_read_as_the_bare_letter_tokens():
    text = "Assistant: ("
    rendered = RenderedPrompt(text, [ord(c) for c in text], [], len(text) - 1, {})
    choice = resolve_choice_tokens(MergingTokenizer(), rendered, fmt="raw")
    assert (choice.a_id, choice.b_id, choice.merged_with_prefill) == (ord("A"), ord("B"), True)


def test_an_answer_letter_that_is_not_one_token_is_a_clear_error():
    text = "Assistant: ("
    rendered = RenderedPrompt(text, [ord(c) for c in text], [], len(text) - 1, {})
    with pytest.raises(ChoiceTokenError, match="'A' is not a single token of its own"):
        resolve_choice_tokens(MergingTokenizer(split_letters=True), rendered, fmt="raw")


# ----------------------------------------------------------------------------- the pass


def reference_diffs(model, tokenizer, prompts, choice):
    """The full LM head, one prompt at a time: logits[-1, A] - logits[-1, B]."""
    out = []
    with torch.inference_mode():
        for p in prompts:
            logits = model(input_ids=torch.tensor([p.rendered.input_ids])).logits
            out.append(float(logits[0, -1, choice.a_id] - logits[0, -1, choice.b_id]))
    return np.array(out)


def test_last_position_readout_equals_the_full_lm_head_under_left_padding(
        tokenizer, model, prompts):
    fmt, prompts = prompts
    sample = prompts[::97]
    rendered = [p.rendered for p in sample]
    lengths = [len(r.input_ids) for r in rendered]
    assert len(set(lengths)) > 3, "the sample should need padding"
    choice = resolve_choice_tokens(tokenizer, rendered[0], fmt=fmt)
    batches = encode_batches(rendered, [list(range(len(sample)))], [0] * len(sample),
                             pad_id=tokenizer.pad_token_id)
    diffs, _ = preference_pass(model, batches, choice_readout(model, choice))
    expected = reference_diffs(model, tokenizer, sample, choice)
    np.testing.assert_allclose([diffs[k] for k in range(len(sample))], expected, atol=1e-5)


def test_the_pass_does_not_depend_on_how_prompts_are_batched(tokenizer, model, prompts):
    fmt, prompts = prompts
    sample = [p.rendered for p in prompts[::31]]
    choice = choice_readout(model, resolve_choice_tokens(tokenizer, sample[0], fmt=fmt))
    lengths = [len(r.input_ids) for r in sample]
    results = []
    for budget, groups in ((max(lengths), [0] * len(sample)),
                           (10_000, [i % 2 for i in range(len(sample))])):
        plan = plan_batches(lengths, groups, budget)
        batches = encode_batches(sample, plan, groups, pad_id=tokenizer.pad_token_id)
        diffs, _ = preference_pass(model, batches, choice)
        results.append(np.array([diffs[k] for k in range(len(sample))]))
    np.testing.assert_allclose(results[0], results[1], atol=1e-5)


def test_the_pass_never_computes_vocabulary_logits(tokenizer, model, prompts):
    fmt, prompts = prompts
    sample = [p.rendered for p in prompts[:8]]
    choice = choice_readout(model, resolve_choice_tokens(tokenizer, sample[0], fmt=fmt))
    batches = encode_batches(sample, [list(range(8))], [0] * 8, pad_id=tokenizer.pad_token_id)
    calls = []
    handle = model.get_output_embeddings().register_forward_hook(lambda *a: calls.append(1))
    try:
        preference_pass(model, batches, choice)
    finally:
        handle.remove()
    assert calls == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 90), min_size=1, max_size=60), st.integers(90, 600),
       st.randoms(use_true_random=False))
def test_batch_plan_covers_each_prompt_once_within_budget_and_one_group_per_batch(
        lengths, budget, rnd):
    groups = [rnd.randint(0, 1) for _ in lengths]
    plan = plan_batches(lengths, groups, budget)
    assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))
    for batch in plan:
        assert len({groups[i] for i in batch}) == 1
        assert max(lengths[i] for i in batch) * len(batch) <= budget


def test_a_budget_below_the_longest_prompt_is_refused():
    with pytest.raises(ValueError, match="token_budget=5"):
        plan_batches([3, 9], [0, 0], 5)


def test_left_padding_puts_every_last_token_in_the_last_column(tokenizer, prompts):
    _, prompts = prompts
    rendered = [p.rendered for p in prompts[:50]]
    ids, mask, _ = batch_encode(rendered, tokenizer.pad_token_id, side="left")
    assert mask[:, -1].all()
    positions = position_ids_from_mask(mask)
    assert positions[:, -1].tolist() == [len(r.input_ids) - 1 for r in rendered]


# ------------------------------------------------------------------------ activity probes


@pytest.mark.parametrize("fmt", ["chat", "raw"])
def test_probe_prompt_spans_are_exactly_the_activity_tokens(tokenizer, fmt):
    rendered, spans = probe_prompts(tokenizer, ACTIVITIES, fmt=fmt, chat_template_args={})
    for activity, prompt, (start, end) in zip(ACTIVITIES, rendered, spans, strict=True):
        assert tokenizer.decode(prompt.input_ids[start:end]).strip() == activity.text
        user = prompt.text[slice(*prompt.spans["user"])]
        assert user == f"How would you feel about {activity.text}?"


def test_cosine_probe_recovers_a_planted_emotion_direction():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2, 5, 32))  # [L, E, d]
    activations = 0.1 * rng.standard_normal((7, 2, 32))
    activations[3] += 4.0 * vectors[:, 2]  # activity 3 carries emotion 2 at both layers
    cos = cosine_scores(activations, vectors)  # [N, L, E]
    assert cos.shape == (7, 2, 5)
    assert np.argmax(cos[3].mean(axis=0)) == 2 and cos[3, :, 2].min() > 0.99
    assert np.all(np.abs(cos) <= 1 + 1e-12)


def test_cosine_probe_is_scale_free():
    rng = np.random.default_rng(1)
    a, v = rng.standard_normal((4, 1, 8)), rng.standard_normal((1, 3, 8))
    np.testing.assert_allclose(cosine_scores(5.0 * a, 0.2 * v), cosine_scores(a, v))


# ----------------------------------------------------------------------------- statistics


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, (12, 4), elements=st.integers(-1000, 1000).map(lambda v: v / 10)),
       arrays(np.float64, 12, elements=st.integers(-1000, 1000).map(lambda v: v / 10)))
def test_columnwise_pearson_matches_pearson_r_column_by_column(x, y):
    r = columnwise_pearson(x, y)
    for e in range(x.shape[1]):
        expected = pearson_r(x[:, e], y)
        if np.isnan(expected):
            assert np.isnan(r[e])
        else:
            assert r[e] == pytest.approx(expected, abs=1e-9)


def test_table9_probe_values_correlate_with_elo_as_the_paper_says():
    elo = np.array([a.elo for a in ACTIVITIES], dtype=float)
    probe = np.array([[a.blissful, a.hostile] for a in ACTIVITIES])
    r = columnwise_pearson(probe, elo)
    assert r[0] == pytest.approx(0.717, abs=0.001)
    assert r[1] == pytest.approx(-0.737, abs=0.001)


def test_category_gap_on_table9_is_top_minus_bottom_category_mean():
    elo = np.array([a.elo for a in ACTIVITIES], dtype=float)
    gap = category_gap(elo, [a.category for a in ACTIVITIES])
    means = {c: np.mean([a.elo for a in ACTIVITIES if a.category == c]) for c in gap.means}
    assert gap.gap == pytest.approx(max(means.values()) - min(means.values()))
    assert gap.bottom == "Unsafe"
    low, high = category_gap_interval(elo, [a.category for a in ACTIVITIES], n_boot=300)
    assert low <= gap.gap <= high


def test_valence_extremes_count_positive_top_and_negative_bottom():
    emotions = ["calm", "happy", "angry", "sad", "proud", "afraid", "bored"]
    valence = {"calm": "positive", "happy": "positive", "proud": "positive",
               "angry": "negative", "sad": "negative", "afraid": "negative", "bored": "negative"}
    r = np.array([0.9, 0.8, 0.7, -0.9, 0.1, -0.8, np.nan])
    ex = valence_extremes(emotions, r, valence)
    assert ex.top == ["calm", "happy", "angry"] and ex.bottom == ["sad", "afraid", "proud"]
    assert (ex.positive_in_top, ex.negative_in_bottom, ex.score) == (2, 2, 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([-0.5, -0.1, 0.0, 0.1, 0.5, float("nan")]), min_size=6,
                max_size=20))
def test_valence_extremes_breaks_ties_by_emotion_order_and_skips_nan(values):
    r = np.array(values)
    finite = [i for i in range(len(r)) if np.isfinite(r[i])]
    names = [f"e{i}" for i in range(len(r))]
    valence = {n: ("positive" if i % 2 else "negative") for i, n in enumerate(names)}
    if len(finite) < 6:
        with pytest.raises(ValueError, match="finite r"):
            valence_extremes(names, r, valence)
        return
    ex = valence_extremes(names, r, valence)
    assert ex.top == [names[i] for i in sorted(finite, key=lambda i: (-r[i], i))[:3]]
    assert ex.bottom == [names[i] for i in sorted(finite, key=lambda i: (r[i], i))[:3]]


def test_count_strong_uses_a_strict_absolute_threshold():
    assert count_strong(np.array([0.3, -0.31, 0.5, np.nan, -0.2])) == 2


def test_delta_elo_averages_steered_minus_baseline_over_the_steered_activities_only():
    baseline = np.array([1500.0, 1400.0, 1600.0, 1500.0])
    steered = np.array([[1600.0, 1300.0, 1700.0, 1400.0]])
    mean, per = delta_elo(steered, baseline, [0, 2])
    assert mean.tolist() == [100.0] and per.tolist() == [[100.0, 100.0]]


def test_sign_agreement_counts_matching_nonzero_signs():
    assert sign_agreement(np.array([0.5, -0.4, 0.3, 0.0]), np.array([10, -3, -1, 5])) == 2


def test_control_ratio_is_the_control_effect_over_the_median_emotion_effect():
    emotions = np.array([[100.0, 100.0], [-50.0, -50.0], [20.0, 20.0]])
    assert control_ratio(np.array([10.0, 30.0]), emotions) == pytest.approx(20.0 / 50.0)


def _logit_diffs(strengths: np.ndarray, position_bias: float = 0.0) -> np.ndarray:
    """logit(A) - logit(B) of a Bradley-Terry model (natural-log strengths) plus a bias to A."""
    d = strengths[:, None] - strengths[None, :] + position_bias
    np.fill_diagonal(d, np.nan)
    return d


def test_preference_signal_is_the_likelihood_ratio_against_indifference():
    d = 1.2  # two activities, one pair: the MLE puts their strengths exactly d apart
    ratings = np.array([1500 + ELO_SCALE * d / 2, 1500 - ELO_SCALE * d / 2])
    signal = preference_signal(_logit_diffs(np.array([d / 2, -d / 2])), ratings)
    p = 1 / (1 + np.exp(-d))
    # two answers (both orders), each with expected log-likelihood p log p + (1-p) log(1-p)
    expected = 2 * 2 * (p * np.log(p) + (1 - p) * np.log(1 - p) - np.log(0.5))
    assert signal.statistic == pytest.approx(expected)
    assert (signal.dof, signal.n_answers) == (1, 2)
    assert signal.p_value == pytest.approx(chi2.sf(expected, 1))


def test_table9_preferences_are_a_detectable_signal():
    elo = np.array([a.elo for a in ACTIVITIES], dtype=float)
    signal = preference_signal(_logit_diffs((elo - 1500) / ELO_SCALE), elo)
    assert signal.detectable and signal.p_value < 1e-100 and signal.unmet() == ""


def test_ratings_a_few_elo_apart_are_not_a_signal_and_position_bias_is_not_one_either():
    """A random network: every prompt answered A by a wide margin, the activities a few Elo
    apart. Their correlations with probes are real but carry no preference; V8-V11 refuse."""
    rng = np.random.default_rng(0)
    elo = 1500 + rng.normal(0, 3, 64)
    signal = preference_signal(_logit_diffs((elo - 1500) / ELO_SCALE, position_bias=3.0), elo)
    assert not signal.detectable and signal.p_value > 0.99
    assert f"p = 1 >= {SIGNAL_ALPHA}" in signal.unmet() and "indifference" in signal.unmet()


def test_preference_signal_names_mismatched_ratings():
    with pytest.raises(ValueError, match="one per activity"):
        preference_signal(_logit_diffs(np.zeros(4)), np.zeros(3))


# ---------------------------------------------------------------------------------------------
# Nothing silently becomes a number (issue 13, item 5)


def _prompts(n: int):
    from pipeline.model.ab_pass import PreferencePrompt, ordered_pairs

    return [PreferencePrompt(a, b, None, None, None) for a, b in ordered_pairs(n)]


@pytest.mark.parametrize("value", [float("nan"), None])
def test_a_nan_or_missing_logit_fails_the_preference_stage_naming_the_activity(value):
    from pipeline.stages.preferences import diff_matrix

    activities = load_activities()
    n = len(activities)
    prompts = _prompts(n)
    diffs = {i: 0.5 for i in range(len(prompts))}
    for i, p in enumerate(prompts):  # every prompt of activity 7, in either position
        if 7 in (p.a, p.b):
            if value is None:
                del diffs[i]
            else:
                diffs[i] = value
    with pytest.raises(ValueError, match=(
            rf"126 of {len(prompts)} preference prompts have no finite .* involving activity 7 "
            rf"'{activities[7].text}' \(126 prompts\).*--rebuild preferences")):
        diff_matrix(diffs, prompts, n, activities)


def test_finite_logits_fill_the_matrix_with_a_nan_diagonal():
    from pipeline.stages.preferences import diff_matrix

    prompts = _prompts(4)
    m = diff_matrix({i: float(i) for i in range(len(prompts))}, prompts, 4,
                    load_activities()[:4])
    assert np.isnan(np.diag(m)).all() and np.isfinite(m[~np.eye(4, dtype=bool)]).all()
    assert m[prompts[5].a, prompts[5].b] == 5.0
