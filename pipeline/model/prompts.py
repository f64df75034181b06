"""Prompt rendering: the single place where a prompt becomes text, token ids and token spans.

Two formats (the registry's `prompt_format`):

- "chat": the tokenizer's own chat template with the generation prompt,
  `apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **chat_template_args)`.
  The template writes the BOS into the text, so the text is tokenized with
  `add_special_tokens=False` (DESIGN.md pitfall 5: re-tokenizing with special tokens gives two).
- "raw": the paper's literal transcript `Human: {user}\n\nAssistant:`, with an optional system
  prompt and a blank line before "Human:". The tokenizer adds its BOS itself
  (`add_special_tokens=True`), exactly as it would for any plain text. Only a BOS repeated at the
  very start is refused (template BOS plus tokenizer BOS); a template may repeat its BOS id per
  turn (SmolLM2: `<|im_start|>`), and some tokenizers add none (Qwen).

The read position (the paper's "Assistant colon") is always the last token of the rendered prompt:
the last token of the generation prompt (chat) or the ':' of "Assistant:" (raw); with a prefill
such as "(" it is the prefill's last token.

Offsets are the fast tokenizer's character offsets into `RenderedPrompt.text`, unchanged:
a special token written in the text (the chat template's BOS and headers) has its true span,
for example (0, 17) for "<|begin_of_text|>", and a special token the tokenizer inserts itself
(the raw format's BOS) has the empty span (0, 0). Byte-level BPE attaches the space before a word
to the word's token, so the token " walk" starts at the space; span lookups count every token that
overlaps the requested characters, so such a token belongs to the word's span.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase

PromptFormat = Literal["chat", "raw"]
PROMPT_FORMATS: tuple[str, ...] = ("chat", "raw")
PaddingSide = Literal["left", "right"]

RAW_TEMPLATE = "Human: {user}\n\nAssistant:"
# The raw transcript's next turn. A base model continuing "Assistant:" writes its answer and then
# invents the next "Human:" turn; generation stops there and the marker and all after it are cut,
# as a chat model's end-of-turn token ends its answer.
RAW_NEXT_TURN = "\n\nHuman:"

# Stands in for a message's content to find where the template puts it; no template alters it.
_SENTINEL = "@@EMOTION_SCORECARD_{role}@@"
_RESERVED_TEMPLATE_ARGS = ("conversation", "add_generation_prompt", "tokenize", "return_dict")


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt as text and as tokens, with the character spans of its named pieces.

    `spans` holds half-open character ranges into `text`: "user" (always), "system" (when a
    system prompt was given) and "prefill" (when the assistant turn was prefilled).
    `stop_strings`: text that ends the assistant's turn besides the end-of-turn tokens
    (raw format: the next "Human:" turn; chat format: none, the template has its own token).
    """

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    read_position: int
    spans: dict[str, tuple[int, int]]
    stop_strings: tuple[str, ...] = ()
    # Where the prompt ends and the assistant's prefill begins, the raw format's separating space
    # included (None without a prefill): no token may run across it (`check_prefill_boundary`).
    prompt_end: int | None = None

    def token_span(self, name: str) -> tuple[int, int]:
        """Half-open token range of the named piece, e.g. `rendered.token_span("user")`."""
        if name not in self.spans:
            raise ValueError(
                f"no span named {name!r} in this prompt; it has {sorted(self.spans)} "
                "(system and prefill exist only when they were passed to render_prompt)"
            )
        return char_span_to_token_span(self.offsets, *self.spans[name])


def render_prompt(
    tokenizer: PreTrainedTokenizerBase,
    user: str,
    *,
    fmt: str,
    chat_template_args: Mapping[str, Any],
    system: str | None = None,
    assistant_prefill: str = "",
) -> RenderedPrompt:
    """Render one user turn (plus optional system prompt and prefill) and tokenize it once."""
    if fmt not in PROMPT_FORMATS:
        raise ValueError(
            f"unknown prompt format {fmt!r}; expected one of {PROMPT_FORMATS} "
            "(set prompt_format in data/models.toml)"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{type(tokenizer).__name__} is not a fast tokenizer; token offsets need one "
            "(load it with AutoTokenizer.from_pretrained(..., use_fast=True))"
        )
    if fmt == "chat":
        prompt, spans = _render_chat(tokenizer, user, system, chat_template_args)
        text = prompt + assistant_prefill
        prefill_start = len(prompt)
    else:
        prompt, spans = _render_raw(user, system)
        text = f"{prompt} {assistant_prefill}" if assistant_prefill else prompt
        prefill_start = len(prompt) + 1
    if assistant_prefill:
        spans["prefill"] = (prefill_start, len(text))

    encoding = tokenizer(
        text,
        add_special_tokens=fmt == "raw",
        return_offsets_mapping=True,
        return_attention_mask=False,
    )
    input_ids = list(encoding["input_ids"])
    offsets = [(int(start), int(end)) for start, end in encoding["offset_mapping"]]
    _check_single_bos(tokenizer, input_ids, fmt)
    if not input_ids:
        raise ValueError(f"prompt {text!r} tokenized to no tokens")
    return RenderedPrompt(
        text=text,
        input_ids=input_ids,
        offsets=offsets,
        read_position=len(input_ids) - 1,
        spans=spans,
        stop_strings=(RAW_NEXT_TURN,) if fmt == "raw" else (),
        prompt_end=len(prompt) if assistant_prefill else None,
    )


