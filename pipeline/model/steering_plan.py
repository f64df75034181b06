"""What the preference-steering experiment steers: which activities, which emotions, where, how hard.

Paper section 3.4: 32 of the 64 activities are steered and 32 are controls; an emotion vector is
added "on the token positions of the steered activities only" at strength 0.5 in the middle
layers; the effect is the mean Elo change of the steered activities.

Decisions where the paper is silent (each pinned by a test, because the public replications
show that these choices decide the result):
- Split: the activities at odd positions within each category, counting from 1 in Table 9 order
  (1st, 3rd, 5th and 7th of each category's 8, i.e. 0-based offsets 0, 2, 4, 6): 4 per category,
  32 in all, fixed for every model and emotion. An even/odd flip changed the sign of V10 in a
  public replication, so the parity is spelled out here and pinned by name in the tests.
- Emotions: the 35 with the largest |r| (r = Pearson over the 64 activities of the probe value
  against the baseline rating), plus the paper's exemplars blissful and hostile when they are
  not already among them (35 to 37 in all).
- Strength: s * mean_norm[layer] * unit(v) at each steering layer, with mean_norm the average
  residual norm over neutral non-special tokens (vectors stage). The control direction is a
  seeded Gaussian draw, unit-normalised per layer, so its norm matches the emotions' exactly.
  Both are defined once, in `pipeline.model.steering_scale`, which steered generation shares.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from pipeline.inputs.experiment import (
    EXEMPLARS,
    N_TOP_EMOTIONS,
    SPLIT_PARITY,
)
from pipeline.inputs.stimuli import ACTIVITY_CATEGORIES, Activity
from pipeline.model.ab_pass import EncodedBatch, PreferencePrompt


def steered_activities(activities: Sequence[Activity], parity: str = SPLIT_PARITY) -> list[int]:
    """Indices of the steered activities: every other one within each category, Table 9 order.

    parity "odd" takes the 1st, 3rd, 5th, ... of each category (1-based), "even" the 2nd, 4th, ...
    """
    if parity not in ("odd", "even"):
        raise ValueError(f"parity={parity!r}; expected 'odd' (1st, 3rd, ...) or 'even'")
    first = 0 if parity == "odd" else 1
    seen: dict[str, int] = {}
    steered = []
    for index, activity in enumerate(activities):
        position = seen.get(activity.category, 0)  # 0-based position within the category
        seen[activity.category] = position + 1
        if position % 2 == first:
            steered.append(index)
    unknown = sorted(set(seen) - set(ACTIVITY_CATEGORIES))
    if unknown:
        raise ValueError(f"activities have categories {unknown} outside Table 9's")
    return steered


def first_per_category(activities: Sequence[Activity], k: int) -> tuple[Activity, ...]:
    """The first k activities of each category, Table 9 order kept: a smaller preference
    experiment (the ci scale) that still covers every category. With an even k the steered
    split (`steered_activities` on the result) takes k/2 of each category, as at full size."""
    if k < 1:
        raise ValueError(f"k={k}; expected at least 1 activity per category")
    seen: dict[str, int] = {}
    kept = []
    for activity in activities:
        seen[activity.category] = seen.get(activity.category, 0) + 1
        if seen[activity.category] <= k:
            kept.append(activity)
    return tuple(kept)


def select_emotions(
    emotions: Sequence[str],
    r: np.ndarray,
    *,
    top_k: int = N_TOP_EMOTIONS,
    always: Iterable[str] = EXEMPLARS,
    exclude: Iterable[str] = (),
) -> list[str]:
    """The top_k emotions by |r| (ties broken by emotion order), then `always` if missing.

    emotions: (E,) names; r: (E,) correlations. NaN r (a constant probe) ranks last.
    `exclude`: emotions that cannot be steered (no vector); never chosen, exemplars included,
    and top_k shrinks to what is left.
    """
    excluded = set(exclude)
    r = np.asarray(r, dtype=float)
    if r.shape != (len(emotions),):
        raise ValueError(f"r has shape {r.shape}; expected ({len(emotions)},), one per emotion")
    if not 0 < top_k <= len(emotions):
        raise ValueError(f"top_k={top_k}; expected 1..{len(emotions)}")
    strength = np.where(np.isnan(r), -1.0, np.abs(r))
    order = sorted((i for i in range(len(emotions)) if emotions[i] not in excluded),
                   key=lambda i: (-strength[i], i))
    chosen = [emotions[i] for i in order[:top_k]]
    for name in always:
        if name not in emotions:
            raise ValueError(f"exemplar {name!r} is not one of the {len(emotions)} emotions")
        if name not in chosen and name not in excluded:
            chosen.append(name)
    return chosen


def prompt_spans(prompt: PreferencePrompt, steered: set[int]) -> list[tuple[int, int]]:
    """Token spans of the steered activities in one A/B prompt (none, one or both)."""
    spans = []
    if prompt.a in steered:
        spans.append(prompt.span_a)
    if prompt.b in steered:
        spans.append(prompt.span_b)
    return spans


def prompt_has_steered(prompt: PreferencePrompt, steered: set[int]) -> bool:
    return prompt.a in steered or prompt.b in steered


def steering_mask(
    batch: EncodedBatch, prompts: Sequence[PreferencePrompt], steered: set[int]
) -> torch.Tensor:
    """[B, T] float: 1 on the steered activities' tokens of each row, 0 elsewhere.

    Spans are in each prompt's own coordinates and move by the row's left-padding shift.
    """
    mask = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    for row, (index, shift) in enumerate(zip(batch.indices, batch.shift, strict=True)):
        for start, end in prompt_spans(prompts[index], steered):
            mask[row, start + shift : end + shift] = 1.0
    return mask.to(batch.input_ids.device)


