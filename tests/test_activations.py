"""Story capture: pooling from the 50th token, padding-invariant, reduced in the hook."""

import numpy as np
import pytest
import torch

from pipeline.model.capture import (
    POOL_FROM,
    NonFiniteActivations,
    TokenizedText,
    base_model,
    capture_neutral,
    capture_stories,
)
from pipeline.model.hooks import layer_hooks

WORDS = "the old lighthouse keeper counted waves while storms gathered over the grey harbour"


def _items(tokenizer, lengths, groups):
    base = tokenizer(" ".join([WORDS] * 20))["input_ids"]  # one BOS, then story tokens
    return [TokenizedText(base[:n], g, f"s{i}", 1) for i, (n, g) in enumerate(zip(lengths, groups,
                                                                               strict=True))]


def _reference_means(model, items, layer):
    """Each story alone, with output_hidden_states: the slow, obviously-correct way."""
    out = []
    for item in items:
        ids = torch.tensor([item.input_ids])
        with torch.inference_mode():
            hidden = model(ids, output_hidden_states=True).hidden_states[layer + 1][0]
        out.append(hidden[POOL_FROM:].double().mean(0))
    return torch.stack(out)


def test_story_means_pool_from_the_50th_token_and_match_a_one_by_one_reference(
        tiny_model, tiny_tokenizer):
    items = _items(tiny_tokenizer, [60, 75, 120, 90], [0, 1, 1, 2])
    result = capture_stories(tiny_model, items, n_groups=3, pad_id=tiny_tokenizer.pad_token_id,
                             token_budget=200, keep_layer=1)
    reference = _reference_means(tiny_model, items, layer=1)
    torch.testing.assert_close(result["story_means"].double(), reference, rtol=1e-4, atol=1e-5)
    expected_sums = torch.stack([reference[0], reference[1] + reference[2], reference[3]])
    torch.testing.assert_close(result["sums"][1], expected_sums, rtol=1e-4, atol=1e-5)
    assert result["counts"].tolist() == [1, 2, 1]


def test_left_and_right_padding_give_the_same_story_means(tiny_model, tiny_tokenizer):
    items = _items(tiny_tokenizer, [55, 130], [0, 0])
    left = capture_stories(tiny_model, items, n_groups=1, pad_id=tiny_tokenizer.pad_token_id,
                           token_budget=10_000, keep_layer=2)
    # right padding: run each row with pads after it, read with the same mask arithmetic
    layer_out = {}
    ids = torch.full((2, 130), tiny_tokenizer.pad_token_id)
    mask = torch.zeros(2, 130, dtype=torch.long)
    for b, item in enumerate(items):
        ids[b, : len(item.input_ids)] = torch.tensor(item.input_ids)
        mask[b, : len(item.input_ids)] = 1
    with torch.inference_mode(), layer_hooks(tiny_model, [2],
                                             lambda i, h: layer_out.__setitem__(i, h)):
        base_model(tiny_model)(input_ids=ids, attention_mask=mask)
    positions = torch.arange(130).expand(2, 130)
    pooled = (mask.bool() & (positions >= POOL_FROM)).double()
    right = (pooled[..., None] * layer_out[2].double()).sum(1) / pooled.sum(1, keepdim=True)
    torch.testing.assert_close(left["story_means"].double(), right, rtol=1e-4, atol=1e-5)


def test_a_story_shorter_than_50_tokens_is_counted_as_short_and_left_out(tiny_model,
                                                                        tiny_tokenizer):
    items = _items(tiny_tokenizer, [30, 80], [0, 0])
    result = capture_stories(tiny_model, items, n_groups=1, pad_id=tiny_tokenizer.pad_token_id,
                             token_budget=1000)
    assert result["n_short"] == 1
    assert result["counts"].tolist() == [1]


def test_nan_activations_are_reported_with_the_layer_and_the_story(tiny_model, tiny_tokenizer):
    items = _items(tiny_tokenizer, [60], [0])
    layer = tiny_model.model.layers[1]
    handle = layer.register_forward_hook(lambda m, i, o: o * float("nan"))
    try:
        with pytest.raises(NonFiniteActivations, match=r"layer 1 for \['s0'\]"):
            capture_stories(tiny_model, items, n_groups=1, pad_id=tiny_tokenizer.pad_token_id,
                            token_budget=1000)
    finally:
        handle.remove()


def test_memory_of_the_reduction_does_not_grow_with_the_number_of_stories(tiny_model,
                                                                         tiny_tokenizer):
    few = capture_stories(tiny_model, _items(tiny_tokenizer, [60] * 4, [0, 1, 0, 1]),
                          n_groups=2, pad_id=0, token_budget=120)
    many = capture_stories(tiny_model, _items(tiny_tokenizer, [60] * 40, [0, 1] * 20),
                           n_groups=2, pad_id=0, token_budget=120)
    assert few["sums"].shape == many["sums"].shape == (4, 2, tiny_model.config.hidden_size)
    assert "story_means" not in many