def stop_key(fmt: str) -> dict[str, str]:
    """Cache-key entry for generation in `fmt`: raw-format text now ends at the next turn (chat
    keys are left as they were, their text is unchanged)."""
    return {"raw_next_turn_stop": RAW_NEXT_TURN} if fmt == "raw" else {}


def cut_at_stop_strings(
    tokenizer: PreTrainedTokenizerBase, token_ids: Sequence[int], stop_strings: Sequence[str]
) -> tuple[list[int], str, bool]:
    """(tokens wholly before the first stop string, the text cut there, whether one was found).

    A token that straddles the stop string's start (Qwen writes "\n\n" as one token) is dropped
    with it: readouts average over the tokens, and none of them may carry the next turn.
    """
    tokens = list(token_ids)
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    hits = [text.find(stop) for stop in stop_strings if stop and stop in text]
    if not hits:
        return tokens, text, False
    cut = min(hits)
    keep = len(tokens)
    # Generation stops right after the marker, so only the last few tokens are walked back.
    while keep > 0:
        prefix = tokenizer.decode(tokens[:keep], skip_special_tokens=True)
        if len(prefix) <= cut:
            break
        keep -= 1
    return tokens[:keep], text[:cut], True


def _render_raw(user: str, system: str | None) -> tuple[str, dict[str, tuple[int, int]]]:
    head = f"{system}\n\n" if system is not None else ""
    text = head + RAW_TEMPLATE.format(user=user)
    user_start = len(head) + len("Human: ")
    spans = {"user": (user_start, user_start + len(user))}
    if system is not None:
        spans["system"] = (0, len(system))
    return text, spans


def _render_chat(
    tokenizer: PreTrainedTokenizerBase,
    user: str,
    system: str | None,
    chat_template_args: Mapping[str, Any],
) -> tuple[str, dict[str, tuple[int, int]]]:
    template = tokenizer.chat_template
    if not template:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat template; use prompt_format "
            "'raw' for this model or load a tokenizer that ships one"
        )
    reserved = [key for key in _RESERVED_TEMPLATE_ARGS if key in chat_template_args]
    if reserved:
        raise ValueError(
            f"chat_template_args must not set {reserved}; render_prompt fixes those itself"
        )
    if "strftime_now" in str(template) and "date_string" not in chat_template_args:
        raise ValueError(
            f"the chat template of {tokenizer.name_or_path!r} prints today's date unless "
            "date_string is given, which makes prompts change from day to day; pass "
            "chat_template_args={'date_string': '26 Jul 2024'} (or any fixed date)"
        )

    def apply(system_content: str | None, user_content: str) -> str:
        messages = [{"role": "user", "content": user_content}]
        if system_content is not None:
            messages.insert(0, {"role": "system", "content": system_content})
        rendered = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **chat_template_args
        )
        if not isinstance(rendered, str):
            raise ValueError(
                f"apply_chat_template returned {type(rendered).__name__}, expected str; "
                "check chat_template_args for options that change the return type"
            )
        return rendered

    text = apply(system, user)
    spans: dict[str, tuple[int, int]] = {}

    # The user turn is the last message, so the text after it (end of turn plus the generation
    # prompt) does not depend on its content; the text before the system prompt likewise.
    user_sentinel = _SENTINEL.format(role="USER")
    probe = apply(system, user_sentinel)
    suffix = probe[probe.index(user_sentinel) + len(user_sentinel) :]
    user_end = len(text) - len(suffix)
    user_start = user_end - len(user)
    if not text.endswith(suffix) or text[user_start:user_end] != user:
        raise ValueError(_altered_content_message(tokenizer, "user", user))
    spans["user"] = (user_start, user_end)

    if system is not None:
        system_sentinel = _SENTINEL.format(role="SYSTEM")
        probe = apply(system_sentinel, user)
        prefix = probe[: probe.index(system_sentinel)]
        system_end = len(prefix) + len(system)
        if not text.startswith(prefix) or text[len(prefix) : system_end] != system:
            raise ValueError(_altered_content_message(tokenizer, "system", system))
        spans["system"] = (len(prefix), system_end)
    return text, spans


