"""The embedding null's lookup (pipeline.model.embeddings) on the shipped tiny model: the rows
of the embedding module are what the first decoder block receives, a model where they are not
is refused, and stories are pooled over the tokens the real capture pools."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.model.capture import POOL_FROM, TokenizedText
from pipeline.model.embeddings import (
    EmbeddingMismatch,
    block0_input,
    check_block0_input,
    lookup,
    neutral_moments,
    span_means,
    story_sums,
)
from pipeline.model.loading import decoder_layers

IDS = [3, 17, 42, 99, 7, 250, 42, 11]


def test_the_lookup_is_what_the_first_block_receives(tiny_model):
    seen = block0_input(tiny_model, IDS)
    looked_up = lookup(tiny_model, IDS)
    assert seen.shape == looked_up.shape == (len(IDS), tiny_model.config.hidden_size)
    assert torch.allclose(seen.double(), looked_up, atol=1e-6)
    assert check_block0_input(tiny_model, IDS) <= 1e-6


def test_a_model_whose_first_block_sees_something_else_is_refused(tiny_model):
    """A scale applied between the embedding module and block 0 (as Gemma 2's forward does)."""

    def doctor(_module, args, kwargs):
        if args:
            return (args[0] * 2.0, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] * 2.0}

    handle = decoder_layers(tiny_model)[0].register_forward_pre_hook(doctor, with_kwargs=True)
    try:
        with pytest.raises(EmbeddingMismatch, match="first decoder block differs from its "
                                                    "token-embedding module's output"):
            check_block0_input(tiny_model, IDS)
    finally:
        handle.remove()
    check_block0_input(tiny_model, IDS)  # the hook is gone: the same model passes again


def test_stories_pool_from_the_50th_token_and_short_ones_are_counted(tiny_model):
    long_ids = list(range(10, 10 + POOL_FROM + 9))  # a BOS, then 58 text tokens
    items = [TokenizedText([1, *long_ids], group=1, source="a", text_start=1),
             TokenizedText([1, *long_ids[:20]], group=0, source="b", text_start=1)]
    sums, counts, n_short = story_sums(tiny_model, items, n_groups=2)
    expected = lookup(tiny_model, [1, *long_ids][POOL_FROM:]).mean(0).numpy()
    np.testing.assert_allclose(sums[1], expected, atol=1e-10)
    assert counts.tolist() == [0, 1] and n_short == 1
    assert not sums[0].any()


def test_neutral_moments_skip_the_sink_and_special_tokens(tiny_model):
    items = [TokenizedText([1, 5, 8, 2, 9], group=0, source="d", text_start=1)]
    moments = neutral_moments(tiny_model, items, special_ids={2})
    rows = lookup(tiny_model, [5, 8, 9]).numpy()
    assert moments["count"] == 3
    np.testing.assert_allclose(moments["sum"], rows.sum(0), atol=1e-10)
    np.testing.assert_allclose(moments["gram"], rows.T @ rows, atol=1e-10)
    assert span_means(tiny_model, [[5, 8, 9]], [(1, 3)]).shape == (1, rows.shape[1])


def test_a_model_that_scales_inside_its_embedding_module_passes():
    """Gemma 3 multiplies by sqrt(d) inside its embedding module (Gemma 2 too, in transformers
    5): the lookup through the module includes the scale, so the check passes."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    model = Gemma3ForCausalLM(Gemma3TextConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8)).eval()
    raw = model.get_input_embeddings().weight[5].double()
    assert not torch.allclose(lookup(model, [5])[0], raw)  # the module scales
    assert check_block0_input(model, [2, 5, 9, 11]) <= 1e-6
