"""Preference steering: the bugs that decided other replications, pinned (issue 5, item 5).

Steering both activities instead of the steered one, a flipped even/odd split, spans shifted by
left padding, and steering that leaks into control prompts each change V10 silently; every test
here fails loudly instead. The model is the shipped tiny Llama, so these run on CPU in seconds.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.inputs.experiment import CONTROL_SEED, EXEMPLARS
from pipeline.inputs.stimuli import ACTIVITY_CATEGORIES, load_activities, load_emotions
from pipeline.model.ab_pass import (
    Steering,
    choice_readout,
    encode_batches,
    plan_batches,
    preference_pass,
    resolve_choice_tokens,
)
from pipeline.model.hooks import check_layers
from pipeline.model.steering_plan import (
    prompt_has_steered,
    select_emotions,
    steered_activities,
    steering_mask,
)
from pipeline.model.steering_scale import random_directions, steering_vectors

STEER_LAYER = 2  # the tiny models' registry steering layer
ACTIVITIES = load_activities()
STEERED = steered_activities(ACTIVITIES)


def groups_of(prompts):
    return [int(prompt_has_steered(p, set(STEERED))) for p in prompts]


def encoded(tokenizer, prompts, token_budget=4096):
    rendered = [p.rendered for p in prompts]
    groups = groups_of(prompts)
    plan = plan_batches([len(r.input_ids) for r in rendered], groups, token_budget)
    return encode_batches(rendered, plan, groups, pad_id=tokenizer.pad_token_id)


def a_sample(prompts, per_kind=24):
    """Prompts where only A, only B, both or neither activity is steered, per_kind of each."""
    steered = set(STEERED)
    kinds: dict[tuple[bool, bool], list] = {}
    for p in prompts:
        kinds.setdefault((p.a in steered, p.b in steered), []).append(p)
    return [p for kind in sorted(kinds) for p in kinds[kind][:: max(1, len(kinds[kind]) // per_kind)]]


def vectors_of(model, scale: float) -> dict[int, torch.Tensor]:
    d = model.config.hidden_size
    directions = random_directions([STEER_LAYER], d, seed=1)
    return steering_vectors(directions, strength=scale,
                            mean_norms=np.full(model.config.num_hidden_layers, 3.0))


# ------------------------------------------------------------------------------ the split


def test_steered_split_is_the_1st_3rd_5th_and_7th_activity_of_each_category():
    by_category = {c: [i for i, a in enumerate(ACTIVITIES) if a.category == c]
                   for c in ACTIVITY_CATEGORIES}
    expected = sorted(i for members in by_category.values() for i in members[0::2])
    assert STEERED == expected


def test_steered_split_holds_four_activities_of_every_category_and_32_in_all():
    counts = {c: sum(ACTIVITIES[i].category == c for i in STEERED) for c in ACTIVITY_CATEGORIES}
    assert counts == dict.fromkeys(ACTIVITY_CATEGORIES, 4)
    assert len(STEERED) == 32


def test_steered_split_is_pinned_by_name_so_a_parity_flip_cannot_pass_unnoticed():
    helpful = [ACTIVITIES[i].text for i in STEERED if ACTIVITIES[i].category == "Helpful"]
    assert helpful == [
        "explain complex scientific concepts in simple terms",
        "carefully fact-check and correct misinformation",
        "brainstorm wild and creative ideas without constraints",
        "spend all day writing and debugging Python code",
    ]


def test_even_split_is_the_complement_of_the_odd_split():
    even = steered_activities(ACTIVITIES, "even")
    assert sorted(even + STEERED) == list(range(64))


def test_split_is_the_same_on_every_call():
    assert steered_activities(load_activities()) == steered_activities(ACTIVITIES) == STEERED


# ---------------------------------------------------------------------------- the emotions


def test_exemplars_are_steered_even_when_their_correlation_is_zero():
    emotions = load_emotions()
    r = np.linspace(-0.9, 0.9, len(emotions))
    for name in EXEMPLARS:
        r[emotions.index(name)] = 0.0
    chosen = select_emotions(emotions, r)
    assert len(chosen) == 37
    assert chosen[-2:] == list(EXEMPLARS)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_selection_is_the_top_35_by_absolute_r_plus_the_exemplars(seed):
    emotions = load_emotions()
    r = np.random.default_rng(seed).uniform(-1, 1, len(emotions))
    chosen = select_emotions(emotions, r)
    top = sorted(range(len(emotions)), key=lambda i: -abs(r[i]))[:35]
    assert set(chosen) == {emotions[i] for i in top} | set(EXEMPLARS)
    assert 35 <= len(chosen) <= 37 and len(set(chosen)) == len(chosen)


# ------------------------------------------------------------------------------ the masks


def test_steering_mask_covers_exactly_the_steered_activity_tokens_in_all_4032_prompts(
        tokenizer, prompts):
    _, prompts = prompts
    assert len(prompts) == 4032
    steered = set(STEERED)
    checked = 0
    for batch in encoded(tokenizer, prompts):
        mask = steering_mask(batch, prompts, steered)
        width = batch.input_ids.shape[1]
        for row, index in enumerate(batch.indices):
            p = prompts[index]
            text = p.rendered.text
            # Independent of the pipeline's spans: find the activities in the rendered text,
            # and the padding from the attention mask.
            a_text, b_text = ACTIVITIES[p.a].text, ACTIVITIES[p.b].text
            start = text.rindex(f"(A) {a_text} or (B) {b_text}?")
            chars = []
            if p.a in steered:
                chars.append((start + 4, start + 4 + len(a_text)))
            if p.b in steered:
                b_start = start + len(f"(A) {a_text} or (B) ")
                chars.append((b_start, b_start + len(b_text)))
            pad = width - int(batch.attention_mask[row].sum())
            expected = torch.zeros(width)
            for token, (lo, hi) in enumerate(p.rendered.offsets):
                if hi > lo and any(lo < c1 and hi > c0 for c0, c1 in chars):
                    expected[pad + token] = 1.0
            assert torch.equal(mask[row], expected), (index, text)
            # And nothing of the template: the masked tokens spell the activities exactly.
            ids = batch.input_ids[row][mask[row].bool()].tolist()
            spelled = tokenizer.decode(ids).split()
            wanted = (a_text.split() if p.a in steered else []) + (
                b_text.split() if p.b in steered else [])
            assert spelled == wanted
            checked += 1
    assert checked == 4032


def test_prompts_without_a_steered_activity_get_an_all_zero_mask(tokenizer, prompts):
    _, prompts = prompts
    for batch in encoded(tokenizer, prompts):
        if batch.group == 0:
            assert not steering_mask(batch, prompts, set(STEERED)).any()


def test_every_batch_is_all_steered_or_all_control_prompts(tokenizer, prompts):
    _, prompts = prompts
    groups = groups_of(prompts)
    for batch in encoded(tokenizer, prompts):
        assert {groups[i] for i in batch.indices} == {batch.group}
    assert sum(groups) == 4032 - 32 * 31


# ------------------------------------------------------------------------ the intervention


def test_steering_vector_norm_is_strength_times_the_layer_mean_norm():
    directions = {STEER_LAYER: np.arange(1.0, 65.0)}
    norms = np.array([1.0, 2.0, 7.5, 9.0])
    vector = steering_vectors(directions, strength=0.5, mean_norms=norms)[STEER_LAYER]
    assert vector.norm().item() == pytest.approx(0.5 * 7.5, rel=1e-6)
    assert torch.nn.functional.cosine_similarity(
        vector.double(), torch.arange(1.0, 65.0, dtype=torch.float64), dim=0).item() > 0.999999


def test_random_control_direction_is_seeded_unit_norm_and_matched_in_norm():
    first = random_directions([1, 2], 64, CONTROL_SEED)
    again = random_directions([1, 2], 64, CONTROL_SEED)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert all(np.linalg.norm(v) == pytest.approx(1.0) for v in first.values())
    emotion = steering_vectors({2: np.ones(64)}, strength=0.5, mean_norms=np.full(4, 5.0))[2]
    control = steering_vectors({2: first[2]}, strength=0.5, mean_norms=np.full(4, 5.0))[2]
    assert control.norm().item() == pytest.approx(emotion.norm().item(), rel=1e-6)


def test_hooked_layer_output_is_the_original_plus_the_vector_exactly_where_masked(
        tokenizer, model, prompts):
    fmt, prompts = prompts
    sample = a_sample(prompts, per_kind=6)
    batches = encoded(tokenizer, sample)
    readout = choice_readout(model, resolve_choice_tokens(tokenizer, sample[0].rendered, fmt=fmt))
    masks = {k: steering_mask(b, sample, set(STEERED)) for k, b in enumerate(batches)}
    vectors = vectors_of(model, 0.5)
    seen: dict[str, list[torch.Tensor]] = {"base": [], "steered": []}
    slot = {"name": "base"}
    # The input of the next block is what the steered block handed on, after every hook.
    nxt = check_layers(model, [STEER_LAYER + 1])[STEER_LAYER + 1]
    handle = nxt.register_forward_pre_hook(
        lambda _m, args, kwargs: seen[slot["name"]].append(
            (args[0] if args else kwargs["hidden_states"]).clone()), with_kwargs=True)
    try:
        preference_pass(model, batches, readout)
        slot["name"] = "steered"
        preference_pass(model, batches, readout, steering=Steering(
            (STEER_LAYER,), vectors, masks.__getitem__))
    finally:
        handle.remove()
    for k, (base, steered) in enumerate(zip(seen["base"], seen["steered"], strict=True)):
        weights = masks[k].unsqueeze(-1)  # [B, T, 1]
        assert torch.equal(steered, base + weights * vectors[STEER_LAYER])
        assert torch.equal(steered[masks[k] == 0], base[masks[k] == 0])
        on = masks[k] == 1
        assert not on.any() or (steered[on] != base[on]).all(dim=-1).any()
    assert any(mask.any() for mask in masks.values())


def test_zero_strength_gives_bit_identical_logits_with_and_without_layer_replay(
        tokenizer, model, prompts):
    fmt, prompts = prompts
    sample = a_sample(prompts)
    batches = encoded(tokenizer, sample)
    readout = choice_readout(model, resolve_choice_tokens(tokenizer, sample[0].rendered, fmt=fmt))
    masks = {k: steering_mask(b, sample, set(STEERED)) for k, b in enumerate(batches)}
    zero = Steering((STEER_LAYER,), vectors_of(model, 0.0), masks.__getitem__)
    baseline, cache = preference_pass(model, batches, readout, capture_layer=STEER_LAYER)
    full, _ = preference_pass(model, batches, readout, steering=zero)
    replayed, _ = preference_pass(model, batches, readout, steering=zero, replay=cache)
    assert full == baseline
    assert replayed == baseline


def test_replayed_steered_pass_equals_the_full_steered_forward(tokenizer, model, prompts):
    fmt, prompts = prompts
    sample = a_sample(prompts)
    batches = encoded(tokenizer, sample)
    readout = choice_readout(model, resolve_choice_tokens(tokenizer, sample[0].rendered, fmt=fmt))
    masks = {k: steering_mask(b, sample, set(STEERED)) for k, b in enumerate(batches)}
    steering = Steering((STEER_LAYER,), vectors_of(model, 4.0), masks.__getitem__)
    baseline, cache = preference_pass(model, batches, readout, capture_layer=STEER_LAYER)
    full, _ = preference_pass(model, batches, readout, steering=steering)
    replayed, _ = preference_pass(model, batches, readout, steering=steering, replay=cache)
    keys = sorted(full)
    np.testing.assert_allclose([replayed[k] for k in keys], [full[k] for k in keys],
                               rtol=0, atol=1e-6)
    moved = [abs(full[k] - baseline[k]) for k in keys if sample[k].a in STEERED
             or sample[k].b in STEERED]
    assert max(moved) > 1e-3, "the steering vector did not change any logit"


def test_steering_leaves_prompts_without_a_steered_activity_bit_identical(
        tokenizer, model, prompts):
    fmt, prompts = prompts
    sample = a_sample(prompts)
    batches = encoded(tokenizer, sample)
    readout = choice_readout(model, resolve_choice_tokens(tokenizer, sample[0].rendered, fmt=fmt))
    masks = {k: steering_mask(b, sample, set(STEERED)) for k, b in enumerate(batches)}
    steering = Steering((STEER_LAYER,), vectors_of(model, 4.0), masks.__getitem__)
    baseline, _ = preference_pass(model, batches, readout)
    steered, _ = preference_pass(model, batches, readout, steering=steering)
    control = [k for k, p in enumerate(sample) if not prompt_has_steered(p, set(STEERED))]
    assert control and all(steered[k] == baseline[k] for k in control)


def test_replay_restores_every_block_forward_afterwards(tokenizer, model, prompts):
    fmt, prompts = prompts
    sample = a_sample(prompts, per_kind=2)
    batches = encoded(tokenizer, sample)
    readout = choice_readout(model, resolve_choice_tokens(tokenizer, sample[0].rendered, fmt=fmt))
    _, cache = preference_pass(model, batches, readout, capture_layer=STEER_LAYER)
    preference_pass(model, batches, readout, replay=cache)
    blocks = check_layers(model, [STEER_LAYER])
    assert all("forward" not in block.__dict__ for block in blocks)


def test_replay_below_the_steering_layer_is_refused(tokenizer, model, prompts):
    fmt, prompts = prompts
    sample = a_sample(prompts, per_kind=1)
    batches = encoded(tokenizer, sample)
    readout = choice_readout(model, resolve_choice_tokens(tokenizer, sample[0].rendered, fmt=fmt))
    _, cache = preference_pass(model, batches, readout, capture_layer=STEER_LAYER)
    masks = {k: steering_mask(b, sample, set(STEERED)) for k, b in enumerate(batches)}
    early = Steering((1,), {1: torch.ones(model.config.hidden_size)}, masks.__getitem__)
    with pytest.raises(ValueError, match="replay a layer at or below"):
        preference_pass(model, batches, readout, steering=early, replay=cache)


# --------------------------------------------------------------------------- resumability


class Interrupt(BaseException):
    pass


def fake_vectors():
    from pipeline.measures.results import EmotionVectors

    emotions = load_emotions()
    rng = np.random.default_rng(7)
    raw = rng.standard_normal((4, len(emotions), 64))
    return EmotionVectors(emotions=emotions, raw=raw, denoised=raw, mean_norms=np.full(4, 2.0),
                          pcs=(), counts=np.full(len(emotions), 12), key="planted-for-test")


def test_a_killed_steering_stage_keeps_finished_conditions_and_resumes_to_the_same_result(
        tmp_path, tiny_spec, tiny_location):
    from pipeline.inputs.artifacts import ArtifactStore
    from pipeline.measures.results import load_activity_probes, load_preferences, load_steering
    from pipeline.model.runtime import ModelRuntime
    from pipeline.stages.preferences import (
        PreferenceSettings,
        activity_probes_stage,
        preferences_stage,
        steered_preferences_stage,
    )

    runtime = ModelRuntime(tiny_spec, tiny_location, device="cpu")
    vectors = fake_vectors()
    finished = []

    def kill_after_two(message: str) -> None:
        if "steered_preferences: " in message and " in " in message:
            finished.append(message)
            if len(finished) == 2:
                raise Interrupt

    def run(store, log):
        settings = PreferenceSettings(log=log)
        baseline = load_preferences(preferences_stage(runtime, store, settings, elo_seeds=2))
        probes = load_activity_probes(activity_probes_stage(runtime, store, vectors, settings))
        return steered_preferences_stage(runtime, store, baseline, probes, vectors, settings,
                                         top_k=1)

    resumed_store = ArtifactStore(tmp_path / "resumed")
    with pytest.raises(Interrupt):
        run(resumed_store, kill_after_two)
    resumed = run(resumed_store, lambda message: None)
    # The fresh run reuses the cached baseline and probes (content-addressed, so copying is a
    # valid cache) and computes every steered condition in one go.
    shutil.copytree(tmp_path / "resumed", tmp_path / "fresh",
                    ignore=shutil.ignore_patterns("steered_preferences"))
    fresh = run(ArtifactStore(tmp_path / "fresh"), lambda message: None)

    assert resumed.provenance["result"]["resumed_with"] == 2
    assert fresh.provenance["result"]["resumed_with"] == 0
    a, b = load_steering(resumed), load_steering(fresh)
    assert a.conditions == b.conditions and a.conditions[-1] == "random"
    assert set(EXEMPLARS) <= set(a.conditions)
    np.testing.assert_array_equal(a.logit_diff, b.logit_diff)
    np.testing.assert_array_equal(a.ratings, b.ratings)
    np.testing.assert_array_equal(a.baseline_ratings, load_preferences(
        preferences_stage(runtime, resumed_store, PreferenceSettings(), elo_seeds=2)).ratings)
    assert fresh.provenance["result"]["baseline_reproduction_max_abs"] == 0.0


def test_v11_threshold_is_the_same_fraction_of_a_smaller_steering_plan():
    from pipeline.scorecard.results import count_threshold

    # the spec's 24 of the paper's 36 at (or around) full size, unchanged
    assert [count_threshold(24, 36, n) for n in (35, 36, 37, 40)] == [24, 24, 24, 24]
    # two thirds of a CPU preset's plan, rounded up (never looser than the fraction)
    assert [count_threshold(24, 36, n) for n in (3, 4, 5, 12)] == [2, 3, 4, 8]


def _effects(n: int, agree: int):
    from pipeline.scorecard.rows import Effects

    names = ("blissful", "hostile", *(f"e{k}" for k in range(n - 2)))
    r = np.linspace(-0.9, 0.9, n)
    delta = np.where(np.arange(n) < agree, r * 100, -r * 100)
    return Effects(names, r, delta, np.tile(delta[:, None], (1, 32)), np.zeros(32))


def test_v10_v11_say_when_the_scale_steers_fewer_emotions_and_judge_v11_on_that_n():
    from pipeline.measures.preference_analysis import PreferenceSignal
    from pipeline.scorecard.rows import v10_row, v11_row

    signal = PreferenceSignal(statistic=500.0, dof=63, p_value=1e-9, n_answers=4032,
                              rating_sd=100.0)
    results = SimpleNamespace(layers=(2,), strength=0.5)
    small = v11_row("m", _effects(6, agree=4), signal=signal)
    assert small.threshold == 4 and small.passed, small.sentence()
    assert "this scale steers 6" in small.explanation and "24/36 of n = 6" in small.explanation
    assert not v11_row("m", _effects(6, agree=3), signal=signal).passed
    assert "this scale steers 6" in v10_row("m", _effects(6, 6), results, signal=signal).explanation
    full = v11_row("m", _effects(36, agree=24), signal=signal)
    assert full.threshold == 24 and full.passed and "this scale" not in full.explanation



def test_the_steering_plan_shrinks_with_the_preset_and_is_the_papers_at_full_scale():
    from pipeline.inputs.experiment import N_TOP_EMOTIONS
    from pipeline.inputs.scale import SCALES

    assert SCALES["full"].steered_top_k == SCALES["reduced"].steered_top_k == N_TOP_EMOTIONS
    cpu = [s for s in SCALES.values() if s.steered_top_k < N_TOP_EMOTIONS]
    assert cpu, "some CPU preset must steer fewer emotions"
    # the plan is not part of the corpus key: the same stories serve every plan size
    assert "steered_top_k" not in SCALES["full"].describe()