def _altered_content_message(tokenizer: PreTrainedTokenizerBase, role: str, content: str) -> str:
    return (
        f"the chat template of {tokenizer.name_or_path!r} does not copy the {role} message "
        f"{content[:60]!r} verbatim (templates often strip surrounding whitespace), so its span "
        "cannot be located; strip the text before rendering"
    )


def _check_single_bos(tokenizer: PreTrainedTokenizerBase, input_ids: list[int], fmt: str) -> None:
    """Refuse the classic double BOS: the template wrote one and the tokenizer added another.

    Only a BOS repeated at the very start is an error. Some templates legitimately repeat the
    BOS id inside the prompt: SmolLM2's BOS is `<|im_start|>`, which ChatML writes at every turn,
    so counting every BOS id would reject every SmolLM2 prompt. Tokenizers without a BOS (or that
    never insert one, as Qwen's) pass unchecked.
    """
    bos_id = tokenizer.bos_token_id
    if bos_id is None or len(input_ids) < 2:
        return
    if input_ids[0] == bos_id and input_ids[1] == bos_id:
        raise ValueError(
            f"rendered {fmt} prompt starts with two BOS tokens ({tokenizer.bos_token!r} twice); "
            "the text already contains one and the tokenizer added another: render chat "
            "prompts with add_special_tokens=False, or drop the BOS from the text"
        )


def char_span_to_token_span(
    offsets: Sequence[tuple[int, int]], char_start: int, char_end: int
) -> tuple[int, int]:
    """Half-open token range [t0, t1) of the tokens that overlap characters [char_start, char_end).

    A token overlaps when it shares at least one character with the range, so a byte-level token
    that carries the word's leading space (" walk", offsets starting at the space) belongs to the
    span of "walk", and a token that straddles either end is included. Zero-width tokens (special
    tokens the tokenizer inserted, offsets (0, 0)) are never part of a span.
    """
    if not 0 <= char_start < char_end:
        raise ValueError(
            f"character span ({char_start}, {char_end}) is empty or negative; expected "
            "0 <= char_start < char_end"
        )
    hits = [
        index
        for index, (start, end) in enumerate(offsets)
        if end > start and start < char_end and end > char_start
    ]
    if not hits:
        raise ValueError(
            f"character span ({char_start}, {char_end}) covers no token; the text is "
            f"{max((end for _, end in offsets), default=0)} characters long as tokenized"
        )
    return hits[0], hits[-1] + 1


class TokenBoundaryError(ValueError):
    """A piece of the prompt (an activity, the prefill) does not start or end on a token boundary
    in a way the readout can use."""


def _describe_tokens(rendered: RenderedPrompt, indices: Sequence[int]) -> str:
    return ", ".join(
        f"{rendered.text[slice(*rendered.offsets[i])]!r} (token {i}, chars {rendered.offsets[i]})"
        for i in indices
    )


def text_token_span(rendered: RenderedPrompt, char_start: int, char_end: int, *,
                    what: str) -> tuple[int, int]:
    """Half-open token range of the tokens that belong to the text at [char_start, char_end).

    Read from the offsets: a token belongs when it lies wholly inside the text, its first token
    also when it starts on the whitespace just before it (the word's own space, 'Ġwalk' or
    '▁walk'). A token that runs past either end is not the text's alone and is left out: a
    SentencePiece/Metaspace tokenizer that does not split punctuation writes 'partners?' as one
    token, whose residual belongs to the template's '?' as much as to the activity. `what` names
    the text in the error raised when no token is left.
    """
    text = rendered.text
    if not 0 <= char_start < char_end <= len(text):
        raise ValueError(
            f"character span ({char_start}, {char_end}) of {what} is empty or outside the "
            f"{len(text)}-character prompt"
        )
    lead = char_start
    while lead > 0 and text[lead - 1].isspace():
        lead -= 1
    inside = [i for i, (start, end) in enumerate(rendered.offsets)
              if end > start and start >= lead and end <= char_end and end > char_start]
    if not inside:
        overlapping = [i for i, (start, end) in enumerate(rendered.offsets)
                       if end > start and start < char_end and end > char_start]
        raise TokenBoundaryError(
            f"{what} {text[char_start:char_end]!r} has no token of its own in the prompt "
            f"{text!r}: every token over it runs past its text "
            f"({_describe_tokens(rendered, overlapping)}); this tokenizer fuses the text with its "
            "surroundings, so its activations cannot be read apart from the template's"
        )
    return inside[0], inside[-1] + 1


