"""Residual-stream capture, reduced inside the hooks so memory never grows with the corpus.

Stories: each story is tokenized on its own with the tokenizer's own special tokens (one BOS for
most tokenizers, none for SmolLM2 or Qwen; no chat template: the paper leaves the wrapping open).
`TokenizedText.text_start` is the number of tokens the tokenizer inserted before the text, so the
story's k-th token (1-based) sits at position text_start + k - 1. A story's representation is the
mean from its 50th token on. A story with fewer than 50 tokens has no pooled token and is left
out of its emotion's mean and counted as short.

The attention sink: position 0 of every text, special or not, carries a residual whose norm is
orders of magnitude above the rest (SmolLM2, which adds no BOS: about 25,000 at layer 20 against
a median of about 238). It is never content: `content_start` (>= 1) is the first position after
it and before which nothing is pooled, counted in the mean norm or fed to the PCA.

Neutral dialogues: every non-special, non-pad token from `content_start` on feeds per-layer first
and second moments (sum, Gram matrix) for the token-level PCA, and the residual norms for
mean-norm scaling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from pipeline.model.devices import input_device
from pipeline.model.hooks import layer_hooks
from pipeline.model.prompts import position_ids_from_mask

POOL_FROM = 50


class NonFiniteActivations(FloatingPointError):
    pass


@dataclass(frozen=True)
class TokenizedText:
    input_ids: list[int]
    group: int  # emotion index for stories; 0 for neutral text
    source: str  # story or dialogue id, for error messages
    text_start: int  # tokens the tokenizer inserted before the text (1 for a BOS, 0 without)

    @property
    def content_start(self) -> int:
        """First position after the attention sink: position 0 is never content, BOS or not."""
        return max(self.text_start, 1)


def tokenize_texts(tokenizer, texts: Sequence[str], groups: Sequence[int], ids: Sequence[str],
                   max_tokens: int) -> list[TokenizedText]:
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=True,
                        max_length=max_tokens, return_special_tokens_mask=True)
    starts = [_leading_inserted(mask) for mask in encoded["special_tokens_mask"]]
    return [TokenizedText(e, g, i, s)
            for e, g, i, s in zip(encoded["input_ids"], groups, ids, starts, strict=True)]


def _leading_inserted(special_tokens_mask: Sequence[int]) -> int:
    # The mask marks tokens the tokenizer added itself (BOS), not special-token text in the input.
    count = 0
    while count < len(special_tokens_mask) and special_tokens_mask[count]:
        count += 1
    return count


def pool_start(item: TokenizedText) -> int:
    """Position of the story's POOL_FROM-th token, never before the sink is past."""
    return max(item.text_start + POOL_FROM - 1, item.content_start)


def _per_row(values: Sequence[int], mask: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)[:, None].expand_as(mask)


def length_batches(items: Sequence[TokenizedText], token_budget: int) -> list[list[int]]:
    """Indices grouped by similar length (little padding), each batch <= token_budget tokens."""
    lengths = [len(item.input_ids) for item in items]
    return pack_in_order(sorted(range(len(items)), key=lengths.__getitem__), lengths,
                         token_budget)


def pack_in_order(order: Sequence[int], lengths: Sequence[int],
                  token_budget: int) -> list[list[int]]:
    """Consecutive runs of `order` whose padded size (longest x count) stays <= token_budget; a
    single item longer than the budget gets a batch of its own. Sort `order` by length first
    for little padding."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        length = lengths[index]
        if current and max(longest, length) * (len(current) + 1) > token_budget:
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, *,
             left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B, T] and attention mask, padded on the left (capture: every row ends at the
    last column) or on the right (training: position i is token i of every row)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[b, span] = torch.tensor(list(row), dtype=torch.long)
        mask[b, span] = 1
    return ids, mask


def base_model(model):
    """The decoder stack without the LM head: capture never needs vocabulary logits."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    return decoder if decoder is not None else model.model


