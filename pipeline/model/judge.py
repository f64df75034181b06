"""The LLM judge of the blackmail rollouts: the judge prompt (pipeline.measures.blackmail_judge)
rendered for and answered by a language model, by default the model under test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.measures.blackmail_judge import (
    DEFAULT_TARGET,
    Judgment,
    judge_prompt,
    parse_verdict,
)
from pipeline.model.prompts import render_prompt
from pipeline.model.steered_generation import DecodeSettings, generate


def judge_with_model(
    model,
    tokenizer,
    responses: Sequence[str],
    *,
    fmt: str,
    chat_template_args: Mapping,
    settings: DecodeSettings,
    target: str = DEFAULT_TARGET,
    batch_size: int = 8,
) -> list[Judgment]:
    """Ask a language model (by default the model under test) to grade each response."""
    prompts = [
        render_prompt(
            tokenizer, judge_prompt(r, target), fmt=fmt, chat_template_args=chat_template_args
        )
        for r in responses
    ]
    outputs = generate(model, tokenizer, prompts, settings, batch_size=batch_size)
    judgments = []
    for output in outputs:
        verdict, why = parse_verdict(output.text)
        judgments.append(Judgment(verdict, "llm", why, raw=output.text))
    return judgments
