"""Batched, seeded decoding with a steering vector added at every position, through the KV cache.

The vector is added by a forward hook on each steering layer's output with no position mask, so
it reaches every token the layer processes in that call. With a KV cache the prompt is processed
once and each later step processes only the new token, so every prompt token and every generated
token is steered exactly once, and the cached keys and values are those of the steered
activations: the same computation as re-running the whole steered sequence without a cache
(tests/test_steered_generation.py checks this).

Each row samples from its own `torch.Generator`, so a rollout depends on its seed, not on which
batch it landed in. Rows whose prompts are identical (every rollout of one blackmail cell) share
one prefill whose cache is then repeated, which removes the dominant cost for long prompts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from pipeline.model.devices import decoding_threads
from pipeline.model.hooks import additive_steering
from pipeline.model.prompts import (
    RenderedPrompt,
    batch_encode,
    cut_at_stop_strings,
    position_ids_from_mask,
)


@dataclass(frozen=True)
class DecodeSettings:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False
    top_k: int = 0  # 0: off; the corpus stages use transformers' sampling default, 50

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(
                f"max_new_tokens={self.max_new_tokens}; expected at least 1 token to generate"
            )
        if not self.greedy and not self.temperature > 0:
            raise ValueError(
                f"temperature={self.temperature} with sampling; expected > 0 (use greedy=True "
                "for argmax decoding)"
            )
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k}; expected 0 (off) or a positive token count")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p}; expected a number in (0, 1]")

    def describe(self) -> dict:
        described = asdict(self)
        if not self.top_k:
            del described["top_k"]  # off, as before the field existed: cache keys unchanged
        return described


@dataclass(frozen=True)
class Rollout:
    # Generated tokens, the stop token excluded; with a stop string (the raw format's next
    # "Human:" turn), only the tokens wholly before it, and `text` cut where it starts.
    token_ids: tuple[int, ...]
    text: str  # decoded, special tokens removed
    finished: bool  # stopped on an end-of-sequence token or stop string, not the length limit
    seed: int | None

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True)
class DecodeOutput:
    tokens: torch.Tensor  # [B, T_new] long; rows that stopped early are padded with pad_id
    lengths: list[int]  # generated tokens per row, the stop token excluded
    finished: list[bool]
    logits: torch.Tensor | None  # [B, T_new, V] float32, only when asked for (tests)


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def _next_tokens(
    logits: torch.Tensor, settings: DecodeSettings, generators: Sequence[torch.Generator] | None
) -> torch.Tensor:
    """logits [B, V] -> token ids [B]; nucleus sampling per row with that row's generator."""
    if settings.greedy:
        return logits.argmax(dim=-1)
    logits = logits / settings.temperature
    if settings.top_k and settings.top_k < logits.shape[-1]:
        kth = logits.topk(settings.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # [B, V]
    if settings.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Drop a token when the tokens ranked above it already hold top_p of the mass; the most
        # likely token therefore always survives.
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= settings.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    if generators is None:
        raise ValueError("sampling needs one seed per row; pass seeds or use greedy=True")
    return torch.cat(
        [torch.multinomial(probs[row], 1, generator=gen) for row, gen in enumerate(generators)]
    )


def decode(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    settings: DecodeSettings,
    *,
    eos_ids: set[int],
    pad_id: int,
    seeds: Sequence[int] | None = None,
    steering: Mapping[int, torch.Tensor] | None = None,
    share_prefill: bool = True,
    return_logits: bool = False,
    stop_strings: Sequence[str] = (),
    tokenizer=None,
    row_stop=None,
) -> DecodeOutput:
    """Decode from a left-padded batch (input_ids, attention_mask: [B, T]) with the KV cache.

    `steering` maps a decoder layer to the vector [d] added to its output at every position of
    every forward call (None or empty: no hook at all). A row also stops once its decoded text
    contains one of `stop_strings` (needs `tokenizer`); its length then counts every token up to
    and including the one that completed it, for `cut_at_stop_strings` to cut.

    `row_stop` (a transformers-style stopping criterion, e.g. pipeline.model.stopping.ItemStop built
    with prompt_width=0) is called each step with the generated tokens so far ([B, step + 1] on
    the CPU; rows already done hold pad) and returns [B] bool; a live row it ends keeps every
    token up to and including the newest, like a stop string, and is not extended again. Rows
    are independent (own generator, own logits), so stopping one changes no other row's tokens.
    """
    if stop_strings and tokenizer is None:
        raise ValueError("stop_strings need the tokenizer to decode with; pass tokenizer=")
    # A stop string ends in the newest token, and each of its characters comes from a token of
    # the window, so decoding this many trailing tokens per step is enough to see it.
    window = max((len(stop) for stop in stop_strings), default=0) + 2
    history: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    batch = input_ids.shape[0]
    if seeds is not None and len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} seeds for {batch} rows; pass one seed per row")
    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    shared = share_prefill and batch > 1 and bool((input_ids == input_ids[:1]).all())

    hook = (
        additive_steering(model, sorted(steering), dict(steering), mask=lambda: None)
        if steering
        else contextlib.nullcontext()
    )
    steps: list[torch.Tensor] = []
    step_logits: list[torch.Tensor] = []
    lengths = [settings.max_new_tokens] * batch
    with hook, decoding_threads(model, device), torch.inference_mode():
        rows = 1 if shared else batch
        mask = attention_mask[:rows]
        out = model(
            input_ids=input_ids[:rows],
            attention_mask=mask,
            position_ids=position_ids_from_mask(mask),
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        logits = out.logits[:, -1, :].float()  # [rows, V]
        if shared:
            cache.batch_repeat_interleave(batch)
            logits = logits.expand(batch, -1)
        mask = attention_mask
        positions = position_ids_from_mask(mask)[:, -1:]  # [B, 1]
        # Sampling state lives where the logits are (the last GPU of a sharded model).
        where = logits.device
        generators = None
        if seeds is not None:
            generators = [torch.Generator(device=where).manual_seed(int(s)) for s in seeds]
        done = torch.zeros(batch, dtype=torch.bool, device=where)
        stop_ids = torch.tensor(sorted(eos_ids), dtype=torch.long, device=where)
        generated = (torch.full((batch, settings.max_new_tokens), pad_id, dtype=torch.long)
                     if row_stop is not None else None)
        for step in range(settings.max_new_tokens):
            if return_logits:
                step_logits.append(logits.cpu())
            token = _next_tokens(logits, settings, generators)  # [B]
            stopped = torch.isin(token, stop_ids) & ~done  # [B] rows ending at this step
            for row in stopped.nonzero().flatten().tolist():  # one device sync per step
                lengths[row] = step
            if stop_strings:
                for row, (tok, row_done) in enumerate(zip(token.tolist(), (done | stopped).tolist(),
                                                          strict=True)):
                    if row_done:
                        continue
                    history[row].append(tok)
                    tail = tokenizer.decode(history[row][-window:], skip_special_tokens=True)
                    if any(stop in tail for stop in stop_strings):
                        lengths[row] = step + 1
                        stopped[row] = True
            if row_stop is not None:
                live = ~(done | stopped)
                generated[:, step] = torch.where(live, token, pad_id).cpu()
                ended = row_stop(generated[:, : step + 1], None).to(where) & live
                for row in ended.nonzero().flatten().tolist():
                    lengths[row] = step + 1
                stopped |= ended
            done |= stopped
            # Rows done before this step write pad; a row stopped by a string keeps its token.
            token = torch.where(done & ~stopped | torch.isin(token, stop_ids) & stopped,
                                torch.full_like(token, pad_id), token)
            steps.append(token)
            if bool(done.all()) or step == settings.max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions + 1
            out = model(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
    tokens = torch.stack(steps, dim=1).cpu()  # [B, T_new]
    return DecodeOutput(
        tokens=tokens,
        lengths=lengths,
        finished=[bool(x) for x in done.cpu()],
        logits=torch.stack(step_logits, dim=1) if return_logits else None,
    )


def generate(
    model,
    tokenizer,
    prompts: Sequence[RenderedPrompt],
    settings: DecodeSettings,
    *,
    seeds: Sequence[int] | None = None,
    steering: Mapping[int, torch.Tensor] | None = None,
    batch_size: int = 16,
    row_stop: Callable[[], object] | None = None,
) -> list[Rollout]:
    """One continuation per prompt, in batches of `batch_size`, left-padded.

    `row_stop` builds a fresh stopping criterion per batch (see `decode`); None: none.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected at least 1")
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts; pass one each")
    eos_ids = _eos_ids(model, tokenizer)
    rollouts: list[Rollout] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        chunk_seeds = None if seeds is None else list(seeds[start : start + batch_size])
        stops = {prompt.stop_strings for prompt in chunk}
        if len(stops) > 1:
            raise ValueError(
                f"prompts of one batch end their turn differently ({sorted(stops)}); render "
                "every prompt of a generate() call in one prompt format"
            )
        stop_strings = stops.pop()
        ids, mask, _ = batch_encode(chunk, tokenizer.pad_token_id, side="left")
        result = decode(
            model,
            ids,
            mask,
            settings,
            eos_ids=eos_ids,
            pad_id=tokenizer.pad_token_id,
            seeds=chunk_seeds,
            steering=steering,
            stop_strings=stop_strings,
            tokenizer=tokenizer,
            row_stop=None if row_stop is None else row_stop(),
        )
        for row in range(len(chunk)):
            tokens = [int(t) for t in result.tokens[row, : result.lengths[row]]]
            tokens, text, hit = cut_at_stop_strings(tokenizer, tokens, stop_strings)
            rollouts.append(
                Rollout(
                    token_ids=tuple(tokens),
                    text=text,
                    finished=result.finished[row] or hit,
                    seed=None if chunk_seeds is None else int(chunk_seeds[row]),
                )
            )
    return rollouts