class StoryAccumulator:
    """Per-layer, per-emotion fp64 sums of story means (each on its layer's device)."""

    def __init__(self, n_layers: int, n_groups: int, keep_layer: int | None = None):
        self.n_groups = n_groups
        self.sums: list[torch.Tensor | None] = [None] * n_layers
        self.counts = torch.zeros(n_groups, dtype=torch.long)
        self.keep_layer = keep_layer
        self.kept: list[torch.Tensor] = []
        self.weights: torch.Tensor | None = None  # [B, T] pooling weights of the current batch
        self.groups: torch.Tensor | None = None  # [B]
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self.bad: dict[int, torch.Tensor] = {}

    def set_batch(self, weights: torch.Tensor, groups: torch.Tensor) -> None:
        self.weights, self.groups = weights, groups
        self._on_device = {}
        self.bad = {}

    def _batch_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # With a device map, layers sit on several devices: copy the batch once per device.
        if device not in self._on_device:
            self._on_device[device] = (self.weights.to(device), self.groups.to(device))
        return self._on_device[device]

    def __call__(self, layer: int, hidden: torch.Tensor) -> None:
        weights, groups = self._batch_on(hidden.device)
        means = torch.einsum("bt,btd->bd", weights, hidden.float()).double()  # [B, d]
        if self.sums[layer] is None:
            self.sums[layer] = torch.zeros(
                self.n_groups, hidden.shape[-1], dtype=torch.float64, device=hidden.device
            )
        self.sums[layer].index_add_(0, groups, means)
        self.bad[layer] = ~torch.isfinite(means).all(dim=1)  # no host sync inside the hook
        if layer == self.keep_layer:
            self.kept.append(means.float().cpu())


class NeutralAccumulator:
    """Per-layer token moments for PCA and residual-norm sums over neutral tokens."""

    def __init__(self, n_layers: int, pca_layers: Sequence[int]):
        self.pca_layers = set(pca_layers)
        self.sum: dict[int, torch.Tensor] = {}
        self.gram: dict[int, torch.Tensor] = {}
        self.norm_sum = torch.zeros(n_layers, dtype=torch.float64)
        self.count = 0
        self.token_mask: torch.Tensor | None = None  # [B, T] bool
        self._norms: dict[int, torch.Tensor] = {}
        self._on_device: dict[torch.device, torch.Tensor] = {}  # token_mask per layer device
        self.bad: dict[int, torch.Tensor] = {}

    def set_batch(self, token_mask: torch.Tensor) -> None:
        self.token_mask = token_mask
        self._on_device = {}
        self.count += int(token_mask.sum())
        self.bad = {}

    def __call__(self, layer: int, hidden: torch.Tensor) -> None:
        if hidden.device not in self._on_device:
            self._on_device[hidden.device] = self.token_mask.to(hidden.device)
        tokens = hidden[self._on_device[hidden.device]].double()  # [N, d]
        self.bad[layer] = ~torch.isfinite(tokens).all()
        norms = tokens.norm(dim=-1).sum()
        self._norms[layer] = self._norms.get(layer, 0) + norms
        if layer in self.pca_layers:
            if layer not in self.sum:
                d = hidden.shape[-1]
                self.sum[layer] = torch.zeros(d, dtype=torch.float64, device=hidden.device)
                self.gram[layer] = torch.zeros(d, d, dtype=torch.float64, device=hidden.device)
            self.sum[layer] += tokens.sum(0)
            self.gram[layer] += tokens.T @ tokens

    def norm_means(self) -> torch.Tensor:
        for layer, total in self._norms.items():
            self.norm_sum[layer] = float(total)
        return self.norm_sum / max(self.count, 1)


def _raise_if_nonfinite(bad: dict[int, torch.Tensor], sources: Sequence[str]) -> None:
    for layer, flags in sorted(bad.items()):
        flags = flags.cpu()
        if flags.any():
            rows = [sources[i] for i in flags.nonzero().flatten().tolist()] if flags.ndim else sources
            raise NonFiniteActivations(
                f"NaN or inf activations at layer {layer} for {list(rows)[:5]}; check the model's "
                "dtype (float16 overflows in some models; use bfloat16 or float32) and weights"
            )


