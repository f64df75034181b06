"""A model dispatched by accelerate's device map reads and steers like the undispatched model.

There is one CPU, so the tiny model is spread over "cpu" and "disk": accelerate wraps every
decoder layer in its hooks, offloaded weights sit on "meta" until the hook loads them, and the
embedding itself is offloaded, so nothing may assume that `next(model.parameters())` names the
device the inputs belong on. Safetensors checkpoints are offloaded by reference to their own
files, so nothing is written.
"""

import numpy as np
import pytest
import torch
from accelerate.hooks import AlignDevicesHook

from pipeline.model.backends.transformers_backend import TransformersBackend
from pipeline.model.capture import TokenizedText, capture_neutral, capture_stories
from pipeline.model.devices import (
    device_for_worker,
    execution_device,
    input_device,
    is_dispatched,
    parse_device_map,
)
from pipeline.model.generation import SamplingSettings
from pipeline.model.hooks import additive_steering
from pipeline.model.loading import decoder_layers
from pipeline.model.probes import span_means
from pipeline.model.prompts import batch_encode, find_span, position_ids_from_mask, render_prompt
from pipeline.model.runtime import ModelRuntime

DEVICE_MAP = {
    "model.embed_tokens": "disk",
    "model.layers.0": "cpu",
    "model.layers.1": "disk",
    "model.layers.2": "cpu",
    "model.layers.3": "disk",
    "model.norm": "cpu",
    "model.rotary_emb": "cpu",
    "lm_head": "disk",
}
OFFLOADED_LAYERS = (1, 3)
WORDS = "the old lighthouse keeper counted waves while storms gathered over the grey harbour"
USERS = ["How would you feel about a quiet afternoon of reading?",
         "Tell me about the storm over the harbour.",
         "What would you do if the lighthouse went dark?"]


@pytest.fixture(scope="module")
def dispatched(tiny_spec, tiny_location):
    return ModelRuntime(tiny_spec, tiny_location, device="cpu", device_map=DEVICE_MAP).model


@pytest.fixture(scope="module")
def prompts(tiny_spec, tiny_tokenizer):
    return [render_prompt(tiny_tokenizer, user, fmt="chat",
                          chat_template_args=tiny_spec.chat_template_args) for user in USERS]


def test_the_device_map_puts_accelerate_hooks_on_every_layer_and_offloads_weights(dispatched):
    assert is_dispatched(dispatched)
    for index, layer in enumerate(decoder_layers(dispatched)):
        assert isinstance(layer._hf_hook, AlignDevicesHook), index
        offloaded = index in OFFLOADED_LAYERS
        assert (layer.mlp.down_proj.weight.device.type == "meta") == offloaded, index
        assert layer.mlp.down_proj._hf_hook.offload == offloaded, index
    # The embedding's weight is on "meta": inputs go where its hook computes instead.
    assert next(dispatched.parameters()).device.type == "meta"
    assert input_device(dispatched) == torch.device("cpu")
    assert execution_device(decoder_layers(dispatched)[1]) == torch.device("cpu")


def test_story_capture_sums_agree_with_the_undispatched_model(dispatched, tiny_model,
                                                               tiny_tokenizer):
    base = tiny_tokenizer(" ".join([WORDS] * 20))["input_ids"]
    items = [TokenizedText(base[:n], g, f"s{i}", 1)
             for i, (n, g) in enumerate(zip([60, 75, 120, 90, 140], [0, 1, 1, 2, 0], strict=True))]
    kwargs = dict(n_groups=3, pad_id=tiny_tokenizer.pad_token_id, token_budget=300, keep_layer=1)
    expected = capture_stories(tiny_model, items, **kwargs)
    got = capture_stories(dispatched, items, **kwargs)
    assert got["sums"].shape == (4, 3, tiny_model.config.hidden_size)
    assert got["sums"].device.type == "cpu" and got["sums"].dtype == torch.float64
    torch.testing.assert_close(got["sums"], expected["sums"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got["story_means"], expected["story_means"], rtol=1e-6, atol=1e-7)
    assert got["counts"].tolist() == expected["counts"].tolist() == [2, 2, 1]
    assert expected["sums"].abs().amin(dim=-1).gt(0).any()  # not a comparison of zeros


def test_neutral_moments_and_mean_norms_agree_with_the_undispatched_model(dispatched, tiny_model,
                                                                          tiny_tokenizer):
    base = tiny_tokenizer(" ".join([WORDS] * 6))["input_ids"]
    items = [TokenizedText(base[:n], 0, f"n{i}", 1) for i, n in enumerate([30, 55, 80])]
    kwargs = dict(special_ids=set(tiny_tokenizer.all_special_ids),
                  pad_id=tiny_tokenizer.pad_token_id, token_budget=200, pca_layers=[1, 2])
    expected = capture_neutral(tiny_model, items, **kwargs)
    got = capture_neutral(dispatched, items, **kwargs)
    assert got["count"] == expected["count"] > 0
    torch.testing.assert_close(got["mean_norms"], expected["mean_norms"], rtol=1e-6, atol=1e-7)
    for layer in (1, 2):  # disk and cpu
        torch.testing.assert_close(got["sum"][layer], expected["sum"][layer], rtol=1e-6,
                                   atol=1e-6)
        torch.testing.assert_close(got["gram"][layer], expected["gram"][layer], rtol=1e-6,
                                   atol=1e-5)


def test_span_means_agree_across_offloaded_and_resident_layers(dispatched, tiny_model, prompts,
                                                               tiny_tokenizer):
    spans = [[(p.read_position, p.read_position + 1), p.token_span("user")] for p in prompts]
    # Unsorted, alternating disk and cpu layers; the forward stops after layer 2.
    layers = [2, 0, 1]
    kwargs = dict(pad_id=tiny_tokenizer.pad_token_id, batch_size=2)
    expected = span_means(tiny_model, prompts, spans, layers, **kwargs)
    got = span_means(dispatched, prompts, spans, layers, **kwargs)
    for want, have in zip(expected, got, strict=True):
        assert have.shape == (2, 3, tiny_model.config.hidden_size)
        np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-7)
    assert not np.allclose(expected[0][0, 0], expected[0][0, 2])  # layers really differ
    # Stopping the forward early left no offloaded weight resident.
    assert decoder_layers(dispatched)[1].mlp.down_proj.weight.device.type == "meta"
    assert dispatched.get_input_embeddings().weight.device.type == "meta"


