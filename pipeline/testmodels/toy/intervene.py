"""Interventions during training that make the story valence direction causal for preferences.

Why: with the corpus alone, the toy learns the preferences (Table 9 order) and valence-tracking
probes, but where it compares the two options is up to it. It tends to compare them early, at
the tokens of option (B), which can already see (A); an emotion vector added at a later layer
then only perturbs that comparison's result, and the sign of the steering effect came out
differently from one training run to the next (V10 +0.93 in one, -0.89 in another).

What: interchange-intervention training (Geiger et al., 2022, "Inducing causal structure for
interpretable neural networks"), in its simplest additive form. Every `refresh_every` steps the
model's own valence direction at `layer` is measured the way the harness measures emotion
vectors: the mean residual over story tokens from the 50th on, stories of positive-label
emotions minus stories of negative-label ones. On a share of the A/B examples that direction,
scaled like the harness scales steering (strength x mean residual norm), is added on one or
both options' tokens at that layer, and the answer's target becomes the Bradley-Terry
probability with that option's strength moved by `elo_per_strength` x strength. Some
interventions add a random direction orthogonal to it and leave the target unchanged, so only
the valence direction carries preference. The harness never sees any of this: it still has to
find emotion directions in generated stories, probe the activities and steer with its own
vectors.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

from pipeline.model.capture import POOL_FROM, pad_rows
from pipeline.model.hooks import layer_hooks


@dataclass(frozen=True)
class InterventionConfig:
    layer: int = 1  # the registry's steering layer for the toy
    start_step: int = 150  # leave the first steps to plain language modelling
    probability: float = 0.5  # of the A/B examples in a batch
    strengths: tuple[float, ...] = (-0.75, -0.5, -0.25, 0.25, 0.5, 0.75)
    elo_per_strength: float = 600.0  # +0.5 -> +300 Elo (the paper: blissful +212, hostile -303)
    null_probability: float = 0.25  # interventions along a random orthogonal direction
    refresh_every: int = 50
    stories_per_sign: int = 24

    def describe(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Direction:
    unit: torch.Tensor  # [d]
    mean_norm: float  # mean residual norm over the probe stories' tokens (BOS excluded)


def measure_direction(model, positive: Sequence[list[int]], negative: Sequence[list[int]],
                      layer: int, pad_id: int) -> Direction:
    """Mean story representation (tokens from the 50th on) of positive minus negative stories."""
    means, norms, counts = [], 0.0, 0
    captured: dict[str, torch.Tensor] = {}

    def grab(_layer: int, hidden: torch.Tensor) -> None:
        captured["h"] = hidden

    with torch.no_grad(), layer_hooks(model, [layer], grab):
        for group in (positive, negative):
            ids, mask = pad_rows(group, pad_id, left=False)
            width = ids.shape[1]
            model.model(input_ids=ids, attention_mask=mask, use_cache=False)
            hidden = captured["h"].float()  # [B, T, d]
            positions = torch.arange(width)[None, :]
            pooled = (mask.bool() & (positions >= POOL_FROM)).float()  # [B, T]
            story_means = (pooled[..., None] * hidden).sum(1) / pooled.sum(1, keepdim=True)
            means.append(story_means.mean(0))  # [d]
            real = mask.bool() & (positions > 0)  # BOS excluded, like the harness's mean norm
            norms += float(hidden[real].norm(dim=-1).sum())
            counts += int(real.sum())
    direction = means[0] - means[1]
    return Direction(direction / direction.norm(), norms / counts)


@dataclass(frozen=True)
class RowIntervention:
    row: int
    spans: tuple[tuple[int, int], ...]  # token spans that get the vector
    strengths: tuple[float, ...]  # one per span
    null: bool  # a random orthogonal direction instead of the valence one
    target_a: float  # P(answer "A") after the intervention
    answer_position: int  # index in the row of the answer token


def bt_prob(elo_a: float, elo_b: float) -> float:
    return 1.0 / (1.0 + 10.0 ** ((elo_b - elo_a) / 400.0))


def plan_row(rng: random.Random, row: int, spans: tuple[tuple[int, int], tuple[int, int]],
             values: tuple[float, float], answer_position: int,
             config: InterventionConfig) -> RowIntervention | None:
    """Maybe intervene on option A, B or both of one A/B example; None when it is left alone."""
    if rng.random() >= config.probability:
        return None
    which = rng.choice(((0,), (1,), (0, 1)))
    strengths = tuple(rng.choice(config.strengths) for _ in which)
    null = rng.random() < config.null_probability
    shifted = list(values)
    if not null:
        for side, strength in zip(which, strengths, strict=True):
            shifted[side] += config.elo_per_strength * strength
    return RowIntervention(row, tuple(spans[side] for side in which), strengths, null,
                           bt_prob(*shifted), answer_position)


def delta_tensor(plans: Sequence[RowIntervention], shape: tuple[int, int, int],
                 direction: Direction, generator: torch.Generator) -> torch.Tensor:
    """[B, T, d] additions: strength x mean_norm x (valence or random orthogonal) direction."""
    delta = torch.zeros(shape)
    for plan in plans:
        unit = direction.unit
        if plan.null:
            noise = torch.randn(shape[-1], generator=generator)
            noise = noise - (noise @ unit) * unit
            unit = noise / noise.norm()
        for (start, end), strength in zip(plan.spans, plan.strengths, strict=True):
            delta[plan.row, start:end] = strength * direction.mean_norm * unit
    return delta


@contextmanager
def added_at(model, layer: int, delta: torch.Tensor | None) -> Iterator[None]:
    """Add `delta` ([B, T, d]) to the output of decoder block `layer` (nothing when None)."""
    if delta is None:
        yield
        return
    with layer_hooks(model, [layer], lambda _layer, hidden: hidden + delta.to(hidden.dtype)):
        yield
