"""Small seeded Llama models built in memory, for tests that plant or train weights by hand
(the planted channel, the settle phase)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def small_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    """4 blocks, width 32, 4 query heads sharing 2 key/value heads (as the toy's GQA)."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                         max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()