def check_text_span(rendered: RenderedPrompt, span: tuple[int, int], char_start: int,
                    char_end: int, *, what: str) -> None:
    """Raise unless every token of `span` lies within the text at [char_start, char_end) (its
    first token may start on the whitespace before it) and the span is not empty."""
    lead = char_start
    while lead > 0 and rendered.text[lead - 1].isspace():
        lead -= 1
    t0, t1 = span
    bad = [i for i in range(t0, t1)
           if not lead <= rendered.offsets[i][0] <= rendered.offsets[i][1] <= char_end]
    if t1 <= t0 or bad:
        raise TokenBoundaryError(
            f"the token span {span} of {what} {rendered.text[char_start:char_end]!r} "
            + (f"includes tokens outside its text: {_describe_tokens(rendered, bad)}"
               if bad else "is empty")
            + f", in the prompt {rendered.text!r}"
        )


def check_prefill_boundary(rendered: RenderedPrompt, *, what: str = "the prompt") -> None:
    """Raise unless the prefill starts on a token boundary: no token runs from the prompt into the
    prefill (chat: "\n(" as one token), so the read position is the prefill's own token."""
    if rendered.prompt_end is None or "prefill" not in rendered.spans:
        return
    boundary, prefill_start = rendered.prompt_end, rendered.spans["prefill"][0]
    # A token may start on the raw format's separating space and run into the prefill (" ("), but
    # none may start inside the prompt and run past its end.
    fused = [i for i, (start, end) in enumerate(rendered.offsets)
             if end > start and start < boundary and end > boundary
             or start < prefill_start < end and start < boundary]
    if fused:
        raise TokenBoundaryError(
            f"the prefill {rendered.text[prefill_start:]!r} of {what} does not start on a token "
            f"boundary: {_describe_tokens(rendered, fused)} runs from the prompt into it, so the "
            f"read position is not the prefill's own token; prompt {rendered.text!r}"
        )


def find_span(
    rendered: RenderedPrompt, substring: str, occurrence: int = 0, *, within: str | None = None
) -> tuple[int, int]:
    """Token range of the `occurrence`-th (0-based) appearance of `substring` in the prompt text.

    `within` names a span of `rendered.spans` (e.g. "user") to search in, so that text repeated
    in the system prompt or the template cannot be picked up by mistake.
    """
    if not substring:
        raise ValueError("substring is empty; pass the text whose tokens you want")
    if occurrence < 0:
        raise ValueError(f"occurrence {occurrence} is negative; count occurrences from 0")
    lo, hi = 0, len(rendered.text)
    if within is not None:
        if within not in rendered.spans:
            raise ValueError(f"no span named {within!r}; this prompt has {sorted(rendered.spans)}")
        lo, hi = rendered.spans[within]
    start = lo - 1
    for _ in range(occurrence + 1):
        start = rendered.text.find(substring, start + 1, hi)
        if start < 0:
            where = f"span {within!r}" if within is not None else "the prompt"
            raise ValueError(
                f"{substring!r} occurs fewer than {occurrence + 1} times in {where} of "
                f"{rendered.text!r}"
            )
    return char_span_to_token_span(rendered.offsets, start, start + len(substring))


def batch_encode(
    prompts: Sequence[RenderedPrompt], pad_id: int, side: PaddingSide
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Pad rendered prompts into one batch.

    Returns input_ids [B, T] (long), attention_mask [B, T] (long, 1 on real tokens) and shift:
    token i of prompt b sits at column i + shift[b] (T - len for left padding, 0 for right), so
    read positions and spans move by shift[b]. With left padding, also pass
    `position_ids_from_mask(attention_mask)` to the model (DESIGN.md pitfall 3).
    """
    if side not in ("left", "right"):
        raise ValueError(f"padding side {side!r} is not 'left' or 'right'")
    if not prompts:
        raise ValueError("no prompts to encode; pass at least one RenderedPrompt")
    width = max(len(prompt.input_ids) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    shift = []
    for row, prompt in enumerate(prompts):
        length = len(prompt.input_ids)
        offset = width - length if side == "left" else 0
        input_ids[row, offset : offset + length] = torch.tensor(prompt.input_ids, dtype=torch.long)
        attention_mask[row, offset : offset + length] = 1
        shift.append(offset)
    return input_ids, attention_mask, shift


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids [B, T] that count real tokens only: 0..len-1 on them, 0 on left padding."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def last_char_token(rendered: RenderedPrompt, chars: str, within: str = "user") -> int:
    """Token index of the last character of `chars` inside span `within` of the prompt."""
    start, end = rendered.spans[within]
    for index in range(end - 1, start - 1, -1):
        if rendered.text[index] in chars:
            _, stop = char_span_to_token_span(rendered.offsets, index, index + 1)
            return stop - 1
    raise ValueError(
        f"the {within} text {rendered.text[start:end]!r} has none of {chars!r}; the Table 3 "
        "prompts end in a sentence, so the prompt or its span is wrong"
    )
