"""Emotion-probe values on the activity tokens of "How would you feel about {activity}?".

Paper section 3.3: every emotion probe is read on the {activity} tokens in middle layers, and the
probe value is correlated with the activity's Elo. Choices where the paper is silent:
- tokens: those lying within the activity's characters (`text_token_span`), so a token that
  carries the word's leading space belongs to the activity and one fused with the template's
  '?' (SentencePiece 'partners?') does not;
- pooling: the residual stream is averaged over those tokens first, then compared with each
  emotion vector;
- measure: cosine similarity, because the paper's Table 9 values (0.00-0.04) are on a cosine
  scale; the vectors are the denoised ones; with several probe layers the per-layer cosines are
  averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.inputs.stimuli import Activity, load_preference_prompt_templates, render_template
from pipeline.model.probes import span_means
from pipeline.model.prompts import RenderedPrompt, check_text_span, render_prompt, text_token_span


def probe_prompts(
    tokenizer, activities: Sequence[Activity], *, fmt: str, chat_template_args: dict[str, Any]
) -> tuple[list[RenderedPrompt], list[tuple[int, int]]]:
    """The 64 rendered probe prompts and each one's activity token span."""
    template = load_preference_prompt_templates().probe_user
    prompts, spans = [], []
    for activity in activities:
        user = render_template(template, activity=activity.text)
        rendered = render_prompt(tokenizer, user, fmt=fmt, chat_template_args=chat_template_args)
        start = rendered.spans["user"][0] + user.index(activity.text)
        end = start + len(activity.text)
        what = f"the activity of probe prompt {len(prompts)} (activity ranked {activity.rank})"
        span = text_token_span(rendered, start, end, what=what)
        check_text_span(rendered, span, start, end, what=what)
        prompts.append(rendered)
        spans.append(span)
    return prompts, spans


def cosine_scores(activations: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """activations [N, L, d], vectors [L, E, d] -> cosine similarity [N, L, E]."""
    if activations.ndim != 3 or vectors.ndim != 3 or activations.shape[1:] != (
            vectors.shape[0], vectors.shape[2]):
        raise ValueError(
            f"activations {activations.shape} and vectors {vectors.shape} do not line up; "
            "expected [N, L, d] and [L, E, d] with the same layers and width"
        )
    a = activations / np.linalg.norm(activations, axis=-1, keepdims=True)
    v = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.einsum("nld,led->nle", a, v)


def activity_probe_values(
    model,
    tokenizer,
    activities: Sequence[Activity],
    vectors_per_layer: np.ndarray,
    layers: Sequence[int],
    *,
    fmt: str,
    chat_template_args: dict[str, Any],
    batch_size: int = 64,
) -> np.ndarray:
    """Cosine of the activity-token mean with each emotion vector, per layer: [N, L, E].

    vectors_per_layer: [L, E, d], the emotion vectors at `layers` in that order.
    """
    prompts, spans = probe_prompts(tokenizer, activities, fmt=fmt,
                                   chat_template_args=chat_template_args)
    means = span_means(model, prompts, [[span] for span in spans], layers,
                       pad_id=tokenizer.pad_token_id, batch_size=batch_size)
    activations = np.stack([m[0] for m in means])  # [N, L, d]
    return cosine_scores(activations, np.asarray(vectors_per_layer, dtype=np.float64))
