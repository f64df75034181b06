"""Auxiliary losses at the toy's analysis layer that plant V1's, V2's and G1's mechanisms.

The logit-lens loss (V1), the valence-axis loss (G1, V2) and the level loss (V2); why each is
needed and why none is a test item: docs/TOY.md. The lens loss:

Why: V1 asks whether an emotion's vector, read straight through the unembedding (W_U v, no
final norm), promotes the emotion's own word. In a real model that holds because reading a
story that shows an emotion without naming it makes the model expect the emotion's word; the
toy's next-token loss alone never put that expectation at the analysis layer (docs/TOY.md,
runs 1-3: the own word ranked 37th-2600th).

What: on plain stories (read as the harness reads them: BOS + story), every position from
`start` on is also trained so that W_U h_layer (h: the residual after block `layer`, the
registry's analysis layer) predicts the story's emotion word, with weight `weight` beside the
next-token loss. h is RMS-normalised first (no gain): V1 ranks W_U v, which no scale of v
changes, whereas a cross-entropy on raw W_U h mostly asks for a larger h; trained that way
(2026-12-06, weights 1 and 3) the lens loss stalled above ln(171), above chance among the
emotion words. It stalled there after RMS normalisation too, with W_U's rows kept small, so the
logits also get a learned temperature (`scale`), which no ranking sees either. It is a mechanism, not a test item: the stories never name their emotion, and
the harness still has to generate its own stories with the toy, average, centre and denoise
them and read its vectors through W_U. Which emotion a story shows must be readable from its
words, hence `CorpusConfig.signature_nouns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

LEVEL_UNITS = ("position", "story")


@dataclass(frozen=True)
class LensConfig:
    # The defaults are the shipped toy's (docs/TOY.md, run 5); weight 0 turns the lens off.
    weight: float = 1.0
    layer: int = 2  # the toy's analysis layer (data/models.toml)
    start: int = 16  # first position trained: after the story's first sentence names its noun
    # Share of the lens target spread over the tone words of the story's valence (V2: an
    # emotion's vector promotes words of its own valence, so opposite valences push the
    # logits apart); the rest is on the emotion's own word.
    tone_mass: float = 0.4
    # G1 (PC1 of the emotion vectors is valence): a squared loss pulling the cosine of each
    # trained position's h with the valence axis (the unembedding's positive-minus-negative
    # tone direction, so the axis also serves V2) to +margin for positive stories and -margin
    # for negative ones. Without it (runs S-X) which axis came first depended on the seed.
    valence_weight: float = 4.0
    valence_margin: float = 0.5
    # V2 (opposite valences' logit profiles have a negative dot product): the dot of two
    # W_U v is dominated by v's components along the unembedding's loudest directions (the
    # mean row, which shifts every logit and which no cross-entropy sees, and the top singular
    # direction of the centred rows: sigma 52-54 against 2.6 for the median on runs Z0/M0), so
    # whichever sign those components took decided V2. This weight holds the cosine of every
    # story position with them at the batch's mean, so emotions do not differ along them.
    level_weight: float = 10.0
    # What the level loss holds still: "position" (every story position's cosine, the
    # shipped toy's) or "story" (each story's mean cosine over its trained positions, which is
    # what a harness vector averages; run 10, docs/TOY.md).
    level_unit: str = "position"
    # V3-V6: weight of the point losses at the read position of chat examples that carry a
    # point target (pipeline/testmodels/toy/situated.py); 0: off.
    point_weight: float = 0.0
    # With point_weight: train the read positions against the toy's own story directions
    # measured during training (pipeline/testmodels/toy/directions.py, run 7) instead of
    # through the unembedding (run 6).
    point_directions: bool = False
    # With point_directions: also every token of a situation's message (directions.PREFIX_FROM).
    point_prefixes: bool = False
    # With point_directions: measure the directions on the story prompt's replies (chat
    # context, where the harness reads its stories) instead of on plain stories (run 7).
    point_chat: bool = False
    # With point_weight: the share of training steps before the read-position losses start
    # (run 15: whether a read position shaped late leaves the steering learned early intact).
    point_start: float = 0.0
    # The steering layer's twin of the neutral valence-axis target (run 15): the variance of
    # cos(h, d) at the intervention layer over the tokens of plain-text neutral dialogues (as
    # the harness reads its own for the denoising), d being the valence direction training
    # intervenes along. The harness denoises its vectors by projecting out the top principal
    # components of neutral dialogues; where neutral text wanders along d (the situated toys:
    # cos 0.8-0.9 between d and the first neutral PC at layer 1), that removes d from every
    # steering vector, and steering shrinks to noise.
    neutral_steer_weight: float = 0.0

    def __post_init__(self) -> None:
        # Both read the residual the lens captures; with the lens off they would silently not run.
        if self.weight <= 0 and (self.valence_weight > 0 or self.level_weight > 0):
            raise ValueError(
                f"lens weight {self.weight} with valence weight {self.valence_weight} and level "
                f"weight {self.level_weight}: the valence-axis and level losses run only with the "
                "lens on; give --lens-weight > 0 or set both to 0")
        if self.weight <= 0 and self.point_weight > 0:
            raise ValueError(
                f"lens weight {self.weight} with point weight {self.point_weight}: the "
                "read-position losses read the lens's capture; give --lens-weight > 0 or "
                "--point-weight 0")
        if not 0.0 <= self.point_start < 1.0:
            raise ValueError(f"point start {self.point_start}: expected a share of the training "
                             "steps in [0, 1); give e.g. --point-start 0.6")
        if self.point_start and not self.point_weight:
            raise ValueError(f"point start {self.point_start} with point weight 0: there are no "
                             "read-position losses to start late; give --point-weight > 0")
        if self.neutral_steer_weight < 0:
            raise ValueError(f"neutral steer weight {self.neutral_steer_weight}: expected >= 0 "
                             "(0: off)")
        # Not because the hold reads the lens's capture: the toy's provenance records this
        # config only with the lens on, and a loss that shaped the weights must be in it.
        if self.weight <= 0 and self.neutral_steer_weight > 0:
            raise ValueError(
                f"lens weight {self.weight} with neutral steer weight "
                f"{self.neutral_steer_weight}: the toy records these settings only with the lens "
                "on; give --lens-weight > 0 or --neutral-steer-weight 0")
        if self.level_unit not in LEVEL_UNITS:
            raise ValueError(f"level unit {self.level_unit!r}; expected one of "
                             f"{', '.join(LEVEL_UNITS)}")
        if self.point_directions and self.point_weight <= 0:
            raise ValueError(
                f"point directions with point weight {self.point_weight}: the direction losses "
                "are the read-position losses; give --point-weight > 0 or drop "
                "--point-directions")

    def describe(self) -> dict:
        described = asdict(self)
        if not self.tone_mass:
            del described["tone_mass"]  # as the first lens runs recorded it
        if not self.valence_weight:
            del described["valence_weight"], described["valence_margin"]
        if not self.level_weight or self.level_unit == "position":
            del described["level_unit"]  # as the shipped toy, which came before it, recorded it
        if not self.level_weight:
            del described["level_weight"]
        if not self.point_weight:
            del described["point_weight"]  # as the shipped toy, which came before it, recorded it
        if not self.point_directions:
            del described["point_directions"]
        if not self.point_prefixes:
            del described["point_prefixes"]
        if not self.point_chat:
            del described["point_chat"]
        if not self.point_start:
            del described["point_start"]
        if not self.neutral_steer_weight:
            del described["neutral_steer_weight"]
        return described


@dataclass(frozen=True)
class LensTarget:
    word: int | None  # the emotion word's whole-word token (None: no lens target)
    tones: tuple[int, ...] = ()  # whole-word tokens of the tone words of its valence
    # The valence-axis loss's target: +1 positive, -1 negative story, 0 neutral text (which
    # must not vary along the axis: the harness denoises by projecting out the top principal
    # components of neutral dialogues, and an axis neutral text wanders along is one of them);
    # None: not trained.
    valence: float | None = None
    first: int = 0  # first position the valence-axis loss reads (a chat row: its reply)


def valence_axis(unembedding: torch.Tensor, positive: Sequence[int],
                 negative: Sequence[int]) -> torch.Tensor:
    """Unit vector in the residual space along which W_U raises the positive tone words over
    the negative ones (detached: the axis is read off the unembedding, not trained through)."""
    w = unembedding.detach().float()
    axis = w[list(positive)].mean(0) - w[list(negative)].mean(0)
    return axis / axis.norm().clamp(min=1e-8)


def valence_axis_loss(hidden: torch.Tensor, mask: torch.Tensor,
                      targets: Sequence[LensTarget | None], axis: torch.Tensor, start: int,
                      margin: float) -> torch.Tensor | None:
    """Mean over rows with a valence target of the mean squared gap between cos(h, axis) and
    valence * margin at positions >= max(start, the row's first) (real tokens only); None when
    no row has one."""
    rows = [row for row, t in enumerate(targets) if t is not None and t.valence is not None]
    if not rows:
        return None
    index = torch.tensor(rows)
    h = hidden[index].float()  # [R, T, d]
    positions = torch.arange(h.shape[1])[None, :]
    first = torch.tensor([max(start, targets[r].first) for r in rows])[:, None]
    select = (mask[index].bool() & (positions >= first)).float()  # [R, T]
    cosine = (h @ axis) / h.norm(dim=-1).clamp(min=1e-6)  # [R, T]
    want = torch.tensor([targets[r].valence * margin for r in rows])[:, None]
    per_row = ((cosine - want) ** 2 * select).sum(1) / select.sum(1).clamp(min=1)
    return per_row.mean()


def lens_loss(hidden: torch.Tensor, mask: torch.Tensor, targets: Sequence[LensTarget | None],
              unembedding: torch.Tensor, start: int, scale: torch.Tensor | float = 1.0,
              tone_mass: float = 0.0) -> torch.Tensor | None:
    """Mean over rows with a target of each row's mean cross-entropy of W_U h (h RMS-normalised)
    at positions >= start (real tokens only) against the row's target distribution: 1 -
    tone_mass on the emotion word, tone_mass spread over its tone words; None when no row
    has a target."""
    rows = [row for row, target in enumerate(targets)
            if target is not None and target.word is not None]
    if not rows:
        return None
    index = torch.tensor(rows)
    h = hidden[index]  # [R, T, d]
    positions = torch.arange(h.shape[1])[None, :]
    select = mask[index].bool() & (positions >= start)  # [R, T]
    picked = h[select].float()
    picked = picked * torch.rsqrt(picked.pow(2).mean(-1, keepdim=True) + 1e-6)
    log_p = F.log_softmax(scale * (picked @ unembedding.float().T), dim=-1)  # [N, V]
    wanted = torch.zeros(len(rows), unembedding.shape[0])  # [R, V] target distributions
    for k, row in enumerate(rows):
        target = targets[row]
        share = tone_mass if target.tones else 0.0
        wanted[k, target.word] += 1.0 - share
        for tone in target.tones:
            wanted[k, tone] += share / len(target.tones)
    row_of = select.nonzero()[:, 0]
    losses = -(log_p * wanted[row_of]).sum(-1)  # [N]
    per_row = torch.zeros(len(rows)).index_add(0, row_of, losses) / select.sum(1).clamp(min=1)
    return per_row.mean()


def loud_directions(unembedding: torch.Tensor) -> torch.Tensor:
    """[2, d] unit vectors: W_U's mean row and the top right-singular vector of its centred
    rows (detached: read off the unembedding, not trained through)."""
    w = unembedding.detach().float()
    mean = w.mean(0)
    top = torch.linalg.svd(w - mean, full_matrices=False).Vh[0]
    return torch.stack([mean / mean.norm().clamp(min=1e-8), top])


def level_loss(hidden: torch.Tensor, mask: torch.Tensor, targets: Sequence[LensTarget | None],
               directions: torch.Tensor, start: int, unit: str = "position"
               ) -> torch.Tensor | None:
    """Summed over `directions` [k, d], the variance of cos(h, direction) over the story
    positions (rows with a lens word, positions >= start), or with unit "story" over the
    stories' means of it; None when there are fewer than two units.

    Why "story": a harness vector is a mean over stories' positions, so what decides V2 is how
    far stories' means differ along the loud directions; the per-position variance is mostly
    token-to-token variation that no mean keeps, and holding it down leaves the stories' means
    to drift (run 10, docs/TOY.md)."""
    rows = [row for row, t in enumerate(targets) if t is not None and t.word is not None]
    if not rows:
        return None
    index = torch.tensor(rows)
    h = hidden[index].float()
    positions = torch.arange(h.shape[1])[None, :]
    select = mask[index].bool() & (positions >= start)  # [R, T]
    cosine = (h @ directions.T) / h.norm(dim=-1, keepdim=True).clamp(min=1e-6)  # [R, T, k]
    if unit == "story":
        counts = select.sum(1)
        keep = counts > 0
        if int(keep.sum()) < 2:
            return None
        sums = (cosine * select[..., None]).sum(1)  # [R, k]
        means = sums[keep] / counts[keep, None]
        return means.var(dim=0, unbiased=False).sum()
    picked = cosine[select]  # [N, k]
    if picked.shape[0] < 2:
        return None
    return picked.var(dim=0, unbiased=False).sum()


def neutral_steer_loss(hidden: torch.Tensor, mask: torch.Tensor, rows: Sequence[int],
                       direction: torch.Tensor) -> torch.Tensor | None:
    """The variance of cos(h, direction) over the real tokens after position 0 of `rows` (the
    token set the harness's neutral statistics use); None with fewer than two such tokens."""
    if not rows:
        return None
    index = torch.tensor(list(rows))
    h = hidden[index].float()
    positions = torch.arange(h.shape[1])[None, :]
    select = mask[index].bool() & (positions > 0)
    cosine = (h @ direction) / h.norm(dim=-1).clamp(min=1e-6)  # [R, T]
    picked = cosine[select]
    if picked.shape[0] < 2:
        return None
    return picked.var(unbiased=False)


@dataclass(frozen=True)
class PointTarget:
    """What one position of a chat example is trained to carry (V3-V6): `word` (with `tones`)
    through the logit lens as the stories' lens target is, and/or `valence` in [-1, 1] on the
    valence axis (times the margin), as the stories' valence-axis target is."""

    position: int
    word: int | None = None
    tones: tuple[int, ...] = ()
    valence: float | None = None


def point_losses(hidden: torch.Tensor, points: Sequence[Sequence[PointTarget]],
                 unembedding: torch.Tensor, scale: torch.Tensor | float, tone_mass: float,
                 axis: torch.Tensor, margin: float) -> tuple[torch.Tensor | None, ...]:
    """(lens, valence): the mean cross-entropy of W_U h (h RMS-normalised, as `lens_loss`) at
    the points with a word, and the mean squared gap between cos(h, axis) and valence *
    margin at the points with a valence; None where no point has one. points[row] lists the
    targets of batch row `row`."""
    worded = [(row, p) for row, targets in enumerate(points) for p in targets
              if p.word is not None]
    lens_term = None
    if worded:
        h = torch.stack([hidden[row, p.position] for row, p in worded]).float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        log_p = F.log_softmax(scale * (h @ unembedding.float().T), dim=-1)  # [N, V]
        wanted = torch.zeros_like(log_p)
        for k, (_, p) in enumerate(worded):
            share = tone_mass if p.tones else 0.0
            wanted[k, p.word] += 1.0 - share
            for tone in p.tones:
                wanted[k, tone] += share / len(p.tones)
        lens_term = -(log_p * wanted).sum(-1).mean()
    return lens_term, graded_axis_loss(hidden, points, axis, margin)


def graded_axis_loss(hidden: torch.Tensor, points: Sequence[Sequence], axis: torch.Tensor,
                     margin: float) -> torch.Tensor | None:
    """The mean squared gap between cos(h, axis) and valence * margin over the points (any
    with `position` and `valence`) that have a valence; None when none has one."""
    valenced = [(row, p) for row, targets in enumerate(points) for p in targets
                if p.valence is not None]
    if not valenced:
        return None
    h = torch.stack([hidden[row, p.position] for row, p in valenced]).float()
    cosine = (h @ axis) / h.norm(dim=-1).clamp(min=1e-6)
    want = torch.tensor([p.valence * margin for _, p in valenced])
    return ((cosine - want) ** 2).mean()
