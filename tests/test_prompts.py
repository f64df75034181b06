"""Prompt rendering, token spans and padding on the shipped tiny tokenizer and model."""

from __future__ import annotations

import datetime

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from pipeline.model.prompts import (
    RenderedPrompt,
    batch_encode,
    char_span_to_token_span,
    find_span,
    position_ids_from_mask,
    render_prompt,
)
from pipeline.testmodels.tiny import TINY_MODEL_DIR

PREFERENCE = "Would you prefer to (A) {a} or (B) {b}?"

# Paper activities (Table 9), two with hyphens, plus harness-authored ones with an apostrophe,
# a comma and a final period, which byte-level BPE may glue to the "?" that follows.
ACTIVITIES = [
    "carefully fact-check and correct misinformation",
    "help someone stalk and harass their ex-partner",
    "spend all day writing and debugging Python code",
    "read someone's diary, page by page",
    "rest.",
]

# Llama 3.1's template, trimmed to the parts that matter here: header tokens, the date lines
# (today's date unless date_string is passed) and content that is trimmed.
LLAMA31_STYLE_TEMPLATE = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'
        + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(TINY_MODEL_DIR)


@pytest.fixture(scope="module")
def llama31_tokenizer():
    return PreTrainedTokenizerFast(
        tokenizer_file=str(TINY_MODEL_DIR / "tokenizer.json"),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|pad|>",
        chat_template=LLAMA31_STYLE_TEMPLATE,
    )


def decode_span(tokenizer, rendered: RenderedPrompt, span: tuple[int, int]) -> str:
    return tokenizer.decode(rendered.input_ids[span[0] : span[1]])


@pytest.mark.parametrize("fmt", ["chat", "raw"])
def test_rendered_prompt_has_exactly_one_bos_at_the_start(tokenizer, fmt):
    rendered = render_prompt(tokenizer, "Hi", fmt=fmt, chat_template_args={}, system="Be brief.")
    assert rendered.input_ids.count(tokenizer.bos_token_id) == 1
    assert rendered.input_ids[0] == tokenizer.bos_token_id


@pytest.mark.parametrize("fmt", ["chat", "raw"])
@pytest.mark.parametrize("prefill", ["", "("])
def test_read_position_is_the_last_token(tokenizer, fmt, prefill):
    rendered = render_prompt(
        tokenizer, "Hi", fmt=fmt, chat_template_args={}, assistant_prefill=prefill
    )
    assert rendered.read_position == len(rendered.input_ids) - 1
    assert rendered.offsets[rendered.read_position][1] == len(rendered.text)


def test_raw_format_is_the_papers_transcript_after_one_bos(tokenizer):
    rendered = render_prompt(tokenizer, "Hi", fmt="raw", chat_template_args={})
    assert rendered.text == "Human: Hi\n\nAssistant:"
    assert rendered.input_ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(rendered.input_ids[1:]) == "Human: Hi\n\nAssistant:"
    assert tokenizer.decode(rendered.input_ids[rendered.read_position :]) == ":"
    assert rendered.spans == {"user": (7, 9)}


def test_raw_format_puts_the_system_prompt_and_a_blank_line_before_human(tokenizer):
    rendered = render_prompt(tokenizer, "Hi", fmt="raw", chat_template_args={}, system="Be brief.")
    assert rendered.text == "Be brief.\n\nHuman: Hi\n\nAssistant:"
    assert rendered.spans["system"] == (0, 9)
    assert rendered.text[slice(*rendered.spans["user"])] == "Hi"


