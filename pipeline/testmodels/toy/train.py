"""Deterministic CPU training of the toy model, and its randomly initialised twin.

    python -m pipeline.testmodels.toy train          # corpus -> tokenizer -> model -> data/models/toy
    python -m pipeline.testmodels.toy random-twin    # same config and tokenizer, seeded random weights

Model: a 4-block Llama (hidden 128, 4 heads, 2 KV heads, MLP 512, untied embeddings, vocabulary
3072); 7.0 MB of float32 weights. It is this small because the scorecard has to run on it from a
fresh checkout in minutes on 2 CPU cores, and the preference experiment alone is 38 conditions
x 4032 prompts; it is not smaller because at hidden 64 the logit-lens loss (V1) stayed near
chance and V1 passed on one seed of three (docs/TOY.md, run 4). The registry reads V1-V6 at layer 2
(the output of the third of four blocks, "two thirds deep") and probes and steers preferences at
layer 1 (the middle), with two blocks after it to read what steering adds. Untied embeddings:
with tied ones the A and B answer tokens, which also occur in every prompt, did not separate
and the toy never learned its preferences.

Tokenizer: the tiny model's Llama-3-shaped byte-level BPE (`pipeline.testmodels.tiny`), trained on
this corpus, the paper's stimuli and the emotion words repeated, so most emotion words are one
token, as in a real model's vocabulary.

Loss: next-token cross-entropy on assistant turns and plain text; the paper's prompts (user
turns, prefills) are context, not targets, and logits are computed only where a target is. Each
row of a batch weighs the same, so a one-letter A/B answer is not drowned by a long answer in
the same batch. A/B examples are also trained under interventions (pipeline/testmodels/toy/intervene.py).

Determinism: the corpus comes from one seeded `random.Random`, batch order and interventions
from others, weights from `torch.manual_seed`; deterministic algorithms and a fixed thread count
(1 by default: on a shared CPU a second thread mostly waits). Two runs with the same versions on
the same machine gave byte-identical weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import platform
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerFast

from pipeline import DATA_DIR
from pipeline.inputs.stimuli import (
    load_emotions,
    load_preference_prompt_templates,
    load_valence_labels,
)
from pipeline.measures.logit_lens import whole_word_token
from pipeline.model.capture import pack_in_order, pad_rows
from pipeline.model.corpus import split_dialogues
from pipeline.model.hooks import layer_hooks
from pipeline.model.prompts import char_span_to_token_span, render_prompt
from pipeline.testmodels.tiny import (
    END_OF_TEXT,
    EOT,
    build_model,
    check_model_dir,
    library_versions,
    stimulus_corpus,
    train_tokenizer,
    wrap_tokenizer,
    write_model_dir,
)
from pipeline.testmodels.toy.channel import (
    ChannelConfig,
    PlantedChannel,
    plant_channel,
    twelve_emotion_lexicon,
)
from pipeline.testmodels.toy.corpus import (
    CorpusConfig,
    Example,
    build_corpus,
    corpus_sha256,
    corpus_texts,
)
from pipeline.testmodels.toy.directions import (
    PREFIX_FROM,
    REFRESH_EVERY,
    START_STEP,
    STORIES_PER_CHOICE,
    STORIES_PER_EMOTION,
    DirectionPoint,
    EmotionDirections,
    direction_point_losses,
    measure_emotion_directions,
)
from pipeline.testmodels.toy.intervene import (
    Direction,
    InterventionConfig,
    RowIntervention,
    added_at,
    delta_tensor,
    measure_direction,
    plan_row,
)
from pipeline.testmodels.toy.lens import (
    LensConfig,
    LensTarget,
    PointTarget,
    lens_loss,
    level_loss,
    loud_directions,
    neutral_steer_loss,
    point_losses,
    valence_axis,
    valence_axis_loss,
)
from pipeline.testmodels.toy.phrases import TONE_NEGATIVE, TONE_POSITIVE
from pipeline.testmodels.toy.situations import IMPLICIT_SITUATIONS

TOY_DIR = DATA_DIR / "models" / "toy"
TOY_RANDOM_DIR = DATA_DIR / "models" / "toy_random"
TOY_VOCAB_SIZE = 3072
TOY_SHAPE: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 512,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}


def toy_shape(width: int) -> dict[str, Any]:
    """TOY_SHAPE at another residual width (MLP 4x wide, as in TOY_SHAPE)."""
    if width < 16 or width % 16:
        raise ValueError(f"toy width {width}: expected a multiple of 16 (4 heads of even size)")
    return {**TOY_SHAPE, "hidden_size": width, "intermediate_size": 4 * width}


# Extra tokenizer-training texts: the emotion words, so that most become single tokens.
EMOTION_WORD_REPEATS = 200
RANDOM_TWIN_SEED = 1
# The neutral hold (LensConfig.neutral_steer_weight): plain neutral dialogues read each step, and
# their length cap (the toy's own neutral calls are 192 tokens at the smoke scale).
NEUTRAL_ROWS = 8
NEUTRAL_MAX_TOKENS = 256


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    token_budget: int = 4096  # padded tokens per batch
    epochs: int = 1
    lr: float = 3e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    threads: int = 1

    def describe(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    targets: list[bool]  # targets[i]: token i is predicted (from position i - 1) and trained on
    kind: str
    # A/B examples only: the options' token spans, their Bradley-Terry strengths (Elo) and
    # the index of the answer token.
    spans: tuple[tuple[int, int], tuple[int, int]] | None = None
    values: tuple[float, float] | None = None
    answer: int | None = None
    # Plain stories under the lens loss (pipeline/testmodels/toy/lens.py).
    lens_target: LensTarget | None = None
    # Chat examples: the read position (the prompt's last token, as the harness reads it).
    read: int | None = None
    user: tuple[int, int] | None = None  # chat examples: the user message's token span
    # Positions trained to carry a word or a valence (V3-V6; lens.PointTarget).
    points: tuple[PointTarget, ...] = ()
    # Or to point along the toy's own emotion directions (V3-V6; directions.DirectionPoint).
    direction_points: tuple[DirectionPoint, ...] = ()


def toy_tokenizer(examples: Sequence[Example], vocab_size: int = TOY_VOCAB_SIZE):
    """The tiny model's Llama-3-shaped byte-level BPE, trained on this corpus and the stimuli."""
    emotions = " ".join(load_emotions())
    texts = [*corpus_texts(examples), *stimulus_corpus(), *[emotions] * EMOTION_WORD_REPEATS]
    return wrap_tokenizer(train_tokenizer(texts, vocab_size=vocab_size))