def test_neutral_moments_skip_special_tokens_and_give_mean_norms(tiny_model, tiny_tokenizer):
    text = "Human: List three prime numbers.\n\nAssistant: 2, 3 and 5."
    item = TokenizedText(tiny_tokenizer(text)["input_ids"], 0, "d0", 1)
    result = capture_neutral(tiny_model, [item], special_ids=set(tiny_tokenizer.all_special_ids),
                             pad_id=tiny_tokenizer.pad_token_id, token_budget=1000)
    n = len(item.input_ids) - 1  # the BOS is special and excluded
    assert result["count"] == n
    with torch.inference_mode():
        hidden = tiny_model(torch.tensor([item.input_ids]), output_hidden_states=True).hidden_states
    expected = hidden[1][0, 1:].double().norm(dim=-1).mean()
    assert result["mean_norms"][0].item() == pytest.approx(expected.item(), rel=1e-5)
    gram = result["gram"][0].numpy()
    assert np.allclose(gram, gram.T)


# --- the attention sink (issue 12): position 0 of every text, special or not ---

@pytest.fixture(scope="module")
def no_bos_tokenizer(tiny_tokenizer):
    """The tiny tokenizer without its BOS, as SmolLM2's and Qwen's add none."""
    import copy

    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = copy.deepcopy(tiny_tokenizer.backend_tokenizer)
    backend.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=tiny_tokenizer.bos_token,
                                   eos_token=tiny_tokenizer.eos_token,
                                   pad_token=tiny_tokenizer.pad_token)


def test_tokenize_texts_records_where_the_text_starts(tiny_tokenizer, no_bos_tokenizer):
    from pipeline.model.capture import tokenize_texts

    with_bos = tokenize_texts(tiny_tokenizer, ["the old keeper"], [0], ["a"], 100)[0]
    without = tokenize_texts(no_bos_tokenizer, ["the old keeper"], [0], ["a"], 100)[0]
    assert with_bos.input_ids[0] == tiny_tokenizer.bos_token_id
    assert (with_bos.text_start, with_bos.content_start) == (1, 1)
    assert without.input_ids == with_bos.input_ids[1:]
    assert (without.text_start, without.content_start) == (0, 1)  # the first word is the sink


def _plant_sink(model, layer: int, size: float):
    """Add a huge vector to position 0 of every row at `layer`'s output (the sink's signature).

    Rows are equal length in these tests, so column 0 is every text's position 0. Registered
    before the capture hooks, so they see the planted residual.
    """
    from pipeline.model.capture import _layers

    direction = torch.zeros(model.config.hidden_size)
    direction[3] = size

    def hook(_module, _args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[:, 0] += direction.to(hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return _layers(model)[layer].register_forward_hook(hook)


def test_a_huge_first_token_on_a_no_bos_model_affects_no_mean_norm_pca_or_pooling(
        tiny_model, no_bos_tokenizer):
    from pipeline.model.capture import tokenize_texts

    last = tiny_model.config.num_hidden_layers - 1  # planted at the last layer: nothing reads it
    words = (" ".join([WORDS] * 10)).split()
    texts = [" ".join(words[i : i + 60]) for i in range(4)]
    items = tokenize_texts(no_bos_tokenizer, texts, [0, 1, 0, 1], list("abcd"), 10_000)
    width = min(len(item.input_ids) for item in items)
    items = [TokenizedText(it.input_ids[:width], it.group, it.source, it.text_start)
             for it in items]  # equal lengths: no padding, so column 0 is position 0
    assert all(item.input_ids[0] != no_bos_tokenizer.bos_token_id for item in items)
    kwargs = dict(pad_id=no_bos_tokenizer.pad_token_id, token_budget=10_000)

    clean_neutral = capture_neutral(tiny_model, items, special_ids=set(), **kwargs)
    clean_stories = capture_stories(tiny_model, items, n_groups=2, keep_layer=last, **kwargs)
    handle = _plant_sink(tiny_model, last, 1e5)
    try:
        neutral = capture_neutral(tiny_model, items, special_ids=set(), **kwargs)
        stories = capture_stories(tiny_model, items, n_groups=2, keep_layer=last, **kwargs)
    finally:
        handle.remove()

    assert neutral["count"] == sum(len(item.input_ids) - 1 for item in items)
    assert neutral["mean_norms"][last] < 1e3  # the planted 1e5 is nowhere in the mean
    torch.testing.assert_close(neutral["mean_norms"], clean_neutral["mean_norms"])
    torch.testing.assert_close(neutral["sum"][last], clean_neutral["sum"][last])
    torch.testing.assert_close(neutral["gram"][last], clean_neutral["gram"][last])
    torch.testing.assert_close(stories["story_means"], clean_stories["story_means"])


def test_a_no_bos_story_pools_from_its_own_50th_token(tiny_model, no_bos_tokenizer):
    """Without a BOS the story's 50th token sits at position 49: a 50-token story is not short."""
    from pipeline.model.capture import tokenize_texts

    item = tokenize_texts(no_bos_tokenizer, [" ".join([WORDS] * 10)], [0], ["s"], 10_000)[0]
    item = TokenizedText(item.input_ids[:POOL_FROM], 0, "s", item.text_start)
    result = capture_stories(tiny_model, [item], n_groups=1, keep_layer=1,
                             pad_id=no_bos_tokenizer.pad_token_id, token_budget=10_000)
    assert result["counts"].tolist() == [1]
    with torch.inference_mode():
        hidden = tiny_model(torch.tensor([item.input_ids]), output_hidden_states=True).hidden_states
    torch.testing.assert_close(result["story_means"][0], hidden[2][0, POOL_FROM - 1].float(),
                               rtol=1e-4, atol=1e-5)
