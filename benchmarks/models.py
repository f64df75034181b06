"""Models the benchmarks measure: the shipped tiny model and seeded random Llamas of real shapes."""

from __future__ import annotations

import torch

SHAPES = {
    "llama_100m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       num_key_value_heads=4, intermediate_size=2048, vocab_size=32000),
    "llama31_8b_shape": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                             num_key_value_heads=8, intermediate_size=14336, vocab_size=128256,
                             rope_theta=500000.0),
}


def random_llama(shape: str, device: str, dtype: torch.dtype = torch.float32):
    """A seeded, randomly initialised Llama of a named shape, built directly on `device`."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    config = LlamaConfig(max_position_embeddings=8192, **SHAPES[shape])
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def tiny():
    """The shipped tiny model and its tokenizer, on CPU."""
    from pipeline.inputs.registry import get_spec
    from pipeline.model.loading import load_model, load_tokenizer, resolve_weights

    spec = get_spec("tiny")
    location = resolve_weights(spec, {})
    return load_model(spec, location, device="cpu"), load_tokenizer(spec, location)