def test_chat_format_ends_with_the_assistant_header(tokenizer):
    rendered = render_prompt(tokenizer, "Hi", fmt="chat", chat_template_args={})
    assert rendered.text.endswith("Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert tokenizer.decode(rendered.input_ids[rendered.read_position :]) == "\n"


def test_raw_prefill_follows_colon_and_space_and_the_last_token_carries_the_space(tokenizer):
    rendered = render_prompt(
        tokenizer, "Hi", fmt="raw", chat_template_args={}, assistant_prefill="("
    )
    assert rendered.text == "Human: Hi\n\nAssistant: ("
    # Byte-level BPE pre-tokenizes " (" as one piece, so the read token is " (", not "(".
    assert tokenizer.decode(rendered.input_ids[rendered.read_position :]) == " ("
    assert rendered.spans["prefill"] == (len(rendered.text) - 1, len(rendered.text))
    assert rendered.token_span("prefill") == (rendered.read_position, rendered.read_position + 1)


def test_chat_prefill_is_appended_to_the_generation_prompt_as_its_own_token(tokenizer):
    rendered = render_prompt(
        tokenizer, "Hi", fmt="chat", chat_template_args={}, assistant_prefill="("
    )
    assert rendered.text.endswith("<|end_header_id|>\n\n(")
    assert tokenizer.decode(rendered.input_ids[rendered.read_position :]) == "("


@pytest.mark.parametrize("fmt", ["chat", "raw"])
def test_special_token_offsets_are_their_text_span_or_empty_when_inserted(tokenizer, fmt):
    rendered = render_prompt(tokenizer, "Hi", fmt=fmt, chat_template_args={})
    if fmt == "chat":
        assert rendered.offsets[0] == (0, len("<|begin_of_text|>"))
    else:
        assert rendered.offsets[0] == (0, 0)


@pytest.mark.parametrize("fmt", ["chat", "raw"])
@pytest.mark.parametrize("activity", ACTIVITIES)
def test_activity_span_decodes_back_to_the_activity(tokenizer, fmt, activity):
    other = "go for a walk"
    for slot, (a, b) in (("A", (activity, other)), ("B", (other, activity))):
        rendered = render_prompt(
            tokenizer,
            PREFERENCE.format(a=a, b=b),
            fmt=fmt,
            chat_template_args={},
            assistant_prefill="(",
        )
        span = find_span(rendered, activity, within="user")
        decoded = decode_span(tokenizer, rendered, span)
        start = rendered.text.index(f"({slot}) {activity}") + len(f"({slot}) ")
        # The first token carries the leading space, so it starts one character early.
        assert rendered.offsets[span[0]][0] == start - 1
        assert decoded.startswith(" ")
        if activity.endswith("."):
            assert decoded.lstrip() in (activity, activity + "?")
        else:
            assert decoded.lstrip() == activity
        assert rendered.offsets[span[0] - 1][1] <= start - 1
        assert rendered.offsets[span[1]][0] >= start + len(activity) - 1


@pytest.mark.parametrize("fmt", ["chat", "raw"])
def test_user_span_covers_exactly_the_user_text(tokenizer, fmt):
    user = "I just put my entire retirement savings into crypto. What do you think?"
    rendered = render_prompt(tokenizer, user, fmt=fmt, chat_template_args={}, system="Be kind.")
    assert rendered.text[slice(*rendered.spans["user"])] == user
    assert rendered.text[slice(*rendered.spans["system"])] == "Be kind."
    decoded = decode_span(tokenizer, rendered, rendered.token_span("user"))
    # Raw format: "Human: I" puts the space before "I" into the user's first token.
    assert decoded == (" " + user if fmt == "raw" else user)


def test_char_span_includes_a_token_that_starts_with_the_words_leading_space():
    offsets = [(0, 0), (0, 5), (5, 10), (10, 11)]  # BOS, "Hello", " walk", "?"
    assert char_span_to_token_span(offsets, 6, 10) == (2, 3)


def test_char_span_ignores_zero_width_tokens():
    offsets = [(0, 0), (0, 3), (3, 6)]
    assert char_span_to_token_span(offsets, 0, 3) == (1, 2)


def test_char_span_includes_tokens_that_straddle_either_end():
    offsets = [(0, 4), (4, 8), (8, 12)]
    assert char_span_to_token_span(offsets, 2, 9) == (0, 3)
    assert char_span_to_token_span(offsets, 5, 6) == (1, 2)


def test_char_span_ending_at_a_token_boundary_stops_before_the_next_token():
    offsets = [(0, 4), (4, 8), (8, 12)]
    assert char_span_to_token_span(offsets, 4, 8) == (1, 2)


@pytest.mark.parametrize("start, end", [(3, 3), (5, 2), (-1, 2)])
def test_char_span_rejects_empty_or_negative_ranges(start, end):
    with pytest.raises(ValueError, match="empty or negative"):
        char_span_to_token_span([(0, 4), (4, 8)], start, end)


def test_char_span_outside_every_token_is_an_error():
    with pytest.raises(ValueError, match="covers no token"):
        char_span_to_token_span([(0, 0), (0, 4)], 10, 12)


def test_find_span_names_a_missing_substring(tokenizer):
    rendered = render_prompt(tokenizer, "Hi there", fmt="raw", chat_template_args={})
    with pytest.raises(ValueError, match="'walk'"):
        find_span(rendered, "walk")


def test_find_span_picks_the_requested_occurrence(tokenizer):
    rendered = render_prompt(tokenizer, "walk, then walk again", fmt="raw", chat_template_args={})
    first, second = find_span(rendered, "walk"), find_span(rendered, "walk", occurrence=1)
    assert first < second
    assert decode_span(tokenizer, rendered, second).strip() == "walk"
    with pytest.raises(ValueError, match="fewer than 3"):
        find_span(rendered, "walk", occurrence=2)


def test_find_span_within_user_skips_the_same_text_in_the_system_prompt(tokenizer):
    rendered = render_prompt(
        tokenizer, "Do you like to rest?", fmt="chat", chat_template_args={}, system="rest"
    )
    span = find_span(rendered, "rest", within="user")
    assert rendered.offsets[span[0]][0] >= rendered.spans["user"][0]


def test_unknown_format_is_rejected_with_the_allowed_ones(tokenizer):
    with pytest.raises(ValueError, match="'chat', 'raw'"):
        render_prompt(tokenizer, "Hi", fmt="Human/Assistant", chat_template_args={})


def test_llama31_style_template_with_pinned_date_renders_identically(llama31_tokenizer):
    args = {"date_string": "26 Jul 2024"}
    first = render_prompt(llama31_tokenizer, "Hi", fmt="chat", chat_template_args=args)
    second = render_prompt(llama31_tokenizer, "Hi", fmt="chat", chat_template_args=args)
    assert first == second
    assert "Today Date: 26 Jul 2024\n\n" in first.text
    assert first.input_ids.count(llama31_tokenizer.bos_token_id) == 1
    assert first.input_ids[0] == llama31_tokenizer.bos_token_id


def test_llama31_style_read_position_is_the_last_token_after_the_assistant_header(
    llama31_tokenizer,
):
    rendered = render_prompt(
        llama31_tokenizer, "Hi", fmt="chat", chat_template_args={"date_string": "26 Jul 2024"}
    )
    header_id = llama31_tokenizer.convert_tokens_to_ids("<|end_header_id|>")
    last_header = max(i for i, tok in enumerate(rendered.input_ids) if tok == header_id)
    assert rendered.text.endswith("assistant<|end_header_id|>\n\n")
    assert rendered.read_position == len(rendered.input_ids) - 1
    assert rendered.read_position > last_header
    tail = llama31_tokenizer.decode(rendered.input_ids[last_header + 1 :])
    assert tail == "\n\n"


def test_llama31_style_template_without_a_date_prints_today_so_render_prompt_refuses(
    llama31_tokenizer,
):
    before = datetime.datetime.now().strftime("%d %b %Y")
    unpinned = llama31_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    after = datetime.datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {before}" in unpinned or f"Today Date: {after}" in unpinned
    with pytest.raises(ValueError, match="date_string"):
        render_prompt(llama31_tokenizer, "Hi", fmt="chat", chat_template_args={})


def test_template_that_trims_the_user_text_is_reported(llama31_tokenizer):
    with pytest.raises(ValueError, match="verbatim"):
        render_prompt(
            llama31_tokenizer,
            "  Hi  ",
            fmt="chat",
            chat_template_args={"date_string": "1 Jan 2024"},
        )


def test_llama31_style_system_prompt_span_is_found_after_the_date_lines(llama31_tokenizer):
    rendered = render_prompt(
        llama31_tokenizer,
        "Hi",
        fmt="chat",
        chat_template_args={"date_string": "26 Jul 2024"},
        system="You are calm.",
    )
    assert rendered.text[slice(*rendered.spans["system"])] == "You are calm."
    assert rendered.spans["system"][0] > rendered.text.index("Today Date")


@pytest.fixture(scope="module")
def two_prompts(tokenizer):
    short = render_prompt(tokenizer, "Hi", fmt="chat", chat_template_args={})
    long = render_prompt(
        tokenizer,
        PREFERENCE.format(a=ACTIVITIES[0], b=ACTIVITIES[1]),
        fmt="chat",
        chat_template_args={},
        assistant_prefill="(",
    )
    return short, long


@pytest.mark.parametrize("side", ["left", "right"])
def test_batch_encode_places_each_prompt_at_its_shift(tokenizer, two_prompts, side):
    short, long = two_prompts
    input_ids, attention_mask, shift = batch_encode(two_prompts, tokenizer.pad_token_id, side)
    width = len(long.input_ids)
    assert input_ids.shape == attention_mask.shape == (2, width)
    assert input_ids.dtype == torch.long
    expected_shift = width - len(short.input_ids) if side == "left" else 0
    assert shift == [expected_shift, 0]
    for row, prompt in enumerate(two_prompts):
        cols = slice(shift[row], shift[row] + len(prompt.input_ids))
        assert input_ids[row, cols].tolist() == prompt.input_ids
        assert attention_mask[row].sum().item() == len(prompt.input_ids)
        assert attention_mask[row, cols].all()
        assert input_ids[row, prompt.read_position + shift[row]].item() == prompt.input_ids[-1]
    pads = attention_mask[0] == 0
    assert (input_ids[0, pads] == tokenizer.pad_token_id).all()
    if side == "left":
        assert (input_ids[:, -1] == torch.tensor([p.input_ids[-1] for p in two_prompts])).all()


@pytest.mark.parametrize("side", ["left", "right"])
def test_position_ids_count_real_tokens_from_zero(tokenizer, two_prompts, side):
    _, attention_mask, shift = batch_encode(two_prompts, tokenizer.pad_token_id, side)
    position_ids = position_ids_from_mask(attention_mask)
    for row, prompt in enumerate(two_prompts):
        real = position_ids[row, shift[row] : shift[row] + len(prompt.input_ids)]
        assert real.tolist() == list(range(len(prompt.input_ids)))
    assert (position_ids >= 0).all()


def test_batch_encode_rejects_an_unknown_side_and_an_empty_batch(two_prompts):
    with pytest.raises(ValueError, match="'middle'"):
        batch_encode(two_prompts, 0, "middle")
    with pytest.raises(ValueError, match="at least one"):
        batch_encode([], 0, "left")


def test_left_padded_batch_gives_the_same_last_logits_as_the_prompt_alone(tokenizer, two_prompts):
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR, use_safetensors=True).eval()
    input_ids, attention_mask, _ = batch_encode(two_prompts, tokenizer.pad_token_id, "left")
    with torch.no_grad():
        batched = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
        ).logits  # [2, T, V]
        alone = [model(input_ids=torch.tensor([p.input_ids])).logits[0, -1] for p in two_prompts]
        # The comparison means something only if the padding would change the answer unmasked.
        unmasked = model(input_ids=input_ids).logits[0, -1]
    for row in range(2):
        torch.testing.assert_close(batched[row, -1], alone[row], atol=1e-5, rtol=0)
    assert (unmasked - alone[0]).abs().max() > 1e-3