def _last_logits(model, prompts, pad_id, steer=None):
    ids, mask, shift = batch_encode(prompts, pad_id, side="left")
    device = input_device(model)
    with torch.inference_mode():
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                    position_ids=position_ids_from_mask(mask).to(device), use_cache=False)
    return out.logits[:, -1].float().cpu()  # [B, vocab]


def _steered_last_logits(model, prompts, pad_id, vectors):
    # Steer only the tokens of "the harbour"/"reading"/"lighthouse" spans, as preferences do.
    _, _, shift = batch_encode(prompts, pad_id, side="left")
    width = max(len(p.input_ids) for p in prompts)
    mask = torch.zeros(len(prompts), width)
    for row, (prompt, word) in enumerate(zip(prompts, ["reading", "harbour", "lighthouse"],
                                             strict=True)):
        start, end = find_span(prompt, word, within="user")
        mask[row, start + shift[row] : end + shift[row]] = 1.0
    with additive_steering(model, sorted(vectors), vectors, lambda: mask):
        return _last_logits(model, prompts, pad_id)


def test_steered_last_token_logits_agree_with_the_undispatched_model(dispatched, tiny_model,
                                                                     prompts, tiny_tokenizer):
    d = tiny_model.config.hidden_size
    generator = torch.Generator().manual_seed(0)
    # Layer 1 is offloaded to disk, layer 2 resident: the vector must reach both.
    vectors = {layer: 4.0 * torch.randn(d, generator=generator) for layer in (1, 2)}
    pad = tiny_tokenizer.pad_token_id
    plain = _last_logits(tiny_model, prompts, pad)
    expected = _steered_last_logits(tiny_model, prompts, pad, vectors)
    got = _steered_last_logits(dispatched, prompts, pad, vectors)
    assert (expected - plain).abs().max() > 0.1  # the steering moved the logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    torch.testing.assert_close(_last_logits(dispatched, prompts, pad), plain, rtol=1e-5,
                               atol=1e-5)  # and the hooks went away with the context


def test_greedy_generation_through_the_backend_agrees_with_the_undispatched_model(
        dispatched, tiny_model, prompts, tiny_tokenizer):
    settings = SamplingSettings(max_new_tokens=8, do_sample=False)
    expected = TransformersBackend(tiny_model, tiny_tokenizer).generate(prompts, settings, 0)
    got = TransformersBackend(dispatched, tiny_tokenizer).generate(prompts, settings, 0)
    assert got == expected


def test_device_map_values_parse_to_strategies_devices_or_mappings(tmp_path):
    assert parse_device_map(None) is None
    assert parse_device_map("auto") == "auto"
    assert parse_device_map("cuda:1") == "cuda:1"
    assert parse_device_map('{"model.layers.0": 0, "lm_head": "cpu"}') == {
        "model.layers.0": 0, "lm_head": "cpu"}
    path = tmp_path / "map.json"
    path.write_text('{"model": 0}')
    assert parse_device_map(str(path)) == {"model": 0}
    with pytest.raises(ValueError, match="neither a strategy"):
        parse_device_map("everywhere")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_device_map("{model: 0}")


def test_xdist_workers_take_one_gpu_each_and_none_without_several_gpus():
    assert [device_for_worker(f"gw{i}", 2) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert device_for_worker("gw1", 1) is None
    assert device_for_worker(None, 8) is None
    with pytest.raises(ValueError, match="expected 'gw'"):
        device_for_worker("master", 2)


def test_the_cli_refuses_a_malformed_device_map_before_loading_anything(tmp_path, capsys):
    from pipeline.__main__ import main

    # Bad input is one sentence on stderr and exit status 2 (pipeline.inputs.errors.BadInput).
    assert main(["build", "--model", "tiny", "--stage", "stories", "--device-map", "everywhere",
                 "--artifact-root", str(tmp_path)]) == 2
    assert "--device-map 'everywhere'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
