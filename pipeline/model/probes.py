"""Residual activations at chosen token spans of rendered prompts (read positions, activity
tokens, a user's final punctuation), for probe readouts.

Prompts are left-padded with position ids that follow the mask; spans are given in each
prompt's own token coordinates and shifted here, so no caller does padding arithmetic. The
forward pass stops after the deepest requested layer: no later layer and no vocabulary logits
are computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pipeline.model.capture import base_model
from pipeline.model.devices import input_device
from pipeline.model.hooks import layer_hooks
from pipeline.model.prompts import RenderedPrompt, batch_encode, position_ids_from_mask

Span = tuple[int, int]  # half-open token range [start, end) in the prompt's own coordinates


class _StopForward(Exception):
    pass


def read_position_spans(prompts: Sequence[RenderedPrompt]) -> list[list[Span]]:
    return [[(p.read_position, p.read_position + 1)] for p in prompts]


def span_means(
    model,
    prompts: Sequence[RenderedPrompt],
    spans: Sequence[Sequence[Span]],
    layers: Sequence[int],
    *,
    pad_id: int,
    batch_size: int = 32,
) -> list[np.ndarray]:
    """Mean activation over each span: one array [n_spans_i, len(layers), d] per prompt (fp64)."""
    if len(spans) != len(prompts):
        raise ValueError(f"got {len(spans)} span lists for {len(prompts)} prompts; pass one each")
    for i, (prompt, row) in enumerate(zip(prompts, spans, strict=True)):
        for start, end in row:
            if not 0 <= start < end <= len(prompt.input_ids):
                raise ValueError(
                    f"span ({start}, {end}) of prompt {i} is outside its {len(prompt.input_ids)} "
                    "tokens; spans are half-open token ranges in the prompt's own coordinates"
                )
    layers = list(layers)
    deepest = max(layers)
    device = input_device(model)
    out: list[np.ndarray] = [None] * len(prompts)  # type: ignore[list-item]
    captured: dict[int, torch.Tensor] = {}

    def capture(layer: int, hidden: torch.Tensor):
        captured[layer] = hidden
        if layer == deepest:
            raise _StopForward

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].input_ids))
    with layer_hooks(model, sorted(set(layers)), capture), torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ids, mask, shift = batch_encode([prompts[i] for i in batch], pad_id, side="left")
            captured.clear()
            try:
                base_model(model)(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=position_ids_from_mask(mask).to(device),
                    use_cache=False,
                )
            except _StopForward:
                pass
            # Reduce each layer on its own device (a device map spreads them) and move the
            # small [n_spans, d] result once; stacking full hidden states would need one device.
            flat = [(row, s + shift[row], e + shift[row])
                    for row, index in enumerate(batch) for s, e in spans[index]]
            per_layer = [
                torch.stack([captured[layer][row, s:e].double().mean(0) for row, s, e in flat])
                .cpu()
                for layer in layers
            ]  # L x [N, d]
            stacked = torch.stack(per_layer, dim=1).numpy()  # [N, L, d], all spans of the batch
            start_of = 0
            for index in batch:
                out[index] = stacked[start_of : start_of + len(spans[index])]  # [S, L, d]
                start_of += len(spans[index])
    return out
