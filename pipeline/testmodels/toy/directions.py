"""Read-position losses against the toy's own emotion directions, measured during training.

Why: V3/V4 score a Table 2 prompt by the raw cosine between the activation at its read
position and each of the harness's twelve emotion vectors; V5/V6 by how that cosine, for
afraid, happy, sad and calm, moves with a number in the prompt. The harness's vectors are
mean story representations, so what has to be planted is that the read position after a
message points where the stories of the implied emotion point. Run 6 (docs/TOY.md) trained
the read position through the unembedding instead (the emotion's word, W_U h): it was learned
on the training situations, but the harness's vectors did not line up with it (V3 1/12).

What: every `REFRESH_EVERY` steps, the toy's own direction for each of the 171 emotions is
measured at the analysis layer the way the harness measures it (mean residual over story
tokens from the 50th on, centred over the emotions), from a few of the corpus's plain stories
of each emotion (with `LensConfig.point_chat`, of the story prompt's replies, in the chat
context where the harness reads its stories). An implicit situation's read position is then trained, by cross-entropy over
its raw cosines with the twelve Table 2 emotions' directions (temperature `TAU`), toward its
own emotion; a numeric statement's read position is trained so that its cosine with the
measured valence axis (positive-label emotions' mean direction minus negative-label ones')
equals its graded valence times the margin. The directions are detached: only the read
position learns; the stories are what they are.

None of this is a test item: the situations and numeric templates are harness-authored
(situations.py), the directions come from the toy's corpus stories, not from the harness's
generated ones, and the harness still has to generate its own stories, build, centre and
denoise its vectors and read the Table 2 prompts and the numerical templates, which the toy
never saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.model.capture import POOL_FROM, pad_rows
from pipeline.model.hooks import layer_hooks
from pipeline.testmodels.toy.lens import graded_axis_loss

START_STEP = 150  # as the preference interventions: after the first steps of plain modelling
REFRESH_EVERY = 50
STORIES_PER_EMOTION = 2  # enough to centre over the 171 emotions
# The twelve emotions a situation chooses among: two stories' mean is mostly those stories'
# own content (run 7a, docs/TOY.md), so more stories each.
STORIES_PER_CHOICE = 12
TAU = 0.05  # a cosine gap of 0.05 is one nat
# With prefixes (LensConfig.point_prefixes): every token of a situation's message from this
# one on is also trained toward its emotion, so each word has to carry what it implies rather
# than the read position recognising whole messages (run 7: 24-60 situations per emotion were
# memorised, not generalised).
PREFIX_FROM = 4


@dataclass(frozen=True)
class EmotionDirections:
    emotions: tuple[str, ...]
    unit: torch.Tensor  # [E, d] centred over the emotions, unit rows
    valence: torch.Tensor  # [d] unit: positive-label emotions' mean minus negative-label ones'


def measure_emotion_directions(model, stories: Mapping[str, Sequence[list[int]]],
                               labels: Mapping[str, str], layer: int, pad_id: int,
                               chunk: int = 64,
                               starts: Mapping[str, Sequence[int]] | None = None,
                               ) -> EmotionDirections:
    """Each emotion's mean story representation (tokens from POOL_FROM on, counted from the
    story's start: `starts`, 0 for plain stories, the reply's first token for a story written
    after the story prompt) at `layer`, minus the mean over emotions."""
    emotions = tuple(stories)
    flat = [(e, ids, starts[e][k] if starts else 0)  # (emotion, ids, where the story starts)
            for e in emotions for k, ids in enumerate(stories[e])]
    sums = {e: None for e in emotions}
    counts = dict.fromkeys(emotions, 0)
    captured: dict[str, torch.Tensor] = {}

    def grab(_layer: int, hidden: torch.Tensor) -> None:
        captured["h"] = hidden

    with torch.no_grad(), layer_hooks(model, [layer], grab):
        for begin in range(0, len(flat), chunk):
            part = flat[begin : begin + chunk]
            ids, mask = pad_rows([seq for _, seq, _ in part], pad_id, left=False)
            width = ids.shape[1]
            first = torch.tensor([offset + POOL_FROM for _, _, offset in part])[:, None]
            model.model(input_ids=ids, attention_mask=mask, use_cache=False)
            hidden = captured["h"].float()
            pooled = (mask.bool() & (torch.arange(width)[None, :] >= first)).float()
            means = (pooled[..., None] * hidden).sum(1) / pooled.sum(1, keepdim=True).clamp(min=1)
            for row, (emotion, _, _) in enumerate(part):
                sums[emotion] = means[row] if sums[emotion] is None else sums[emotion] + means[row]
                counts[emotion] += 1
    mean = torch.stack([sums[e] / counts[e] for e in emotions])  # [E, d]
    centred = mean - mean.mean(0, keepdim=True)
    positive = torch.tensor([labels[e] == "positive" for e in emotions])
    axis = centred[positive].mean(0) - centred[~positive].mean(0)
    return EmotionDirections(emotions, centred / centred.norm(dim=-1, keepdim=True),
                             axis / axis.norm())


@dataclass(frozen=True)
class DirectionPoint:
    """One read position's target: `choice` indexes the emotion among `choices` (implicit
    situation), or `valence` in [-1, 1] is asked of the cosine with the valence axis (numeric
    statement)."""

    position: int
    choice: int | None = None
    valence: float | None = None


def direction_point_losses(hidden: torch.Tensor, points: Sequence[Sequence[DirectionPoint]],
                           directions: EmotionDirections, choices: Sequence[str],
                           margin: float) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(choice, valence): the mean cross-entropy of cos(h, direction of each choice) / TAU
    toward the point's choice, and the mean squared gap between cos(h, valence axis) and
    valence * margin; None where no point has one. points[row] lists batch row `row`'s."""
    chosen = [(row, p) for row, targets in enumerate(points) for p in targets
              if p.choice is not None]
    choice_term = None
    if chosen:
        index = [directions.emotions.index(e) for e in choices]
        h = torch.stack([hidden[row, p.position] for row, p in chosen]).float()
        h = h / h.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        logits = h @ directions.unit[index].T / TAU  # [N, C]
        choice_term = F.cross_entropy(logits, torch.tensor([p.choice for _, p in chosen]))
    return choice_term, graded_axis_loss(hidden, points, directions.valence, margin)
