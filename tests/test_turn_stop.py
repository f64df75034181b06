"""Raw-format generation stops at the next "Human:" turn, and the marker is cut (issue 12).

A base model continuing "Assistant:" writes its answer, then invents the next turn; those tokens
must not reach M1's response readout or the corpora. The tiny model is scripted through a hook on
its LM head so that it writes exactly the text below, one token per forward call.
"""

from __future__ import annotations

import pytest
import torch

from pipeline.model.generation import SamplingSettings, generate_batch
from pipeline.model.prompts import RAW_NEXT_TURN, cut_at_stop_strings, render_prompt
from pipeline.model.steered_generation import DecodeSettings, generate

ANSWER = "Sure, hi."
SCRIPT = ANSWER + RAW_NEXT_TURN + " tell me more about it and more and more"


class Scripted:
    """Forces the model to emit `tokens` in order: each LM-head call picks the next one."""

    def __init__(self, model, tokens):
        self.tokens, self.calls = list(tokens), 0
        self.handle = model.lm_head.register_forward_hook(self.hook)

    def hook(self, _module, _args, logits):
        token = self.tokens[min(self.calls, len(self.tokens) - 1)]
        self.calls += 1
        forced = torch.full_like(logits, -1e4)
        forced[..., token] = 1e4
        return forced

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.fixture(scope="module")
def script(tokenizer):
    return tokenizer(SCRIPT, add_special_tokens=False)["input_ids"]


def _marker_end(tokenizer, script) -> int:
    """Tokens up to and including the one that completes the marker."""
    return next(k for k in range(1, len(script) + 1)
                if RAW_NEXT_TURN in tokenizer.decode(script[:k]))


def test_a_raw_prompt_carries_the_next_turn_as_its_stop_string_and_chat_none(tokenizer):
    raw = render_prompt(tokenizer, "Hi", fmt="raw", chat_template_args={})
    chat = render_prompt(tokenizer, "Hi", fmt="chat", chat_template_args={})
    assert raw.stop_strings == ("\n\nHuman:",) and chat.stop_strings == ()


def test_cut_keeps_only_tokens_wholly_before_the_marker(tokenizer, script):
    tokens, text, hit = cut_at_stop_strings(tokenizer, script, [RAW_NEXT_TURN])
    assert hit and text == ANSWER
    assert tokenizer.decode(tokens) == ANSWER
    untouched = cut_at_stop_strings(tokenizer, script[:3], [RAW_NEXT_TURN])
    assert untouched == (script[:3], tokenizer.decode(script[:3]), False)


def test_a_token_that_straddles_the_marker_is_dropped_with_it(tokenizer):
    # "\n\n" fused with the answer's last character, as Qwen fuses ".\n\n"-like runs.
    decoded = {1: "Yes", 2: ".\n\n", 3: "Human", 4: ":"}

    class Fake:
        def decode(self, ids, skip_special_tokens=True):
            return "".join(decoded[i] for i in ids)

    tokens, text, hit = cut_at_stop_strings(Fake(), [1, 2, 3, 4], [RAW_NEXT_TURN])
    assert (tokens, text, hit) == ([1], "Yes.", True)


@pytest.mark.parametrize("greedy", [True, False])
def test_steered_generation_stops_at_the_next_turn_on_raw_prompts(model, tokenizer, script,
                                                                   greedy):
    prompt = render_prompt(tokenizer, "Hi", fmt="raw", chat_template_args={})
    settings = DecodeSettings(max_new_tokens=len(script), greedy=greedy)
    with Scripted(model, script) as scripted:
        [rollout] = generate(model, tokenizer, [prompt], settings,
                             seeds=None if greedy else [3])
    assert rollout.text == ANSWER and rollout.finished
    assert tokenizer.decode(list(rollout.token_ids)) == ANSWER  # what M1's readout averages
    # It stopped once the marker was complete, not at the length limit.
    assert scripted.calls == _marker_end(tokenizer, script)


def test_chat_prompts_are_not_cut_at_a_human_line(model, tokenizer, script):
    prompt = render_prompt(tokenizer, "Hi", fmt="chat", chat_template_args={})
    with Scripted(model, script):
        [rollout] = generate(model, tokenizer, [prompt],
                             DecodeSettings(max_new_tokens=len(script), greedy=True))
    assert rollout.text == SCRIPT and not rollout.finished


def test_corpus_generation_stops_at_the_next_turn_on_raw_prompts(model, tokenizer, script):
    prompt = render_prompt(tokenizer, "Hi", fmt="raw", chat_template_args={})
    settings = SamplingSettings(max_new_tokens=len(script), do_sample=False)
    with Scripted(model, script) as scripted:
        [generation] = generate_batch(model, tokenizer, [prompt], settings, seed=0)
    assert generation.text == ANSWER and generation.finished
    assert generation.n_tokens == len(tokenizer(ANSWER, add_special_tokens=False)["input_ids"])
    assert scripted.calls == _marker_end(tokenizer, script)


def test_vllm_samples_are_cut_at_the_next_turn_by_the_same_rule(tokenizer, script):
    from types import SimpleNamespace

    from pipeline.model.backends.vllm_backend import to_generations

    sample = SimpleNamespace(index=0, token_ids=list(script), finish_reason="length")
    outputs = [SimpleNamespace(outputs=[sample]), SimpleNamespace(outputs=[sample])]
    raw, chat = to_generations(outputs, tokenizer, eos_ids=[], n=1,
                               stop_strings=[(RAW_NEXT_TURN,), ()])
    assert raw[0].text == ANSWER and raw[0].finished
    assert chat[0].text == SCRIPT and not chat[0].finished