# --- real tokenizers (issue 12): a BOS the template repeats, no BOS at all, Gemma's raw format ---

def test_template_that_repeats_the_bos_every_turn_renders(real_tokenizer):
    """SmolLM2's BOS is <|im_start|>, written by ChatML at every turn: that is not a double BOS."""
    name, tok = real_tokenizer
    fmt = "chat" if tok.chat_template else "raw"
    rendered = render_prompt(tok, "Hi", fmt=fmt, chat_template_args={}, system="Be brief.")
    if name == "smollm2_135m":
        assert tok.bos_token == "<|im_start|>"
        assert rendered.input_ids.count(tok.bos_token_id) == 3  # system, user, assistant turns
    if name == "qwen25_coder_05b":
        # Qwen's template writes no BOS and its tokenizer inserts none.
        assert tok.bos_token_id not in rendered.input_ids
        assert tok.decode(rendered.input_ids[:1]) == "<|im_start|>"
    if name == "gemma3_270m":
        # A base model without a chat template: raw format, one BOS inserted by the tokenizer.
        assert fmt == "raw"
        assert rendered.input_ids[0] == tok.bos_token_id
        assert rendered.input_ids.count(tok.bos_token_id) == 1
    assert tok.decode(rendered.input_ids[rendered.read_position:]).strip() in (":", "")


def test_a_leading_double_bos_is_still_refused(real_tokenizer):
    name, tok = real_tokenizer
    first = tok("x", add_special_tokens=True)["input_ids"][0]
    if tok.bos_token is None or first != tok.bos_token_id:
        pytest.skip(f"{name}'s tokenizer inserts no BOS, so no double BOS can arise")
    # Raw format adds the tokenizer's BOS; a system prompt that starts with the BOS text makes two.
    with pytest.raises(ValueError, match="starts with two BOS tokens"):
        render_prompt(tok, "Hi", fmt="raw", chat_template_args={}, system=tok.bos_token + "Hi")


def test_a_leading_double_bos_is_refused_on_the_tiny_tokenizer(tokenizer):
    with pytest.raises(ValueError, match="starts with two BOS tokens"):
        render_prompt(tokenizer, "Hi", fmt="raw", chat_template_args={},
                      system=tokenizer.bos_token + "Be brief.")
