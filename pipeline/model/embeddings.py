"""The residual stream before block 0, read without a forward pass: the token-embedding lookup.

The embedding null (issue 16) builds emotion vectors and readouts from the stream before any
decoder block runs. For a rotary-position model that stream is the embedding module's output
(positions enter inside attention), so a row of `model.get_input_embeddings()` per token is all
it takes. That holds only if nothing sits between the embedding module and block 0: Gemma 2 and
3 scale by sqrt(d) inside their embedding modules in transformers 5 (fine; transformers 4's
Gemma 2 scaled in the model's forward) and GPT-2 adds absolute position embeddings (not fine:
nothing registered here is built that way, but a model added later might be).
`check_block0_input` runs one short input and compares the embedding module's output with what
block 0 actually receives (a forward pre-hook); where they differ it raises `EmbeddingMismatch`
instead of producing a wrong null.

The readers return float64 numpy arrays: per-group pooled sums of texts (stories), token moments
(neutral dialogues, for the PCA), and span means (read positions, activity tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pipeline.inputs.errors import BadInput
from pipeline.model.capture import TokenizedText, base_model, pool_start
from pipeline.model.devices import input_device
from pipeline.model.loading import decoder_layers

# Relative difference (max |a - b| over max |b|) beyond which block 0's input is not the lookup.
TOLERANCE = 1e-4
TOKENS_PER_CHUNK = 8192  # neutral tokens per Gram update


class EmbeddingMismatch(BadInput):
    """The input to the first decoder block is not the token-embedding module's output."""


class _Stop(Exception):
    pass


def block0_input(model, input_ids: Sequence[int]) -> torch.Tensor:
    """What the first decoder block receives for `input_ids` ([T, d], float32, on the CPU);
    the forward pass stops there."""
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, args, kwargs):
        hidden = args[0] if args else kwargs.get("hidden_states")
        captured["hidden"] = hidden.detach()
        raise _Stop

    device = input_device(model)
    ids = torch.tensor([list(input_ids)], dtype=torch.long, device=device)
    handle = decoder_layers(model)[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.inference_mode():
            base_model(model)(input_ids=ids, attention_mask=torch.ones_like(ids),
                              position_ids=torch.arange(ids.shape[1], device=device)[None],
                              use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "hidden" not in captured:
        raise EmbeddingMismatch(f"{type(model).__name__}: the forward pass never reached the "
                                "first decoder block; cannot check the embedding lookup")
    return captured["hidden"][0].float().cpu()


def check_block0_input(model, input_ids: Sequence[int]) -> float:
    """Raise EmbeddingMismatch unless block 0's input equals the embedding lookup of
    `input_ids` (a short text, several distinct positions); returns the relative difference."""
    seen = block0_input(model, input_ids)
    looked_up = lookup(model, input_ids).float()
    scale = float(looked_up.abs().max()) or 1.0
    difference = float((seen - looked_up).abs().max()) / scale
    if seen.shape != looked_up.shape or not difference <= TOLERANCE:
        ratio = float(seen.norm() / looked_up.norm()) if looked_up.norm() > 0 else float("nan")
        raise EmbeddingMismatch(
            f"{type(model).__name__}: the input to its first decoder block differs from its "
            f"token-embedding module's output (max relative difference {difference:.3g}, norm "
            f"ratio {ratio:.4g}, on {len(input_ids)} tokens); something between them (a scale "
            "applied in the model's forward, absolute position embeddings) would make an "
            "embedding null read from the lookup wrong, so it is not built for this model")
    return difference


def lookup(model, input_ids: Sequence[int]) -> torch.Tensor:
    """Embedding rows of `input_ids`: [T, d], float64 on the CPU."""
    return _rows(model, input_ids).cpu()


def _rows(model, input_ids: Sequence[int]) -> torch.Tensor:
    """Embedding rows of `input_ids`: [T, d], float64 where the embedding module runs."""
    module = model.get_input_embeddings()
    ids = torch.tensor(list(input_ids), dtype=torch.long, device=input_device(model))
    with torch.inference_mode():
        return module(ids[None])[0].double()


def story_sums(model, items: Sequence[TokenizedText], n_groups: int
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-group sums [E, d] of story means and counts [E], pooled as the real capture pools
    (pipeline.model.capture: from the text's 50th token, never the attention sink); a story
    with no pooled token is left out and counted as short."""
    sums: np.ndarray | None = None
    counts = np.zeros(n_groups, dtype=np.int64)
    n_short = 0
    for item in items:
        start = pool_start(item)
        if start >= len(item.input_ids):
            n_short += 1
            continue
        mean = lookup(model, item.input_ids[start:]).mean(0).numpy()
        if sums is None:
            sums = np.zeros((n_groups, mean.shape[0]), dtype=np.float64)
        sums[item.group] += mean
        counts[item.group] += 1
    if sums is None:
        width = model.get_input_embeddings().weight.shape[1]
        sums = np.zeros((n_groups, width), dtype=np.float64)
    return sums, counts, n_short


def neutral_moments(model, items: Sequence[TokenizedText], special_ids: set[int]
                    ) -> dict[str, np.ndarray | int | float]:
    """Sum [d], Gram matrix [d, d], token count and mean norm over the neutral tokens the real
    capture uses: non-special tokens from `content_start` (after the attention sink) on."""
    total = gram = None
    count, norm_sum = 0, 0.0
    pending: list[torch.Tensor] = []
    pending_n = 0

    def flush() -> None:
        nonlocal total, gram, pending, pending_n
        rows = torch.cat(pending)
        total = rows.sum(0) if total is None else total + rows.sum(0)
        gram = rows.T @ rows if gram is None else gram + rows.T @ rows
        pending, pending_n = [], 0

    for item in items:
        ids = [t for t in item.input_ids[item.content_start:] if t not in special_ids]
        if not ids:
            continue
        rows = _rows(model, ids)  # the Gram matrix is reduced where the embedding runs
        count += len(ids)
        norm_sum += float(rows.norm(dim=-1).sum())
        pending.append(rows)
        pending_n += len(ids)
        if pending_n >= TOKENS_PER_CHUNK:
            flush()
    if pending:
        flush()
    if total is None:
        raise ValueError("no neutral token to build the embedding layer's PCA from")
    return {"sum": total.cpu().numpy(), "gram": gram.cpu().numpy(), "count": count,
            "mean_norm": norm_sum / count}


def span_means(model, token_ids: Sequence[Sequence[int]],
               spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """[N, d]: the mean embedding over each prompt's half-open token span."""
    means = []
    for ids, (start, end) in zip(token_ids, spans, strict=True):
        if not 0 <= start < end <= len(ids):
            raise ValueError(f"span ({start}, {end}) is outside a prompt of {len(ids)} tokens")
        means.append(lookup(model, ids[start:end]).mean(0).numpy())
    return np.stack(means)
