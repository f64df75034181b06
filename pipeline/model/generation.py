"""Batched sampling with left padding, through `model.generate` (transformers backend)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from pipeline.model.devices import decoding_threads, input_device
from pipeline.model.prompts import RenderedPrompt, batch_encode, cut_at_stop_strings


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 0.95
    do_sample: bool = True
    seed: int = 0
    # transformers' generate applies top_k = 50 unless told otherwise; it is spelled out so the
    # per-job sampler (generate_seeded) and vLLM sample the same distribution as generate did.
    top_k: int = 50
    # Stop a row once it has generated this many `item_marker` lines ("story"/"dialogue"): the
    # call's last item is then complete (pipeline.model.stopping). 0: only end-of-turn and the limit.
    stop_after_items: int = 0
    item_marker: str = ""

    def describe(self) -> dict:
        data = asdict(self)
        if not self.stop_after_items:  # keys of corpora sampled without it stay as they were
            del data["stop_after_items"], data["item_marker"]
        return data


@dataclass(frozen=True)
class Generation:
    text: str  # decoded continuation, special tokens removed
    n_tokens: int
    finished: bool  # stopped on an end-of-turn token or stop string, not the length limit


_PER_TOKENIZER: dict[tuple[int, str], object] = {}


def _cached(tokenizer, build):
    """One `build(tokenizer)` per tokenizer object (a vocabulary scan is not per batch work)."""
    key = (id(tokenizer), build.__name__)
    if key not in _PER_TOKENIZER:
        _PER_TOKENIZER[key] = build(tokenizer)
    return _PER_TOKENIZER[key]


def generate_batch(
    model, tokenizer, prompts: Sequence[RenderedPrompt], settings: SamplingSettings, seed: int
) -> list[Generation]:
    """Sample one continuation per prompt. `seed` fixes this batch's sampling stream."""
    device = input_device(model)  # with a device map: where the embedding runs
    input_ids, attention_mask, _ = batch_encode(prompts, tokenizer.pad_token_id, side="left")
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    torch.manual_seed(seed)
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    stop_strings = sorted({stop for prompt in prompts for stop in prompt.stop_strings})
    # The raw format's next "Human:" turn ends a base model's answer (transformers stops a row
    # once its text ends in a stop string); the marker and what follows are cut below.
    stopping = {"stop_strings": stop_strings, "tokenizer": tokenizer} if stop_strings else {}
    item_stop = None
    if settings.stop_after_items:
        from transformers import StoppingCriteriaList

        from pipeline.model.stopping import ItemStop, newline_token_ids

        item_stop = ItemStop(tokenizer, input_ids.shape[1], settings.stop_after_items,
                             settings.item_marker, _cached(tokenizer, newline_token_ids))
    with decoding_threads(model, device), torch.inference_mode():
        output = model.generate(
            stopping_criteria=StoppingCriteriaList([item_stop]) if item_stop else None,
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            temperature=settings.temperature if settings.do_sample else None,
            top_p=settings.top_p if settings.do_sample else None,
            top_k=settings.top_k if settings.do_sample else None,
            pad_token_id=tokenizer.pad_token_id,
            **stopping,
        )
    new = output[:, input_ids.shape[1] :].tolist()
    cuts = item_stop.cut_positions(len(new)) if item_stop else [None] * len(new)
    results = []
    for row, prompt, cut in zip(new, prompts, cuts, strict=True):
        stop = next((i for i, tok in enumerate(row) if tok in eos_ids), None)
        if cut is not None and (stop is None or cut < stop):
            stop = cut  # the last item is complete: the marker line of the next one is dropped
        tokens = row if stop is None else row[:stop]
        tokens, text, hit = cut_at_stop_strings(tokenizer, tokens, prompt.stop_strings)
        results.append(Generation(text=text, n_tokens=len(tokens),
                                  finished=stop is not None or hit))
    return results


def generate_seeded(
    model, tokenizer, prompts: Sequence[RenderedPrompt], settings: SamplingSettings,
    seeds: Sequence[int],
) -> list[Generation]:
    """Sample one continuation per prompt, row k from its own generator seeded `seeds[k]`.

    Unlike `generate_batch` (one stream for the whole batch, so a row's text depends on its
    batch mates), a row here depends on its seed and its own logits only. The logits still
    carry the floating-point effect of the batch's padding, which is why the corpus stages put
    the batch size in their cache key (pipeline.stages.extraction.StageSettings).
    """
    from pipeline.model.steered_generation import DecodeSettings, generate

    if len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts; pass one each")
    decode = DecodeSettings(max_new_tokens=settings.max_new_tokens,
                            temperature=settings.temperature, top_p=settings.top_p,
                            top_k=settings.top_k, greedy=not settings.do_sample)
    row_stop = None
    if settings.stop_after_items:
        from pipeline.model.stopping import ItemStop, newline_token_ids

        newline = _cached(tokenizer, newline_token_ids)

        def row_stop():
            # A row stops sampling on the token that completes the marker line of item n + 1;
            # `cut_after_items` then drops that line, as generate_batch's criterion does.
            return ItemStop(tokenizer, 0, settings.stop_after_items, settings.item_marker,
                            newline)

    rollouts = generate(model, tokenizer, prompts, decode, seeds=list(seeds),
                        batch_size=max(1, len(prompts)), row_stop=row_stop)
    return cut_after_items(tokenizer, rollouts, settings)


def cut_after_items(tokenizer, rollouts, settings: SamplingSettings) -> list[Generation]:
    """Generations from seeded rollouts, each cut before its item n + 1 (`stop_after_items`).

    The rule is causal (it fires on the first token that completes the n-th generated marker
    line), so the cut is the same whether the row ran on to its length limit or stopped there.
    """
    out = [Generation(text=r.text, n_tokens=r.n_tokens, finished=r.finished) for r in rollouts]
    if settings.stop_after_items:
        from pipeline.model.stopping import item_cut, newline_token_ids

        newline = _cached(tokenizer, newline_token_ids)
        for k, r in enumerate(rollouts):
            cut = item_cut(tokenizer, r.token_ids, settings.stop_after_items,
                           settings.item_marker, newline)
            if cut is not None:
                kept = r.token_ids[:cut]
                out[k] = Generation(text=tokenizer.decode(kept, skip_special_tokens=True),
                                    n_tokens=len(kept), finished=True)
    return out
