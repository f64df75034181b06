"""Steered decoding on the tiny model: the vector reaches every token through the KV cache,
only at the configured layers and strength, and sampling depends on the seed alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipeline.model.hooks import additive_steering, layer_hooks
from pipeline.model.prompts import batch_encode, position_ids_from_mask, render_prompt
from pipeline.model.steered_generation import (
    DecodeSettings,
    _next_tokens,
    decode,
    generate,
)
from pipeline.model.steering_scale import random_directions, steering_vectors, unit_direction
from pipeline.testmodels.tiny import TINY_MODEL_DIR

LAYER = 2
USERS = ["I just lost my job today.", "What do you think about honey that never spoils?", "Hi."]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(TINY_MODEL_DIR)


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def prompts(tokenizer):
    return [render_prompt(tokenizer, u, fmt="chat", chat_template_args={}) for u in USERS]


@pytest.fixture(scope="module")
def steer(model, prompts, tokenizer):
    """A vector 4x the typical residual norm at LAYER: large enough to change every logit."""
    ids, mask, _ = batch_encode(prompts, tokenizer.pad_token_id, side="left")
    with torch.inference_mode():
        hidden = model(
            input_ids=ids,
            attention_mask=mask,
            output_hidden_states=True,
            position_ids=position_ids_from_mask(mask),
        ).hidden_states[LAYER + 1]
    norm = float(hidden[mask.bool()].norm(dim=-1).mean())
    direction = random_directions([LAYER], hidden.shape[-1], seed=7)
    return steering_vectors(direction, strength=4.0, mean_norms=[norm] * (LAYER + 1))


def _decode(model, tokenizer, prompts, steering, n=10, **kwargs):
    ids, mask, shift = batch_encode(prompts, tokenizer.pad_token_id, side="left")
    out = decode(
        model,
        ids,
        mask,
        DecodeSettings(max_new_tokens=n, greedy=True),
        eos_ids=set(),
        pad_id=tokenizer.pad_token_id,
        steering=steering,
        return_logits=True,
        **kwargs,
    )
    return out, ids, mask


def _recompute(model, prompt_ids, new_tokens, vectors, steer_upto=None):
    """Logits [T, V] of one row recomputed from scratch, no cache, hook on positions < steer_upto
    (all positions when None)."""
    ids = torch.tensor([prompt_ids + new_tokens])
    mask = None
    if steer_upto is not None:
        mask = torch.zeros(ids.shape, dtype=torch.float32)
        mask[:, :steer_upto] = 1.0
    with (
        additive_steering(model, list(vectors), vectors, mask=lambda: mask),
        torch.inference_mode(),
    ):
        return model(input_ids=ids, use_cache=False).logits[0].float()


def test_cached_steered_generation_equals_recomputing_the_steered_sequence_without_cache(
    model, tokenizer, prompts, steer
):
    out, _, _ = _decode(model, tokenizer, prompts, steer)
    for row, prompt in enumerate(prompts):
        new = out.tokens[row].tolist()
        logits = _recompute(model, prompt.input_ids, new, steer)
        start = len(prompt.input_ids) - 1  # the logits that predicted generated token 0
        expected = logits[start : start + len(new)]
        torch.testing.assert_close(out.logits[row], expected, atol=2e-4, rtol=1e-4)
        assert new == expected.argmax(-1).tolist()


def test_the_vector_acts_on_generated_tokens_not_only_on_the_prompt(
    model, tokenizer, prompts, steer
):
    out, _, _ = _decode(model, tokenizer, prompts, steer)
    for row, prompt in enumerate(prompts):
        new = out.tokens[row].tolist()
        prompt_only = _recompute(
            model, prompt.input_ids, new, steer, steer_upto=len(prompt.input_ids)
        )
        start = len(prompt.input_ids) - 1
        # Step 0 sees only prompt tokens, so steering the prompt alone reproduces it ...
        torch.testing.assert_close(out.logits[row, 0], prompt_only[start], atol=2e-4, rtol=1e-4)
        # ... but every later step read steered generated tokens, which prompt-only lacks.
        later = (out.logits[row, 1:] - prompt_only[start + 1 : start + len(new)]).abs().amax(-1)
        assert bool((later > 1e-2).all()), later


def test_zero_strength_gives_output_identical_to_no_steering(model, tokenizer, prompts):
    zero = steering_vectors({LAYER: np.ones(64)}, strength=0.0, mean_norms=[1.0] * 4)
    steered, _, _ = _decode(model, tokenizer, prompts, zero)
    plain, _, _ = _decode(model, tokenizer, prompts, None)
    assert torch.equal(steered.tokens, plain.tokens)
    assert torch.equal(steered.logits, plain.logits)


def test_steering_changes_the_greedy_continuation(model, tokenizer, prompts, steer):
    steered, _, _ = _decode(model, tokenizer, prompts, steer)
    plain, _, _ = _decode(model, tokenizer, prompts, None)
    assert not torch.equal(steered.tokens, plain.tokens)


def _layer_outputs(model, tokenizer, prompts, vectors):
    """Every decoder layer's output [B, T, d] as the next layer receives it, plus the real-token
    mask. Read by our own hooks registered after the steering hook: transformers 5 records
    `output_hidden_states` with a hook registered before ours, so it shows a steered layer's
    output before the vector is added."""
    ids, mask, _ = batch_encode(prompts, tokenizer.pad_token_id, side="left")
    seen = {}
    steering = additive_steering(model, list(vectors), vectors, mask=lambda: None)
    reader = layer_hooks(model, range(4), lambda layer, hidden: seen.__setitem__(layer, hidden))
    with steering, reader, torch.inference_mode():
        model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask))
    return seen, mask.bool()


def test_steering_adds_exactly_the_vector_at_the_configured_layer_and_nowhere_earlier(
    model, tokenizer, prompts, steer
):
    steered, real = _layer_outputs(model, tokenizer, prompts, steer)
    plain, _ = _layer_outputs(model, tokenizer, prompts, {})
    for layer in range(LAYER):
        assert torch.equal(steered[layer], plain[layer]), f"layer {layer} was touched"
    delta = (steered[LAYER] - plain[LAYER])[real]  # [n_real_tokens, d]
    torch.testing.assert_close(delta, steer[LAYER].expand_as(delta), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(steered[LAYER + 1], plain[LAYER + 1])  # and it propagates


def test_the_added_vector_scales_linearly_with_strength_and_the_layer_norm():
    direction = {1: np.array([3.0, 4.0]), 2: np.array([0.0, -2.0])}
    vectors = steering_vectors(direction, strength=0.05, mean_norms=[10.0, 20.0, 40.0])
    torch.testing.assert_close(vectors[1], torch.tensor([0.6, 0.8]))  # 0.05 * 20 * (0.6, 0.8)
    torch.testing.assert_close(vectors[2], torch.tensor([0.0, -2.0]))  # 0.05 * 40 * (0, -1)
    doubled = steering_vectors(direction, strength=0.10, mean_norms=[10.0, 20.0, 40.0])
    torch.testing.assert_close(doubled[1], 2 * vectors[1])


def test_a_random_direction_is_fixed_by_its_seed_and_has_unit_norm():
    a = random_directions([1, 2], 64, seed=0)
    b = random_directions([1, 2], 64, seed=0)
    c = random_directions([1, 2], 64, seed=1)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])
    assert not np.array_equal(a[1], a[2])
    assert np.isclose(np.linalg.norm(a[1]), 1.0)


def test_matched_norm_random_and_emotion_vectors_add_vectors_of_equal_norm():
    emotion = {2: np.arange(64, dtype=float)}
    random = random_directions([2], 64, seed=0)
    norms = [5.0, 5.0, 12.5]
    assert np.isclose(
        float(steering_vectors(emotion, strength=0.05, mean_norms=norms)[2].norm()),
        float(steering_vectors(random, strength=0.05, mean_norms=norms)[2].norm()),
    )


def test_a_sampled_rollout_depends_on_its_seed_not_on_its_batch(model, tokenizer, prompts):
    settings = DecodeSettings(max_new_tokens=8, temperature=1.0, top_p=0.9)
    seeds = [11, 12, 13]
    together = generate(model, tokenizer, prompts, settings, seeds=seeds, batch_size=3)
    alone = [
        generate(model, tokenizer, [p], settings, seeds=[s])[0]
        for p, s in zip(prompts, seeds, strict=True)
    ]
    assert [r.token_ids for r in together] == [r.token_ids for r in alone]
    other = generate(model, tokenizer, prompts, settings, seeds=[21, 22, 23], batch_size=3)
    assert [r.token_ids for r in other] != [r.token_ids for r in together]


def test_identical_prompts_share_one_prefill_with_the_same_result(model, tokenizer, prompts, steer):
    same = [prompts[0]] * 3
    shared, _, _ = _decode(model, tokenizer, same, steer, seeds=None)
    separate, _, _ = _decode(model, tokenizer, same, steer, share_prefill=False)
    torch.testing.assert_close(shared.logits, separate.logits, atol=1e-5, rtol=1e-5)


def test_greedy_decoding_matches_transformers_generate_with_left_padding(model, tokenizer, prompts):
    ids, mask, _ = batch_encode(prompts, tokenizer.pad_token_id, side="left")
    ours = decode(
        model,
        ids,
        mask,
        DecodeSettings(max_new_tokens=10, greedy=True),
        eos_ids=set(),
        pad_id=tokenizer.pad_token_id,
    )
    with torch.inference_mode():
        theirs = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=10,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    eos = set(model.generation_config.eos_token_id)
    for row, expected in enumerate(theirs[:, ids.shape[1] :].tolist()):
        stop = next((i for i, t in enumerate(expected) if t in eos), len(expected))
        assert ours.tokens[row, :stop].tolist() == expected[:stop]


def test_a_row_stops_at_its_end_of_sequence_token(model, tokenizer, prompts):
    ids, mask, _ = batch_encode(prompts, tokenizer.pad_token_id, side="left")
    free = decode(
        model,
        ids,
        mask,
        DecodeSettings(max_new_tokens=6, greedy=True),
        eos_ids=set(),
        pad_id=tokenizer.pad_token_id,
    )
    stop = int(free.tokens[0, 2])  # make row 0's third token the stop token
    out = decode(
        model,
        ids,
        mask,
        DecodeSettings(max_new_tokens=6, greedy=True),
        eos_ids={stop},
        pad_id=tokenizer.pad_token_id,
    )
    first = free.tokens[0].tolist().index(stop)
    assert out.lengths[0] == first and out.finished[0]


def test_nucleus_sampling_never_draws_outside_the_top_p_mass():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    settings = DecodeSettings(max_new_tokens=1, temperature=1.0, top_p=0.7)
    generator = torch.Generator().manual_seed(0)
    draws = {int(_next_tokens(logits, settings, [generator])[0]) for _ in range(300)}
    assert draws == {0, 1}


def test_bad_settings_and_zero_vectors_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        DecodeSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p=1.5"):
        DecodeSettings(max_new_tokens=4, top_p=1.5)
    with pytest.raises(ValueError, match="no direction"):
        unit_direction(np.zeros(8))
    with pytest.raises(ValueError, match="no mean residual norm for layer 5"):
        steering_vectors({5: np.ones(4)}, strength=0.1, mean_norms=[1.0, 1.0])
