"""The toy's planted emotion channel (channel.py) and its lexicon (channel_lexicon.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from pipeline.testmodels.toy.channel import ChannelConfig, plant_channel
from pipeline.testmodels.toy.channel_lexicon import (
    class_counts,
    document_frequency,
    lexicon,
    without_common,
)
from tests.llama_builders import small_llama

VOCAB, K = 40, 3


def _model(seed: int = 0) -> LlamaForCausalLM:
    return small_llama(VOCAB, seed)


def _context_mean(model, ids: torch.Tensor, gain: float) -> torch.Tensor:
    """What the channel must hold at R after block 0: the token's own entries plus gain times
    the running mean of the RMS-normalised embeddings' entries at R."""
    x = model.get_input_embeddings().weight[ids]
    normed = x / x.pow(2).mean(-1, keepdim=True).add(model.config.rms_norm_eps).sqrt()
    steps = torch.arange(1, ids.shape[-1] + 1)[:, None]
    return x[..., -K:] + gain * normed[..., -K:].cumsum(-2) / steps


def test_every_later_layer_holds_the_context_mean_of_the_lexicon():
    model = _model()
    lex = np.random.default_rng(0).standard_normal((VOCAB, K))
    plant_channel(model, lex, ChannelConfig(dims=K, gain=5.0))
    ids = torch.tensor([[1, 7, 7, 30, 2, 11]])
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
        expected = _context_mean(model, ids[0], 5.0)
    for layer in (1, 2, 3):  # hidden_states[4] is after the final norm
        torch.testing.assert_close(hidden[layer][0, :, -K:], expected, atol=1e-4, rtol=1e-4)
    # and a later token changes nothing before it (causal), everything from it on
    with torch.no_grad():
        other = model(torch.tensor([[1, 7, 7, 30, 5, 11]]),
                      output_hidden_states=True).hidden_states[2][0, :, -K:]
    torch.testing.assert_close(other[:4], hidden[2][0, :4, -K:])
    assert not torch.allclose(other[4:], hidden[2][0, 4:, -K:])


def test_training_moves_the_rest_and_never_the_planted_entries():
    model = _model()
    lex = np.random.default_rng(1).standard_normal((VOCAB, K))
    channel = plant_channel(model, lex, ChannelConfig(dims=K, gain=5.0))
    planted = [(p.param, p.param.detach().clone(), p.mask) for p in channel.pinned]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    ids = torch.tensor([[1, 7, 9, 30, 2, 11, 3]])
    model.train()
    for _ in range(3):
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        for param, _, mask in planted:  # the gradient never reaches a planted entry
            assert param.grad is None or not param.grad[mask].any()
        optimizer.step()
        channel.restore()
    for param, before, mask in planted:
        assert torch.equal(param.detach()[mask], before[mask])
        assert not torch.equal(param.detach()[~mask], before[~mask])
    model.eval()
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states[3][0, :, -K:]
        torch.testing.assert_close(hidden, _context_mean(model, ids[0], 5.0), atol=1e-4,
                                   rtol=1e-4)


def test_the_channel_refuses_a_lexicon_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"expected \[40, 3\]"):
        plant_channel(_model(), np.zeros((VOCAB, K + 1)), ChannelConfig(dims=K))


def test_lexicon_planted_tokens_carry_their_class_and_shared_ones_nothing():
    # token 1 only in class 0, token 2 only in class 1, token 3 equally in every class,
    # token 4 twice as often in class 2 as in the others, token 5 never seen
    counts = class_counts([(0, [1] * 40 + [3] * 10 + [4] * 5, 1.0),
                           (1, [2] * 40 + [3] * 10 + [4] * 5, 1.0),
                           (2, [3] * 10 + [4] * 10, 1.0)], vocab_size=6, n_classes=3)
    lex = lexicon(counts)
    assert lex.shape == (6, 3)
    np.testing.assert_allclose(lex.sum(axis=1), 0, atol=1e-12)  # nothing shared by every class
    assert lex[1, 0] > 1 and lex[1, 0] == lex.max(axis=None)
    assert lex[2, 1] > 1 and lex[2, 1] == lex[2].max()
    np.testing.assert_allclose(lex[3], 0, atol=1e-12)
    assert lex[4, 2] > 0 > lex[4, 0] and lex[4, 2] < lex[1, 0]  # weaker evidence, less
    np.testing.assert_allclose(lex[5], 0, atol=1e-12)
    with pytest.raises(ValueError, match="class 3 is outside"):
        class_counts([(3, [1], 1.0)], vocab_size=6, n_classes=3)
    with pytest.raises(ValueError, match="at least 2 classes"):
        lexicon(np.ones((6, 1)))


def test_toy_lexicon_gives_each_emotion_its_own_word_and_the_template_nothing():
    from transformers import PreTrainedTokenizerFast

    from pipeline.model.prompts import render_prompt
    from pipeline.testmodels.toy.channel import twelve_emotion_lexicon
    from pipeline.testmodels.toy.situations import IMPLICIT_SITUATIONS
    from pipeline.testmodels.toy.train import TOY_DIR

    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOY_DIR)
    lex = twelve_emotion_lexicon(tokenizer, ChannelConfig(), signature_nouns=True)
    assert lex.shape == (len(tokenizer), len(IMPLICIT_SITUATIONS))
    for cls, emotion in enumerate(IMPLICIT_SITUATIONS):
        first = tokenizer(f" {emotion}", add_special_tokens=False)["input_ids"][0]
        assert lex[first].argmax() == cls, emotion
    # the chat template around a message is counted once per situation of every emotion
    empty = render_prompt(tokenizer, "", fmt="chat", chat_template_args={}).input_ids
    assert np.abs(lex[empty]).max() < 0.05 * np.abs(lex).max()  # 0.38 counted without it
    with pytest.raises(ValueError, match="channel dims 11"):
        twelve_emotion_lexicon(tokenizer, ChannelConfig(dims=11), signature_nouns=False)
    # function words get codes from sixty situations per class by chance; without the tokens
    # in a fifth or more of the corpus's stories they carry nothing, and the twelve's own words
    # keep their codes
    common = [tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" the", " was")]
    assert np.abs(lex[common]).max() > 1
    kept = twelve_emotion_lexicon(tokenizer, ChannelConfig(max_df=0.2), signature_nouns=True)
    np.testing.assert_array_equal(kept[common], 0)
    for emotion in IMPLICIT_SITUATIONS:
        first = tokenizer(f" {emotion}", add_special_tokens=False)["input_ids"][0]
        np.testing.assert_array_equal(kept[first], lex[first])


