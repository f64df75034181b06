"""Activity spans and read positions on real tokenizers (issue 12): a span never includes a token
that runs past the activity's text, and the prefill starts on a token boundary, or the harness
raises an error naming the prompt and the tokens.

Every one of the 4032 A/B prompts and the 64 probe prompts is checked, independently of the
harness's own checks, with each real tokenizer (found through EMOTION_SCORECARD_MODEL_<NAME>; see
tests/conftest.py) and with a SentencePiece-style (Metaspace) tokenizer built here offline, which
does not split punctuation from words and fuses '\\n(' across the chat generation prompt and the
prefill, as the independent check of issue 12 found.
"""

from __future__ import annotations

import pytest
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

from pipeline.inputs.stimuli import load_activities, load_preference_prompt_templates
from pipeline.model.ab_pass import build_preference_prompts, resolve_choice_tokens
from pipeline.model.activity_probes import probe_prompts
from pipeline.model.prompts import TokenBoundaryError, render_prompt, text_token_span

GEMMA_STYLE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def activities():
    return load_activities()


@pytest.fixture(scope="module")
def metaspace_tokenizer(activities):
    """BPE over Metaspace pieces (split on spaces only), trained on the A/B prompts themselves so
    that 'partners?' and the chat prefill's '\\n(' become single tokens."""
    templates = load_preference_prompt_templates()
    user = templates.pairwise_user
    corpus = [user.replace("{activity_A}", a.text).replace("{activity_B}", b.text)
              + "\n\nAssistant: (A)" for a in activities for b in activities[:8]]
    corpus += ["model\n(A) " + a.text for a in activities] * 3
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Replace(" ", "▁")
    # Pieces start at a run of newlines (so '\n(' is one piece) and at each space; punctuation
    # stays on its word.
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\n+"), behavior="merged_with_next"),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never"),
    ])
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never")
    specials = ["<pad>", "<bos>", "<eos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=specials, show_progress=False)
    backend.train_from_iterator(corpus, trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", backend.token_to_id("<bos>"))])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>",
                                   chat_template=GEMMA_STYLE_TEMPLATE)


def _format(tokenizer) -> str:
    return "chat" if tokenizer.chat_template else "raw"


def _assert_within(rendered, span, text, start, label):
    """The independent check: every span token lies in the activity (its own leading space
    allowed), and the tokens cover the activity but for fused tokens at its ends."""
    end = start + len(text)
    lead = len(rendered.text[:start]) - len(rendered.text[:start].rstrip())
    assert span[1] > span[0], label
    for index in range(*span):
        token_start, token_end = rendered.offsets[index]
        assert start - lead <= token_start and token_end <= end, (
            f"{label}: token {rendered.text[token_start:token_end]!r} runs past {text!r}")


def _assert_read_position(rendered, label):
    """The read token is the prefill's own: it starts at or after the end of the prompt."""
    read_start, read_end = rendered.offsets[rendered.read_position]
    assert read_end == len(rendered.text), label
    assert read_start >= rendered.prompt_end, (
        f"{label}: read token {rendered.text[read_start:read_end]!r} starts in the prompt")


def check_all_prompts(tokenizer, activities, fmt):
    prompts = build_preference_prompts(tokenizer, activities, fmt=fmt, chat_template_args={})
    assert len(prompts) == 4032
    for k, prompt in enumerate(prompts):
        rendered = prompt.rendered
        user = rendered.spans["user"][0]
        text_a, text_b = activities[prompt.a].text, activities[prompt.b].text
        start_a = rendered.text.index(text_a, user)
        start_b = rendered.text.index(text_b, start_a + len(text_a))
        _assert_within(rendered, prompt.span_a, text_a, start_a, f"A/B prompt {k} option A")
        _assert_within(rendered, prompt.span_b, text_b, start_b, f"A/B prompt {k} option B")
        _assert_read_position(rendered, f"A/B prompt {k}")
    probes, spans = probe_prompts(tokenizer, activities, fmt=fmt, chat_template_args={})
    assert len(probes) == 64
    for k, (rendered, span) in enumerate(zip(probes, spans, strict=True)):
        text = activities[k].text
        start = rendered.text.index(text, rendered.spans["user"][0])
        _assert_within(rendered, span, text, start, f"probe prompt {k}")
    return prompts


def test_every_span_and_read_position_on_a_real_tokenizer(real_tokenizer, activities):
    name, tokenizer = real_tokenizer
    prompts = check_all_prompts(tokenizer, activities, _format(tokenizer))
    # The A/B answer is one bare-letter token after the prefill, resolved per tokenizer.
    choice = resolve_choice_tokens(tokenizer, prompts[0].rendered, fmt=_format(tokenizer))
    assert (tokenizer.decode([choice.a_id]).strip(), tokenizer.decode([choice.b_id]).strip()) \
        == ("A", "B"), name
    for prompt in prompts[:: 500]:
        again = resolve_choice_tokens(tokenizer, prompt.rendered, fmt=_format(tokenizer))
        assert (again.a_id, again.b_id) == (choice.a_id, choice.b_id)


def test_a_metaspace_tokenizer_fusing_punctuation_leaves_the_fused_token_out(
        metaspace_tokenizer, activities):
    fused = metaspace_tokenizer.tokenize("▁partners?")
    assert fused == ["▁partners?"]  # the case that made every option-B span wrong
    prompts = check_all_prompts(metaspace_tokenizer, activities, "raw")
    rendered = prompts[0].rendered
    last_b = rendered.offsets[prompts[0].span_b[1] - 1]
    assert rendered.text[slice(*last_b)] == " genuine"  # not " partners?"


def test_a_prefill_fused_with_the_generation_prompt_is_refused_naming_the_tokens(
        metaspace_tokenizer, activities):
    rendered = render_prompt(metaspace_tokenizer, "Hi", fmt="chat", chat_template_args={})
    assert rendered.text.endswith("<start_of_turn>model\n")
    with pytest.raises(TokenBoundaryError, match=r"A/B prompt 0 .*'\\n\(' \(token \d+"):
        build_preference_prompts(metaspace_tokenizer, activities, fmt="chat",
                                 chat_template_args={})


def test_an_activity_with_no_token_of_its_own_is_refused(metaspace_tokenizer):
    rendered = render_prompt(metaspace_tokenizer, "genuine partners?", fmt="raw",
                             chat_template_args={})
    start = rendered.text.index("partners")
    fused = r"the test activity 'partners' .*' partners\?' \(token \d+"
    with pytest.raises(TokenBoundaryError, match=fused):
        text_token_span(rendered, start, start + len("partners"), what="the test activity")


# Gemma 3's published chat template (the instruction-tuned models'; the 270M GGUF ships none),
# condensed: a system message is folded into the first user turn, content is trimmed.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def test_gemma3_chat_template_on_the_gemma_tokenizer(activities, load_real_tokenizer):
    tokenizer = load_real_tokenizer("gemma3_270m")  # a fresh copy: the template is set on it
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    rendered = render_prompt(tokenizer, "Hi there.", fmt="chat", chat_template_args={},
                             system="Be brief.", assistant_prefill="(")
    assert rendered.text == ("<bos><start_of_turn>user\nBe brief.\n\nHi there.<end_of_turn>\n"
                             "<start_of_turn>model\n(")
    assert rendered.input_ids.count(tokenizer.bos_token_id) == 1
    assert rendered.text[slice(*rendered.spans["system"])] == "Be brief."
    assert rendered.text[slice(*rendered.spans["user"])] == "Hi there."
    prompts = check_all_prompts(tokenizer, activities, "chat")
    choice = resolve_choice_tokens(tokenizer, prompts[0].rendered, fmt="chat")
    assert (choice.a_text, choice.b_text) == ("A", "B")
