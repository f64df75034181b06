"""Hooks read and write the residual stream at the right layer, and always go away."""

import pytest
import torch

from pipeline.model.capture import base_model
from pipeline.model.hooks import additive_steering, layer_hooks
from pipeline.model.loading import decoder_layers


def _ids(tokenizer, text="How would you feel about a quiet afternoon of reading?"):
    return torch.tensor([tokenizer(text)["input_ids"]])


def test_a_hook_on_layer_i_sees_output_hidden_states_i_plus_1(tiny_model, tiny_tokenizer):
    ids = _ids(tiny_tokenizer)
    seen = {}
    with torch.inference_mode():
        reference = tiny_model(ids, output_hidden_states=True).hidden_states
        with layer_hooks(tiny_model, range(4), lambda i, h: seen.__setitem__(i, h.clone())):
            base_model(tiny_model)(ids)
    # hidden_states[0] is the embedding output, so block i's output is hidden_states[i + 1];
    # the last entry has the final norm applied, so compare the blocks before it exactly.
    for i in range(3):
        torch.testing.assert_close(seen[i], reference[i + 1], rtol=0, atol=0)
    assert seen[0].shape == reference[1].shape  # a whole batch, not output[0]'s first row


def test_hooks_are_removed_after_an_exception(tiny_model, tiny_tokenizer):
    blocks = decoder_layers(tiny_model)
    # transformers may keep hooks of its own (it records output_hidden_states with them)
    before = [dict(block._forward_hooks) for block in blocks]

    def explode(layer, hidden):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with layer_hooks(tiny_model, [1, 2], explode):
            tiny_model(_ids(tiny_tokenizer))
    assert [dict(block._forward_hooks) for block in blocks] == before


def test_a_layer_beyond_the_depth_is_a_clear_error(tiny_model):
    with pytest.raises(ValueError, match="layer 7 is beyond the model's depth: it has 4"):
        with layer_hooks(tiny_model, [7], lambda i, h: None):
            pass


def test_steering_adds_the_vector_only_where_the_mask_says(tiny_model, tiny_tokenizer):
    ids = _ids(tiny_tokenizer)
    d = tiny_model.config.hidden_size
    vector = torch.randn(d, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(ids.shape)
    mask[0, 3:6] = 1.0
    before, after = {}, {}
    with torch.inference_mode():
        with layer_hooks(tiny_model, [1], lambda i, h: before.__setitem__(i, h.clone())):
            base_model(tiny_model)(ids)
        # the probe hook is registered after the steering hook, so it sees the steered output
        with additive_steering(tiny_model, [1], {1: vector}, lambda: mask), \
                layer_hooks(tiny_model, [1], lambda i, h: after.__setitem__(i, h.clone())):
            base_model(tiny_model)(ids)
    delta = after[1] - before[1]
    torch.testing.assert_close(delta[0, 3:6], vector.expand(3, d), rtol=1e-5, atol=1e-5)
    assert torch.equal(after[1][0, :3], before[1][0, :3])
    assert torch.equal(after[1][0, 6:], before[1][0, 6:])


def test_a_mask_of_the_wrong_shape_is_rejected(tiny_model, tiny_tokenizer):
    vector = torch.zeros(tiny_model.config.hidden_size)
    with pytest.raises(ValueError, match="steering mask has shape"):
        with additive_steering(tiny_model, [0], {0: vector}, lambda: torch.ones(1, 2)):
            base_model(tiny_model)(_ids(tiny_tokenizer))
