"""Forward hooks on decoder layers, each scoped by a context manager that removes it in `finally`.

A decoder layer returns a tuple `(hidden, ...)` in transformers 4 and a bare tensor in
transformers 5; taking `output[0]` of a bare tensor would silently read the first batch row, so
every hook goes through `hidden_of` / `with_hidden`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from pipeline.model.loading import decoder_layers

# (layer index, hidden [B, T, d]) -> None for readers, or a new hidden tensor for writers
LayerFn = Callable[[int, torch.Tensor], torch.Tensor | None]


def hidden_of(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def with_hidden(output, hidden: torch.Tensor):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def check_layers(model, layers: Sequence[int]) -> list:
    blocks = decoder_layers(model)
    for layer in layers:
        if not 0 <= layer < len(blocks):
            raise ValueError(
                f"layer {layer} is beyond the model's depth: it has {len(blocks)} decoder layers "
                f"(valid 0..{len(blocks) - 1}); fix the layer in data/models.toml or the option"
            )
    return blocks


@contextmanager
def layer_hooks(model, layers: Sequence[int], fn: LayerFn) -> Iterator[None]:
    """Call `fn(layer, hidden)` on each listed layer's output; a returned tensor replaces it."""
    blocks = check_layers(model, layers)
    handles = []

    def make(layer: int):
        def hook(_module, _inputs, output):
            replaced = fn(layer, hidden_of(output))
            return None if replaced is None else with_hidden(output, replaced)

        return hook

    try:
        for layer in layers:
            handles.append(blocks[layer].register_forward_hook(make(layer)))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def additive_steering(
    model,
    layers: Sequence[int],
    vectors: dict[int, torch.Tensor],
    mask: Callable[[], torch.Tensor | None],
) -> Iterator[None]:
    """Add `vectors[layer]` ([d]) at the positions where `mask()` ([B, T], float) is non-zero.

    `mask` is read at call time so one context can serve many batches (the caller swaps the
    current batch's mask) and generation steps. A `None` mask adds everywhere.
    """

    # (source vector, its copy on the layer's device): with a device map every layer may sit
    # elsewhere, and a generation loop calls the hook every step, so each vector moves once.
    placed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def steer(layer: int, hidden: torch.Tensor) -> torch.Tensor:
        source = vectors[layer]
        cached = placed.get(layer)
        if (cached is None or cached[0] is not source or cached[1].device != hidden.device
                or cached[1].dtype != hidden.dtype):
            cached = placed[layer] = (source, source.to(device=hidden.device, dtype=hidden.dtype))
        vector = cached[1]
        current = mask()
        if current is None:
            return hidden + vector
        weights = current.to(device=hidden.device, dtype=hidden.dtype)
        if weights.shape != hidden.shape[:2]:
            raise ValueError(
                f"steering mask has shape {tuple(weights.shape)} but layer {layer} output is "
                f"{tuple(hidden.shape[:2])} (batch, tokens); build the mask from the same batch"
            )
        return hidden + weights.unsqueeze(-1) * vector

    with layer_hooks(model, layers, steer):
        yield
