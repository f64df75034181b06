"""The A/B preference pass: 4032 ordered prompts, logit(A) - logit(B) at the last position only.

Paper section 3.2: "Would you prefer to (A) {activity_A} or (B) {activity_B}?" with "(" as the
start of the assistant's reply, and the A and B logits read at the next position. Each prompt is
rendered in the model's own format (`render_prompt`), so with a chat template the prefill "(" is
the first token of the assistant turn and the answer token is the bare letter.

Cost control, because the steering experiment reruns the pass 38 times:
- the decoder runs without the LM head; the already normalised last hidden state meets only the
  two unembedding rows of A and B ([B, d] @ [d, 2]), never the vocabulary at every position;
- prompts are tokenized and padded once (`encode_batches`) into length-sorted batches that every
  pass reuses, so a prompt always sits in the same batch with the same padding and a pass that
  changes nothing reproduces the baseline bit for bit;
- a steered pass can start at the first steering layer: the baseline pass stores that layer's
  output (`capture_layer`) and the steered pass replays it (`replay`), since steering changes
  nothing below the layer it is added at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.inputs.stimuli import Activity, load_preference_prompt_templates
from pipeline.model.capture import base_model
from pipeline.model.hooks import additive_steering, check_layers, hidden_of
from pipeline.model.prompts import (
    RenderedPrompt,
    batch_encode,
    check_prefill_boundary,
    check_text_span,
    position_ids_from_mask,
    render_prompt,
    text_token_span,
)

Span = tuple[int, int]  # half-open token range in the prompt's own coordinates
CHOICES = ("A", "B")


class ChoiceTokenError(ValueError):
    """An answer letter is not exactly one token after the prefill."""


@dataclass(frozen=True)
class PreferencePrompt:
    """One ordered pair: activity `a` as option (A), activity `b` as option (B)."""

    a: int  # index into the activity list (Table 9 order)
    b: int
    rendered: RenderedPrompt
    span_a: Span  # tokens of activity a's text in the prompt
    span_b: Span


def ordered_pairs(n: int) -> list[tuple[int, int]]:
    """Every ordered pair (i, j), i != j, row-major: i as A, j as B (n * (n - 1) pairs)."""
    if n < 2:
        raise ValueError(f"n={n}; need at least 2 activities to form pairs")
    return [(i, j) for i in range(n) for j in range(n) if i != j]


def pairwise_user_message(template: str, text_a: str, text_b: str) -> tuple[str, Span, Span]:
    """The user message and the character spans of the two activities in it.

    The spans come from where the placeholders sit in the template, not from searching the
    filled text, so an activity that also occurs inside the other one cannot be mislocated.
    """
    slot_a, slot_b = "{activity_A}", "{activity_B}"
    if template.count(slot_a) != 1 or template.count(slot_b) != 1:
        raise ValueError(
            f"preference template {template!r} must contain {slot_a} and {slot_b} once each"
        )
    start_a = template.index(slot_a)
    if template.index(slot_b) < start_a:
        raise ValueError(f"preference template {template!r} puts {slot_b} before {slot_a}")
    start_b = template.index(slot_b) - len(slot_a) + len(text_a)
    message = template.replace(slot_a, text_a, 1).replace(slot_b, text_b, 1)
    return message, (start_a, start_a + len(text_a)), (start_b, start_b + len(text_b))


def build_preference_prompts(
    tokenizer,
    activities: Sequence[Activity],
    *,
    fmt: str,
    chat_template_args: dict[str, Any],
) -> list[PreferencePrompt]:
    """All n * (n - 1) ordered A/B prompts, in `ordered_pairs` order, with activity token spans."""
    templates = load_preference_prompt_templates()
    prompts = []
    for i, j in ordered_pairs(len(activities)):
        message, chars_a, chars_b = pairwise_user_message(
            templates.pairwise_user, activities[i].text, activities[j].text
        )
        rendered = render_prompt(
            tokenizer, message, fmt=fmt, chat_template_args=chat_template_args,
            assistant_prefill=templates.pairwise_prefill,
        )
        user_start = rendered.spans["user"][0]
        label = (f"A/B prompt {len(prompts)} (activities ranked {activities[i].rank} vs "
                 f"{activities[j].rank})")
        spans = []
        for option, chars in (("A", chars_a), ("B", chars_b)):
            start, end = user_start + chars[0], user_start + chars[1]
            what = f"option {option} of {label}"
            span = text_token_span(rendered, start, end, what=what)
            check_text_span(rendered, span, start, end, what=what)
            spans.append(span)
        check_prefill_boundary(rendered, what=label)
        span_a, span_b = spans
        prompts.append(PreferencePrompt(i, j, rendered, span_a, span_b))
    return prompts


@dataclass(frozen=True)
class ChoiceTokens:
    a_id: int
    b_id: int
    a_text: str  # the token as the tokenizer decodes it, for provenance
    b_text: str
    # True when the tokenizer would merge the letter into the prefill's token ("(A" as one
    # token, as Llama 3's pre-tokenizer allows); the bare-letter tokens are read all the same.
    merged_with_prefill: bool = False


def resolve_choice_tokens(tokenizer, rendered: RenderedPrompt, *, fmt: str) -> ChoiceTokens:
    """The ids of the A and B tokens read at the position after the prompt's prefill.

    The prompt ends in the prefill's own token ("(" or " ("), so the answer is the bare letter.
    The letter's id is the token that tokenizing prompt + letter appends; when the tokenizer
    instead merges the letter into the prefill (byte-level BPE can make "(A" one token), it is
    the letter tokenized alone, which must then be one token that decodes to exactly the
    letter. Anything else raises ChoiceTokenError: there is no single next token to read.
    """
    ids, merged = {}, False
    n = len(rendered.input_ids)
    for letter in CHOICES:
        extended = list(tokenizer(rendered.text + letter,
                                  add_special_tokens=fmt == "raw")["input_ids"])
        if extended[:n] == rendered.input_ids and len(extended) == n + 1:
            ids[letter] = extended[n]
            continue
        merged = True
        alone = list(tokenizer(letter, add_special_tokens=False)["input_ids"])
        if len(alone) != 1 or tokenizer.decode(alone) != letter:
            pieces = [tokenizer.decode([t]) for t in alone]
            raise ChoiceTokenError(
                f"the answer {letter!r} is not a single token of its own for the tokenizer "
                f"{tokenizer.name_or_path!r}: after the prefill {rendered.text[-12:]!r} it does "
                f"not add one token, and alone it tokenizes as {pieces}. The A/B readout needs "
                "one next-token id per option; use a model whose tokenizer has the bare letters "
                "as tokens, or another prompt format (prompt_format in data/models.toml)"
            )
        ids[letter] = alone[0]
    if ids["A"] == ids["B"]:
        raise ChoiceTokenError(f"A and B map to the same token id {ids['A']}")
    return ChoiceTokens(ids["A"], ids["B"], tokenizer.decode([ids["A"]]),
                        tokenizer.decode([ids["B"]]), merged)


@dataclass(frozen=True)
class ChoiceReadout:
    """The unembedding restricted to the two answer tokens."""

    weight: torch.Tensor  # [2, d] float32: rows of W_U for A and B
    bias: torch.Tensor | None  # [2] or None
    softcap: float | None  # final logit soft-capping (Gemma 2 style), None for most models

    def logit_diff(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """last_hidden [B, d], already through the final norm -> logit(A) - logit(B) [B]."""
        logits = last_hidden.float() @ self.weight.T  # [B, 2]
        if self.bias is not None:
            logits = logits + self.bias
        if self.softcap:
            logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits[:, 0] - logits[:, 1]


def choice_readout(model, choice: ChoiceTokens) -> ChoiceReadout:
    head = model.get_output_embeddings()
    rows = [choice.a_id, choice.b_id]
    weight = head.weight[rows].detach().float()  # [2, d]
    bias = getattr(head, "bias", None)
    bias = bias[rows].detach().float() if bias is not None else None
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else (
        model.config)
    softcap = getattr(config, "final_logit_softcapping", None)
    return ChoiceReadout(weight, bias, float(softcap) if softcap else None)


# ---------------------------------------------------------------------------------------------
# Batching


def plan_batches(
    lengths: Sequence[int], groups: Sequence[int], token_budget: int
) -> list[list[int]]:
    """Prompt indices in batches of one group each, sorted by length, <= token_budget tokens.

    Groups let a later pass rerun only some batches (the prompts that contain a steered
    activity) while every prompt keeps the batch, and so the padding, it had in the baseline.
    """
    if len(lengths) != len(groups):
        raise ValueError(f"{len(lengths)} lengths but {len(groups)} groups; pass one per prompt")
    if token_budget < max(lengths, default=1):
        raise ValueError(
            f"token_budget={token_budget} is below the longest prompt ({max(lengths)} tokens); "
            "raise it so every prompt fits in a batch"
        )
    order = sorted(range(len(lengths)), key=lambda i: (groups[i], lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        fits = (len(current) + 1) * lengths[index] <= token_budget
        if current and (groups[current[0]] != groups[index] or not fits):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True)
class EncodedBatch:
    """One padded batch, tokenized once and reused by every pass."""

    indices: tuple[int, ...]  # prompt indices, row order
    input_ids: torch.Tensor  # [B, T] long, left-padded
    attention_mask: torch.Tensor  # [B, T] long
    position_ids: torch.Tensor  # [B, T] long, counting real tokens only
    shift: tuple[int, ...]  # token t of row b sits at column t + shift[b]
    group: int


def encode_batches(
    prompts: Sequence[RenderedPrompt],
    plan: Sequence[Sequence[int]],
    groups: Sequence[int],
    *,
    pad_id: int,
    device: torch.device | str = "cpu",
) -> list[EncodedBatch]:
    """Left-pad each planned batch; left padding puts every last token in column T - 1."""
    batches = []
    for indices in plan:
        ids, mask, shift = batch_encode([prompts[i] for i in indices], pad_id, side="left")
        batches.append(EncodedBatch(
            tuple(indices), ids.to(device), mask.to(device),
            position_ids_from_mask(mask).to(device), tuple(shift), groups[indices[0]],
        ))
    return batches


# ---------------------------------------------------------------------------------------------
# The pass


@dataclass
class Steering:
    """What a steered pass adds: vectors[layer] ([d]) wherever masks[batch position] is 1."""

    layers: tuple[int, ...]
    vectors: dict[int, torch.Tensor]
    masks: Callable[[int], torch.Tensor]  # batch position in the pass -> [B, T] float


@dataclass
class LayerCache:
    """One layer's output for each batch of a pass, to start later passes from there."""

    layer: int
    outputs: dict[int, torch.Tensor]  # batch position -> [B, T, d]
    tuple_outputs: bool = False  # whether the layer returned (hidden, ...) rather than hidden