def _forward(model, ids: torch.Tensor, mask: torch.Tensor) -> None:
    device = input_device(model)
    with torch.inference_mode():
        base_model(model)(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=position_ids_from_mask(mask).to(device),
            use_cache=False,
        )


def capture_stories(
    model,
    items: Sequence[TokenizedText],
    *,
    n_groups: int,
    pad_id: int,
    token_budget: int,
    keep_layer: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict:
    """Per-emotion sums and counts of story means at every layer, in one pass."""
    n_layers = len(_layers(model))
    acc = StoryAccumulator(n_layers, n_groups, keep_layer)
    kept_order: list[int] = []
    n_short = 0
    with layer_hooks(model, range(n_layers), acc):
        for batch in length_batches(items, token_budget):
            ids, mask = pad_rows([items[i].input_ids for i in batch], pad_id, left=True)
            positions = position_ids_from_mask(mask)
            starts = _per_row([pool_start(items[i]) for i in batch], mask)
            pooled = (mask.bool() & (positions >= starts)).float()  # [B, T]
            n_pooled = pooled.sum(1, keepdim=True)
            short = n_pooled.squeeze(1) == 0
            n_short += int(short.sum())
            weights = pooled / n_pooled.clamp(min=1)
            groups = torch.tensor([items[i].group for i in batch])
            acc.set_batch(weights, groups)
            _forward(model, ids, mask)
            _raise_if_nonfinite(acc.bad, [items[i].source for i in batch])
            acc.counts.index_add_(0, groups, (~short).long())
            kept_order.extend(batch)
            if on_batch:
                on_batch(len(batch))
    # Each layer's sums were reduced on its own device; each crosses to the host once, here.
    sums = torch.stack([s.cpu() for s in acc.sums])  # [L, E, d]
    result = {"sums": sums, "counts": acc.counts, "n_short": n_short}
    if keep_layer is not None:
        means = torch.cat(acc.kept)  # rows in batch order; put them back in item order
        order = torch.tensor(kept_order)
        restored = torch.empty_like(means)
        restored[order] = means
        result["story_means"] = restored
    return result


def capture_neutral(
    model,
    items: Sequence[TokenizedText],
    *,
    special_ids: set[int],
    pad_id: int,
    token_budget: int,
    pca_layers: Sequence[int] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict:
    """Token moments at `pca_layers` (default all) and mean residual norms at every layer."""
    n_layers = len(_layers(model))
    layers = list(range(n_layers))
    acc = NeutralAccumulator(n_layers, layers if pca_layers is None else pca_layers)
    special = torch.tensor(sorted(special_ids)) if special_ids else torch.empty(0, dtype=torch.long)
    with layer_hooks(model, layers, acc):
        for batch in length_batches(items, token_budget):
            ids, mask = pad_rows([items[i].input_ids for i in batch], pad_id, left=True)
            positions = position_ids_from_mask(mask)
            starts = _per_row([items[i].content_start for i in batch], mask)
            # The sink is dropped by position, not by id: without a BOS it is an ordinary word.
            token_mask = mask.bool() & ~torch.isin(ids, special) & (positions >= starts)
            acc.set_batch(token_mask)
            _forward(model, ids, mask)
            _raise_if_nonfinite({k: v.reshape(1) for k, v in acc.bad.items()},
                                [f"neutral batch of {items[batch[0]].source}"])
            if on_batch:
                on_batch(len(batch))
    return {
        "sum": {k: v.cpu() for k, v in acc.sum.items()},
        "gram": {k: v.cpu() for k, v in acc.gram.items()},
        "count": acc.count,
        "mean_norms": acc.norm_means(),
    }


def _layers(model):
    from pipeline.model.loading import decoder_layers

    return decoder_layers(model)