def encode(tokenizer: PreTrainedTokenizerFast, example: Example) -> Encoded:
    """Token ids exactly as the harness builds them (chat: `render_prompt`), plus targets."""
    if example.user is None:
        ids = tokenizer(example.completion, add_special_tokens=True)["input_ids"]
        ids = [*ids, tokenizer.convert_tokens_to_ids(END_OF_TEXT)]
        return Encoded(ids, [False] + [True] * (len(ids) - 1), example.kind)
    prompt = render_prompt(tokenizer, example.user, fmt="chat", chat_template_args={},
                           assistant_prefill=example.prefill)
    # Tokenized apart from the prompt, as generation produces it token by token after it.
    completion = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    if not example.meta.get("unfinished"):
        completion = [*completion, tokenizer.convert_tokens_to_ids(EOT)]
    ids = [*prompt.input_ids, *completion]
    targets = [False] * len(prompt.input_ids) + [True] * len(completion)
    if "elo" not in example.meta:
        offset = prompt.spans["user"][0]
        user = char_span_to_token_span(prompt.offsets, offset, offset + len(example.user))
        return Encoded(ids, targets, example.kind, read=prompt.read_position, user=user)
    return Encoded(ids, targets, example.kind, spans=_option_spans(prompt, example),
                   values=tuple(float(v) for v in example.meta["elo"]),
                   answer=len(prompt.input_ids))