def preference_pass(
    model,
    batches: Sequence[EncodedBatch],
    readout: ChoiceReadout,
    *,
    steering: Steering | None = None,
    capture_layer: int | None = None,
    replay: LayerCache | None = None,
    only: Sequence[int] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[dict[int, float], LayerCache | None]:
    """logit(A) - logit(B) per prompt index, for the batches at positions `only` (default all).

    capture_layer: store that decoder layer's output per batch and return it as a LayerCache.
    replay: a LayerCache from a previous pass over the same batches; its layer and those below
    it are not recomputed, so steering must be at that layer or deeper.
    """
    if replay is not None and steering is not None and min(steering.layers) < replay.layer:
        raise ValueError(
            f"replaying layer {replay.layer} but steering starts at layer "
            f"{min(steering.layers)}; replay a layer at or below the first steering layer"
        )
    positions = range(len(batches)) if only is None else list(only)
    diffs: dict[int, float] = {}
    cache = LayerCache(capture_layer, {}) if capture_layer is not None else None
    current = {"position": 0}  # the batch being run, read by the hooks

    with ExitStack() as stack:
        if steering is not None:
            stack.enter_context(additive_steering(
                model, steering.layers, steering.vectors,
                lambda: steering.masks(current["position"])))
        if cache is not None:
            stack.enter_context(_capture(model, cache, current))
        if replay is not None:
            stack.enter_context(_replayed(model, replay, current))
        stack.enter_context(torch.inference_mode())
        for position in positions:
            batch = batches[position]
            current["position"] = position
            if replay is not None and position not in replay.outputs:
                raise ValueError(
                    f"the replay cache has no output for batch {position}; capture it in a pass "
                    "over the same batches first"
                )
            output = base_model(model)(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                position_ids=batch.position_ids, use_cache=False,
            )
            # Left padding: column -1 is every row's last real token, already final-normed.
            values = readout.logit_diff(output.last_hidden_state[:, -1]).cpu().numpy()  # [B]
            diffs.update(zip(batch.indices, values.astype(np.float64).tolist(), strict=True))
            if on_batch:
                on_batch(len(batch.indices))
    return diffs, cache


@contextmanager
def _capture(model, cache: LayerCache, current: dict[str, int]) -> Iterator[None]:
    block = check_layers(model, [cache.layer])[cache.layer]

    def hook(_module, _inputs, output):
        cache.tuple_outputs = isinstance(output, tuple)
        cache.outputs[current["position"]] = hidden_of(output).clone()  # [B, T, d]

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def _replayed(model, cache: LayerCache, current: dict[str, int]) -> Iterator[None]:
    """Layers 0..cache.layer return the cached output instead of computing.

    Each block's `forward` is swapped for the duration of the context (and restored in
    `finally`), so forward hooks on these blocks, such as steering at cache.layer, still run
    on the replayed output. Blocks below it pass their input through untouched: nothing reads it.
    """
    blocks = check_layers(model, [cache.layer])

    def wrap(hidden: torch.Tensor):
        return (hidden,) if cache.tuple_outputs else hidden

    def passthrough(hidden_states, *args, **kwargs):
        return wrap(hidden_states)

    def replay(hidden_states, *args, **kwargs):
        # Stored on the device the layer ran on; a dispatched next block moves it as usual.
        return wrap(cache.outputs[current["position"]])

    saved = []
    try:
        for index in range(cache.layer + 1):
            block = blocks[index]
            saved.append((block, block.__dict__.get("forward")))
            block.forward = replay if index == cache.layer else passthrough
        yield
    finally:
        for block, original in saved:
            if original is None:
                del block.forward
            else:
                block.forward = original