def test_a_channel_in_a_later_block_leaves_the_earlier_ones_alone():
    model = _model()
    lex = np.random.default_rng(2).standard_normal((VOCAB, K))
    plant_channel(model, lex, ChannelConfig(dims=K, gain=5.0, layer=2, norm_weight=7.0))
    ids = torch.tensor([[1, 7, 7, 30, 2, 11]])
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
    own = model.get_input_embeddings().weight[ids[0], -K:].detach()
    for layer in (0, 1, 2):  # before block 2: only the tokens' own entries
        torch.testing.assert_close(hidden[layer][0, :, -K:], own)
    before = hidden[2][0]
    normed = 7.0 * before[:, -K:] / before.pow(2).mean(-1, keepdim=True).add(
        model.config.rms_norm_eps).sqrt()
    steps = torch.arange(1, ids.shape[-1] + 1)[:, None]
    expected = own + 5.0 * normed.cumsum(0) / steps
    torch.testing.assert_close(hidden[3][0, :, -K:], expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="the model has 4 blocks"):
        plant_channel(_model(), lex, ChannelConfig(dims=K, layer=4))


def test_an_offset_rides_along_the_all_ones_direction_and_leaves_every_code_alone():
    # the lexicon is centred over the classes, so the offset is orthogonal to every code
    lex = np.random.default_rng(3).standard_normal((VOCAB, K))
    lex -= lex.mean(axis=1, keepdims=True)
    plain, shifted = _model(), _model()
    plant_channel(plain, lex, ChannelConfig(dims=K, gain=5.0))
    plant_channel(shifted, lex, ChannelConfig(dims=K, gain=5.0, offset=2.0))
    ids = torch.tensor([[1, 7, 7, 30, 2, 11]])
    with torch.no_grad():
        a = plain(ids, output_hidden_states=True).hidden_states[2][0, :, -K:]
        b = shifted(ids, output_hidden_states=True).hidden_states[2][0, :, -K:]
    ones = torch.ones(K) / K ** 0.5

    def code(r):
        return r - (r @ ones)[:, None] * ones

    assert (b @ ones).min() > 1.0 and (a @ ones).abs().max() < 1e-5  # the offset is there
    with torch.no_grad():
        torch.testing.assert_close(b, _context_mean(shifted, ids[0], 5.0), atol=1e-4, rtol=1e-4)
    # and the codes point nearly the same way: block 0 divides each token by its own RMS,
    # which the offset changes, so the mean weighs the tokens a little differently
    cos = torch.nn.functional.cosine_similarity(code(a), code(b), dim=-1)
    assert cos.min() > 0.99
    with pytest.raises(ValueError, match="offset -1"):
        ChannelConfig(offset=-1)


def test_common_tokens_carry_nothing_and_the_rest_keep_their_code():
    df = document_frequency([[1, 2, 2, 3], [1, 3], [1, 4], [1]], vocab_size=6)
    np.testing.assert_allclose(df, [0, 1, 0.25, 0.5, 0.25, 0])
    lex = np.arange(18, dtype=float).reshape(6, 3)
    kept = without_common(lex, df, max_df=0.5)  # tokens 1 and 3 are in half the stories or more
    np.testing.assert_array_equal(kept[[1, 3]], 0)
    np.testing.assert_array_equal(kept[[0, 2, 4, 5]], lex[[0, 2, 4, 5]])
    np.testing.assert_array_equal(without_common(lex, df, max_df=1.0)[3], lex[3])
    with pytest.raises(ValueError, match="max document frequency 0"):
        without_common(lex, df, max_df=0)
    with pytest.raises(ValueError, match="no documents"):
        document_frequency([], vocab_size=6)
    with pytest.raises(ValueError, match="channel max document frequency 1.5"):
        ChannelConfig(max_df=1.5)


def test_an_unread_channel_reaches_the_outputs_only_through_the_norms():
    # rotating every token's lexicon within R keeps every norm, so nothing that only divides by
    # a norm can tell the two apart; a toy that reads R can
    lex = np.random.default_rng(4).standard_normal((VOCAB, K))
    rotation, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((K, K)))
    ids = torch.tensor([[1, 7, 7, 30, 2, 11]])

    def logits(lexicon, unread):
        model = _model(seed=6)
        with torch.no_grad():  # every norm reads R where it may, as a trained toy's would
            for name, param in model.named_parameters():
                if "norm" in name:
                    param.uniform_(0.5, 1.5)
        plant_channel(model, lexicon, ChannelConfig(dims=K, gain=5.0, unread=unread))
        with torch.no_grad():
            return model(ids).logits

    torch.testing.assert_close(logits(lex, True), logits(lex @ rotation, True))
    assert not torch.allclose(logits(lex, False), logits(lex @ rotation, False), atol=1e-4)