def _option_spans(prompt, example: Example) -> tuple[tuple[int, int], tuple[int, int]]:
    """Token spans of options A and B, from where the template puts them (as the harness does:
    an option's text may also occur inside the other one)."""
    template = load_preference_prompt_templates().pairwise_user
    a, b = example.meta["a"], example.meta["b"]
    start_a = template.index("{activity_A}")
    start_b = template.index("{activity_B}") - len("{activity_A}") + len(a)
    offset = prompt.spans["user"][0]
    return (char_span_to_token_span(prompt.offsets, offset + start_a, offset + start_a + len(a)),
            char_span_to_token_span(prompt.offsets, offset + start_b, offset + start_b + len(b)))


def make_batches(items: Sequence[Encoded], token_budget: int, rng: random.Random,
                 chunk: int = 4096) -> list[list[int]]:
    """Index batches of similar length (little padding), at most `token_budget` padded tokens,
    in a seeded random order."""
    order = list(range(len(items)))
    rng.shuffle(order)
    lengths = [len(item.ids) for item in items]
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lengths.__getitem__)
        batches.extend(pack_in_order(part, lengths, token_budget))
    rng.shuffle(batches)
    return batches


def _collate(items: Sequence[Encoded], pad_id: int) -> tuple[torch.Tensor, ...]:
    width = max(len(item.ids) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    targets = torch.zeros((len(items), width), dtype=torch.bool)
    for row, item in enumerate(items):
        n = len(item.ids)
        ids[row, :n] = torch.tensor(item.ids)
        mask[row, :n] = 1
        targets[row, :n] = torch.tensor(item.targets)
    return ids, mask, targets


def batch_loss(model, ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
               soft: Sequence[RowIntervention] = (), choice_ids: tuple[int, int] = (0, 0)):
    """Mean over rows of each row's mean target cross-entropy (so a one-letter answer weighs as
    much as a story), and the per-row means. Logits only where a target is (right padding).

    soft: rows whose answer token is trained on P(A) = target_a, P(B) = 1 - target_a instead.
    """
    hidden = model.model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    select = targets[:, 1:]  # [B, T-1]: position t predicts token t + 1
    logits = model.lm_head(hidden[:, :-1][select]).float()  # [N, V]
    losses = F.cross_entropy(logits, ids[:, 1:][select], reduction="none")  # [N]
    if soft:
        index = torch.full(select.shape, -1, dtype=torch.long)
        index[select] = torch.arange(int(select.sum()))
        rows = torch.tensor([index[plan.row, plan.answer_position - 1] for plan in soft])
        log_p = F.log_softmax(logits[rows], dim=-1)[:, list(choice_ids)]  # [S, 2]
        p_a = torch.tensor([plan.target_a for plan in soft])
        soft_loss = -(p_a * log_p[:, 0] + (1 - p_a) * log_p[:, 1])
        losses = losses.index_put((rows,), soft_loss)
    row_of = select.nonzero()[:, 0]  # [N]
    per_row = torch.zeros(ids.shape[0]).index_add(0, row_of, losses)
    per_row = per_row / select.sum(1).clamp(min=1)
    return per_row.mean(), per_row.detach()


def _lr_at(step: int, total: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


@dataclass(frozen=True)
class DirectionStories:
    """Plain stories whose mean representations define the valence direction during training."""

    positive: list[list[int]]
    negative: list[list[int]]


def train_model(model, items: Sequence[Encoded], pad_id: int, config: TrainConfig,
                log: Callable[[str], None] = print, *,
                intervention: InterventionConfig | None = None,
                stories: DirectionStories | None = None,
                choice_ids: tuple[int, int] = (0, 0),
                lens: LensConfig | None = None,
                tone_ids: tuple[Sequence[int], Sequence[int]] = ((), ()),
                emotion_stories: dict[str, list[list[int]]] | None = None,
                story_starts: dict[str, list[int]] | None = None,
                channel: PlantedChannel | None = None,
                neutral_texts: Sequence[list[int]] = ()) -> dict[str, Any]:
    """AdamW over `config.epochs` passes; returns the loss history summary.

    With `intervention` (and `stories` to measure its direction), A/B examples are trained
    under additive interventions at its layer (pipeline/testmodels/toy/intervene.py). With
    `lens.point_directions` (and `emotion_stories` to measure the directions), read positions
    are trained against the toy's own emotion directions (directions.py).
    """
    if intervention is not None and stories is None:
        raise ValueError("intervention training needs `stories` to measure the valence direction")
    rng = random.Random(config.seed + 1)
    plan_rng = random.Random(config.seed + 2)
    noise = torch.Generator().manual_seed(config.seed + 3)
    hold_rng = random.Random(config.seed + 4)  # which neutral dialogues the hold reads
    schedule = [b for _ in range(config.epochs) for b in make_batches(items, config.token_budget,
                                                                       rng)]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # The lens's own temperature (log scale), trained with the model and then dropped: the
    # lens ranks W_U h, and the scale of its logits is not the model's business.
    lens_log_scale = torch.nn.Parameter(torch.zeros(()))
    if lens is not None and lens.weight > 0:
        groups.append({"params": [lens_log_scale], "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95))
    model.train()
    recent: dict[str, list[float]] = defaultdict(list)
    history = []
    direction: Direction | None = None
    emotions: EmotionDirections | None = None
    labels = load_valence_labels()
    choices = tuple(IMPLICIT_SITUATIONS)
    use_directions = lens is not None and lens.point_weight > 0 and lens.point_directions
    if use_directions and emotion_stories is None:
        raise ValueError("direction point losses need `emotion_stories` to measure directions")
    captured: dict[int, torch.Tensor] = {}  # watched layers' outputs, batch by batch
    started = time.time()
    for step, batch in enumerate(schedule):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, len(schedule), config)
        ids, mask, targets = _collate([items[i] for i in batch], pad_id)
        plans: list[RowIntervention] = []
        if intervention is not None and step >= intervention.start_step:
            if (step - intervention.start_step) % intervention.refresh_every == 0:
                direction = measure_direction(model, stories.positive, stories.negative,
                                              intervention.layer, pad_id)
            for row, index in enumerate(batch):
                item = items[index]
                if item.spans is not None:
                    plan = plan_row(plan_rng, row, item.spans, item.values, item.answer,
                                    intervention)
                    if plan is not None:
                        plans.append(plan)
        delta = (delta_tensor(plans, (*ids.shape, model.config.hidden_size), direction, noise)
                 if plans else None)
        lens_targets = [items[i].lens_target for i in batch]
        points = [items[i].points for i in batch]
        points_on = (lens is not None and lens.point_weight > 0
                     and step >= lens.point_start * len(schedule))
        use_points = points_on and any(points)
        if use_directions and step >= START_STEP and (step - START_STEP) % REFRESH_EVERY == 0:
            emotions = measure_emotion_directions(model, emotion_stories, labels, lens.layer,
                                                  pad_id, starts=story_starts)
        direction_points = [items[i].direction_points for i in batch]
        use_points = use_points or (points_on and emotions is not None
                                    and any(direction_points))
        use_lens = (lens is not None and lens.weight > 0
                    and (any(t is not None for t in lens_targets) or use_points))
        with contextlib.ExitStack() as stack:
            stack.enter_context(added_at(model, intervention.layer if intervention else 0,
                                         delta))
            if use_lens:
                stack.enter_context(layer_hooks(
                    model, [lens.layer], lambda layer, hidden: captured.__setitem__(layer, hidden)))
            loss, per_row = batch_loss(model, ids, mask, targets, plans, choice_ids)
        if use_lens:
            aux = lens_loss(captured[lens.layer], mask, lens_targets,
                            model.get_output_embeddings().weight, lens.start,
                            lens_log_scale.exp(), lens.tone_mass)
            if aux is not None:  # None: only neutral rows (valence-axis targets) in the batch
                recent["lens"].append(aux.item())
                loss = loss + lens.weight * aux
            if lens.valence_weight > 0:
                unembedding = model.get_output_embeddings().weight
                axis = valence_axis(unembedding, *tone_ids)
                gap = valence_axis_loss(captured[lens.layer], mask, lens_targets, axis, lens.start,
                                        lens.valence_margin)
                if gap is not None:
                    recent["valence"].append(gap.item())
                    loss = loss + lens.valence_weight * gap
            if lens.level_weight > 0:
                spread = level_loss(captured[lens.layer], mask, lens_targets,
                                    loud_directions(model.get_output_embeddings().weight),
                                    lens.start, lens.level_unit)
                if spread is not None:
                    recent["level"].append(spread.item())
                    loss = loss + lens.level_weight * spread
            if use_points and emotions is not None:
                choice, graded = direction_point_losses(captured[lens.layer], direction_points,
                                                        emotions, choices, lens.valence_margin)
                terms = {"point_choice": (choice, 1.0),
                         "point_valence": (graded, lens.valence_weight)}
            elif use_points:
                unembedding = model.get_output_embeddings().weight
                point_lens, point_valence = point_losses(
                    captured[lens.layer], points, unembedding, lens_log_scale.exp(), lens.tone_mass,
                    valence_axis(unembedding, *tone_ids), lens.valence_margin)
                terms = {"point_lens": (point_lens, 1.0),
                         "point_valence": (point_valence, lens.valence_weight)}
            for name, (term, share) in (terms.items() if use_points else ()):
                if term is not None:
                    recent[name].append(term.item())
                    loss = loss + lens.point_weight * share * term
        if (lens is not None and lens.neutral_steer_weight > 0 and direction is not None
                and neutral_texts):
            # Neutral dialogues as the harness reads them for its denoising: plain text, BOS
            # first (pipeline.stages.extraction.neutral_stats_stage), not the chat rows above.
            rows = [neutral_texts[i] for i in hold_rng.sample(range(len(neutral_texts)),
                                                              min(NEUTRAL_ROWS,
                                                                  len(neutral_texts)))]
            plain_ids, plain_mask = pad_rows(rows, pad_id, left=False)
            with layer_hooks(model, [intervention.layer],
                             lambda layer, hidden: captured.__setitem__(layer, hidden)):
                model.model(input_ids=plain_ids, attention_mask=plain_mask, use_cache=False)
            spread = neutral_steer_loss(captured[intervention.layer], plain_mask,
                                        range(len(rows)), direction.unit)
            if spread is not None:
                recent["neutral_steer"].append(spread.item())
                loss = loss + lens.neutral_steer_weight * spread
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if channel is not None:  # planted entries stay put (weight decay moves them too)
            channel.restore()
        for row, index in enumerate(batch):
            recent[items[index].kind].append(float(per_row[row]))
        history.append(loss.item())
        if step % 50 == 0 or step == len(schedule) - 1:
            by_kind = " ".join(f"{k}={sum(v[-200:]) / len(v[-200:]):.3f}"
                               for k, v in sorted(recent.items()))
            log(f"step {step + 1}/{len(schedule)} loss {loss.item():.3f} [{by_kind}] "
                f"{time.time() - started:.0f}s")
    model.eval()
    tail = history[-50:]
    return {
        "steps": len(schedule),
        "final_loss": round(sum(tail) / len(tail), 4),
        "final_loss_by_kind": {k: round(sum(v[-200:]) / len(v[-200:]), 4)
                               for k, v in sorted(recent.items())},
        "train_wall_s": round(time.time() - started, 1),
    }


def tone_token_ids(tokenizer) -> dict[str, tuple[int, ...]]:
    """The whole-word tokens of the positive and of the negative tone words."""
    return {sign: tuple(t for w in words if (t := whole_word_token(tokenizer, w)) is not None)
            for sign, words in (("positive", TONE_POSITIVE), ("negative", TONE_NEGATIVE))}


def with_lens_targets(tokenizer, examples: Sequence[Example], items: Sequence[Encoded],
                      tones: bool = False, valence: bool = False) -> list[Encoded]:
    """Plain stories get their emotion word's whole-word token as lens target (an emotion
    without one, e.g. a two-word emotion, gets none), with `tones` the whole-word tokens
    of the tone words of its valence label; with `valence` also its label's sign, and the
    neutral dialogues (their replies) valence 0."""
    labels = load_valence_labels()
    tone_ids = tone_token_ids(tokenizer)
    targets = {}
    for emotion in load_emotions():
        word = whole_word_token(tokenizer, emotion)
        targets[emotion] = None if word is None else LensTarget(
            word, tone_ids[labels[emotion]] if tones else (),
            (1.0 if labels[emotion] == "positive" else -1.0) if valence else None)
    out = []
    for example, item in zip(examples, items, strict=True):
        if example.kind == "story":
            item = dataclasses.replace(item, lens_target=targets[example.meta["emotion"]])
        elif example.kind == "neutral" and valence:
            item = dataclasses.replace(item, lens_target=LensTarget(
                None, valence=0.0, first=item.targets.index(True)))
        out.append(item)
    return out


def with_point_targets(tokenizer, examples: Sequence[Example],
                       items: Sequence[Encoded], directions: bool = False,
                       prefixes: bool = False) -> list[Encoded]:
    """Read-position targets (pipeline/testmodels/toy/situated.py): an implicit situation's
    emotion word with its valence's tone words and its valence label's sign; a numeric
    statement's graded valence. With `directions`: the situation's emotion among the twelve,
    or the graded valence, against the toy's own directions (directions.py); with `prefixes`
    a situation's emotion also at every token of its message from the PREFIX_FROM-th on."""
    labels = load_valence_labels()
    tone_ids = tone_token_ids(tokenizer)
    choices = list(IMPLICIT_SITUATIONS)
    out = []
    for example, item in zip(examples, items, strict=True):
        if directions and example.kind == "implicit":
            choice = choices.index(example.meta["emotion"])
            positions = [*(range(item.user[0] + PREFIX_FROM, item.user[1]) if prefixes else ()),
                         item.read]
            item = dataclasses.replace(item, direction_points=tuple(
                DirectionPoint(position, choice=choice) for position in positions))
        elif directions and example.kind == "numeric":
            item = dataclasses.replace(item, direction_points=(DirectionPoint(
                item.read, valence=example.meta["valence"]),))
        elif example.kind == "implicit":
            emotion = example.meta["emotion"]
            point = PointTarget(item.read, whole_word_token(tokenizer, emotion),
                                tone_ids[labels[emotion]],
                                1.0 if labels[emotion] == "positive" else -1.0)
            item = dataclasses.replace(item, points=(point,))
        elif example.kind == "numeric":
            item = dataclasses.replace(item, points=(
                PointTarget(item.read, valence=example.meta["valence"]),))
        out.append(item)
    return out


def plain_neutral_dialogues(tokenizer, examples: Sequence[Example],
                            max_tokens: int = NEUTRAL_MAX_TOKENS) -> list[list[int]]:
    """Every neutral example's dialogues as the harness cuts and reads its own generated ones
    (`split_dialogues`: Person/AI become Human/Assistant; BOS + text, at most `max_tokens`)."""
    out = []
    for example in examples:
        if example.kind == "neutral":
            for dialogue in split_dialogues(example.completion):
                if dialogue:
                    out.append(tokenizer(dialogue, add_special_tokens=True, truncation=True,
                                         max_length=max_tokens)["input_ids"])
    return out


def direction_stories(tokenizer, examples: Sequence[Example], per_sign: int) -> DirectionStories:
    """The first `per_sign` plain stories of positive-label and of negative-label emotions."""
    labels = load_valence_labels()
    groups: dict[str, list[list[int]]] = {"positive": [], "negative": []}
    for example in examples:
        if example.kind != "story":
            continue
        group = groups[labels[example.meta["emotion"]]]
        if len(group) < per_sign:
            body = example.completion.split("\n\nFeeling:")[0]
            group.append(tokenizer(body, add_special_tokens=True)["input_ids"])
    if min(len(g) for g in groups.values()) < per_sign:
        raise ValueError(f"the corpus has fewer than {per_sign} plain stories of each valence; "
                         "raise CorpusConfig.n_story")
    return DirectionStories(groups["positive"], groups["negative"])


def stories_by_emotion(tokenizer, examples: Sequence[Example], per_emotion: int,
                       more: Sequence[str] = (), per_more: int = 0, chat: bool = False,
                       max_tokens: int = 256) -> tuple[dict[str, list[list[int]]],
                                                       dict[str, list[int]]]:
    """The first `per_emotion` stories of every emotion, and the first `per_more` of the
    emotions in `more`, as token ids, with where each story starts. Plain stories (BOS first,
    start 0); with `chat`, the story prompt's examples rendered as the harness renders the
    prompt and its reply (at most `max_tokens` of it), starting at the reply."""
    kind = "story_prompt" if chat else "story"
    wanted = {emotion: per_emotion for emotion in load_emotions()}
    wanted.update({emotion: max(per_emotion, per_more) for emotion in more})
    groups: dict[str, list[list[int]]] = {emotion: [] for emotion in wanted}
    starts: dict[str, list[int]] = {emotion: [] for emotion in wanted}
    for example in examples:
        emotion = example.meta.get("emotion") if example.kind == kind else None
        if emotion is None or len(groups[emotion]) >= wanted[emotion]:
            continue
        if chat:
            prompt = render_prompt(tokenizer, example.user, fmt="chat", chat_template_args={},
                                   assistant_prefill=example.prefill)
            reply = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
            groups[emotion].append([*prompt.input_ids, *reply[:max_tokens]])
            starts[emotion].append(len(prompt.input_ids))
        else:
            body = example.completion.split("\n\nFeeling:")[0]
            groups[emotion].append(tokenizer(body, add_special_tokens=True)["input_ids"])
            starts[emotion].append(0)
    short = [emotion for emotion, group in groups.items() if len(group) < wanted[emotion]]
    if short:
        what = "story-prompt examples" if chat else "plain stories"
        raise ValueError(f"the corpus has too few {what} of {', '.join(short[:3])} for the "
                         f"direction losses; raise CorpusConfig.n_{kind}")
    return groups, starts


def _versions() -> dict[str, str]:
    return {**library_versions(), "python": platform.python_version()}


@contextmanager
def torch_settings(threads: int, deterministic: bool) -> Iterator[None]:
    """Thread count and deterministic algorithms for a build, restored afterwards: the twin is
    also built inside the test process, whose later tests must keep their own settings."""
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


def train_toy(out_dir: Path = TOY_DIR, corpus_config: CorpusConfig | None = None,
              config: TrainConfig | None = None,
              intervention: InterventionConfig | None = None,
              log: Callable[[str], None] = print,
              lens: LensConfig | None = None,
              shape: dict[str, Any] | None = None,
              channel: ChannelConfig | None = None) -> Path:
    """Build the corpus, train tokenizer and model from scratch, write them to `out_dir`."""
    corpus_config = corpus_config or CorpusConfig()
    config = config or TrainConfig()
    intervention = intervention or InterventionConfig()
    lens = lens or LensConfig()
    check_model_dir(Path(out_dir), "toy model")
    with torch_settings(config.threads, deterministic=True):
        return _train_toy(Path(out_dir), corpus_config, config, intervention, log, lens,
                          shape or TOY_SHAPE, channel)


def _train_toy(out_dir: Path, corpus_config: CorpusConfig, config: TrainConfig,
               intervention: InterventionConfig, log: Callable[[str], None],
               lens: LensConfig, shape: dict[str, Any],
               channel_config: ChannelConfig | None = None) -> Path:
    started = time.time()
    examples = build_corpus(corpus_config)
    log(f"corpus: {len(examples)} examples ({time.time() - started:.0f}s)")
    tokenizer = toy_tokenizer(examples)
    items = [encode(tokenizer, example) for example in examples]
    if lens.weight > 0:
        items = with_lens_targets(tokenizer, examples, items, tones=lens.tone_mass > 0,
                                  valence=lens.valence_weight > 0)
    if lens.point_weight > 0:
        items = with_point_targets(tokenizer, examples, items, lens.point_directions,
                                   lens.point_prefixes)
    n_tokens = sum(len(item.ids) for item in items)
    log(f"tokenizer and encoding: {n_tokens} tokens ({time.time() - started:.0f}s)")
    model = build_model(tokenizer, seed=config.seed, shape=shape)
    channel = None
    if channel_config is not None:
        channel = plant_channel(model, twelve_emotion_lexicon(tokenizer, channel_config,
                                                              corpus_config.signature_nouns),
                                channel_config)
    stories = direction_stories(tokenizer, examples, intervention.stories_per_sign)
    choice_ids = (tokenizer.convert_tokens_to_ids("A"), tokenizer.convert_tokens_to_ids("B"))
    tones = tone_token_ids(tokenizer)
    emotion_stories = story_starts = None
    if lens.point_directions:
        emotion_stories, story_starts = stories_by_emotion(
            tokenizer, examples, STORIES_PER_EMOTION, tuple(IMPLICIT_SITUATIONS),
            STORIES_PER_CHOICE, chat=lens.point_chat)
    neutral_texts = (plain_neutral_dialogues(tokenizer, examples)
                     if lens.neutral_steer_weight > 0 else [])
    summary = train_model(model, items, tokenizer.pad_token_id, config, log,
                          intervention=intervention, stories=stories, choice_ids=choice_ids,
                          lens=lens, tone_ids=(tones["positive"], tones["negative"]),
                          emotion_stories=emotion_stories, story_starts=story_starts,
                          channel=channel, neutral_texts=neutral_texts)
    if channel is not None:
        channel.remove_hooks()
    kinds: dict[str, int] = defaultdict(int)
    for example in examples:
        kinds[example.kind] += 1
    provenance = {
        # provenance.json is part of the weights' fingerprint, so of every artifact key, and a
        # rebuild must match it byte for byte: change nothing here without rebuilding.
        "built_by": "python -m pipeline.testmodels.toy train",
        "seed": config.seed,
        "config": shape,
        "vocab_size": len(tokenizer),
        "train": config.describe(),
        "intervention": intervention.describe(),
        # Only when on, so a default retrain still writes the shipped provenance byte for byte.
        **({"lens": lens.describe()} if lens.weight > 0 else {}),
        **({"channel": channel_config.describe()} if channel_config is not None else {}),
        "corpus": corpus_config.describe(),
        "corpus_sha256": corpus_sha256(examples),
        "corpus_examples": dict(sorted(kinds.items())),
        "corpus_tokens": n_tokens,
        **summary,
        "wall_s": round(time.time() - started, 1),
        "threads": config.threads,
        "cpu": platform.processor() or platform.machine(),
        "versions": _versions(),
    }
    return write_model_dir(Path(out_dir), model, tokenizer, provenance, what="toy model")


def build_random_twin(out_dir: Path = TOY_RANDOM_DIR, toy_dir: Path = TOY_DIR,
                      seed: int = RANDOM_TWIN_SEED) -> Path:
    """The toy's configuration and tokenizer with seeded random weights (the negative control)."""
    toy_dir = Path(toy_dir)
    if not (toy_dir / "tokenizer.json").is_file():
        raise ValueError(
            f"{toy_dir} holds no tokenizer.json; the twin shares the toy's tokenizer, so train "
            "the toy first (python -m pipeline.testmodels.toy train) or pass --toy-dir"
        )
    tokenizer = PreTrainedTokenizerFast.from_pretrained(toy_dir)
    toy_provenance = json.loads((toy_dir / "provenance.json").read_text())
    # The twin has the toy's shape, whatever width the toy was trained at.
    shape = toy_provenance.get("config", TOY_SHAPE)
    with torch_settings(threads=1, deterministic=True):
        model = build_model(tokenizer, seed=seed, shape=shape)
    provenance = {
        # provenance.json is part of the weights' fingerprint, so of every artifact key, and a
        # rebuild must match it byte for byte: change nothing here without rebuilding.
        "built_by": "python -m pipeline.testmodels.toy random-twin",
        "seed": seed,
        "config": shape,
        "vocab_size": len(tokenizer),
        "tokenizer_from": "data/models/toy",
        "toy_corpus_sha256": toy_provenance.get("corpus_sha256"),
        "versions": _versions(),
    }
    return write_model_dir(Path(out_dir), model, tokenizer, provenance, what="toy model")
