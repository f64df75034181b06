"""The toy trainer's read-position losses against its own emotion directions (directions.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaForCausalLM

from pipeline.testmodels.toy.directions import (
    DirectionPoint,
    EmotionDirections,
    direction_point_losses,
    measure_emotion_directions,
)
from pipeline.testmodels.toy.lens import LensConfig
from pipeline.testmodels.toy.train import TOY_RANDOM_DIR


def _directions(d: int = 16, seed: int = 0) -> EmotionDirections:
    generator = torch.Generator().manual_seed(seed)
    unit = torch.randn(4, d, generator=generator)
    unit = unit / unit.norm(dim=-1, keepdim=True)
    axis = unit[0] + unit[1] - unit[2] - unit[3]
    return EmotionDirections(("joy", "calm", "sad", "fear"), unit, axis / axis.norm())


def test_choice_loss_falls_along_the_own_direction_and_reads_only_its_points():
    directions = _directions()
    choices = ("joy", "sad", "fear")
    hidden = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))
    points = [(DirectionPoint(1, choice=0),), (DirectionPoint(3, choice=2),)]
    choice, graded = direction_point_losses(hidden, points, directions, choices, 0.5)
    assert graded is None
    changed = hidden.clone()
    changed[0, 2] += 10  # not a point
    assert torch.equal(direction_point_losses(changed, points, directions, choices, 0.5)[0],
                       choice)
    planted = hidden.clone()
    planted[0, 1] = 3 * directions.unit[0]  # "joy"
    planted[1, 3] = 3 * directions.unit[3]  # "fear"
    low = direction_point_losses(planted, points, directions, choices, 0.5)[0]
    assert low < 0.01 < choice
    # The null: each point along a wrong choice's direction is worse than chance (ln 3).
    wrong = hidden.clone()
    wrong[0, 1] = directions.unit[2]
    wrong[1, 3] = directions.unit[0]
    assert direction_point_losses(wrong, points, directions, choices, 0.5)[0] > 1.1
    assert direction_point_losses(hidden, [(), ()], directions, choices, 0.5) == (None, None)


def test_valence_loss_is_zero_at_the_graded_cosine():
    directions = _directions()
    axis = directions.valence
    orth = torch.randn(16, generator=torch.Generator().manual_seed(2))
    orth = orth - (orth @ axis) * axis
    orth = orth / orth.norm()
    hidden = torch.zeros(1, 4, 16)
    for position, valence in ((1, 1.0), (2, -0.4)):
        want = valence * 0.5
        hidden[0, position] = want * axis + (1 - want**2) ** 0.5 * orth
    points = [(DirectionPoint(1, valence=1.0), DirectionPoint(2, valence=-0.4))]
    assert direction_point_losses(hidden, points, directions, ("joy",), 0.5)[1] < 1e-10
    flipped = [(DirectionPoint(1, valence=-1.0), DirectionPoint(2, valence=0.4))]
    assert direction_point_losses(hidden, flipped, directions, ("joy",), 0.5)[1] > 0.2


def test_measured_directions_are_the_centred_mean_story_representations():
    model = LlamaForCausalLM.from_pretrained(TOY_RANDOM_DIR).eval()
    generator = torch.Generator().manual_seed(3)
    stories = {name: [torch.randint(5, 3000, (n,), generator=generator).tolist()
                      for n in (60, 75)] for name in ("joy", "calm", "sad")}
    labels = {"joy": "positive", "calm": "positive", "sad": "negative"}
    measured = measure_emotion_directions(model, stories, labels, layer=2, pad_id=0, chunk=4)
    means = []
    with torch.no_grad():
        for name in stories:
            per_story = [model(torch.tensor([ids]), output_hidden_states=True)
                         .hidden_states[3][0, 50:].mean(0) for ids in stories[name]]
            means.append(torch.stack(per_story).mean(0))
    mean = torch.stack(means)
    centred = mean - mean.mean(0)
    expected = centred / centred.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(measured.unit, expected, atol=1e-4, rtol=1e-4)
    axis = centred[:2].mean(0) - centred[2]
    torch.testing.assert_close(measured.valence, axis / axis.norm(), atol=1e-4, rtol=1e-4)
    # A story written after a prompt is pooled from its own 50th token, not the sequence's.
    starts = {name: [5, 10] for name in stories}
    shifted = measure_emotion_directions(model, stories, labels, layer=2, pad_id=0, chunk=4,
                                         starts=starts)
    with torch.no_grad():
        means = torch.stack([torch.stack([
            model(torch.tensor([ids]), output_hidden_states=True).hidden_states[3][0, s + 50:]
            .mean(0) for ids, s in zip(stories[name], starts[name], strict=True)]).mean(0)
            for name in stories])
    centred = means - means.mean(0)
    torch.testing.assert_close(shifted.unit, centred / centred.norm(dim=-1, keepdim=True),
                               atol=1e-4, rtol=1e-4)


def test_point_directions_need_a_point_weight_and_are_off_by_default():
    assert not LensConfig().point_directions
    assert "point_directions" not in LensConfig(point_weight=1).describe()
    assert LensConfig(point_weight=1, point_directions=True).describe()["point_directions"]
    with pytest.raises(ValueError, match="point directions with point weight 0"):
        LensConfig(point_directions=True)


def test_prefix_points_cover_the_message_from_its_fifth_token_and_the_read_position():
    from transformers import PreTrainedTokenizerFast

    from pipeline.testmodels.toy.corpus import Example
    from pipeline.testmodels.toy.directions import PREFIX_FROM
    from pipeline.testmodels.toy.situations import IMPLICIT_SITUATIONS
    from pipeline.testmodels.toy.train import encode, with_point_targets

    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOY_RANDOM_DIR)
    user = "The kettle is on and the snow falls past the window."
    examples = [Example("implicit", "That sounds warm.", user=user, meta={"emotion": "calm"}),
                Example("numeric", "That sounds cold.", user="It took 9 days.",
                        meta={"valence": -0.5})]
    items = [encode(tokenizer, e) for e in examples]
    start, end = items[0].user
    assert tokenizer.decode(items[0].ids[start:end]) == user
    calm = list(IMPLICIT_SITUATIONS).index("calm")
    plain, numeric = with_point_targets(tokenizer, examples, items, directions=True)
    assert plain.direction_points == (DirectionPoint(plain.read, choice=calm),)
    assert numeric.direction_points == (DirectionPoint(numeric.read, valence=-0.5),)
    prefixed = with_point_targets(tokenizer, examples, items, directions=True, prefixes=True)
    assert [p.position for p in prefixed[0].direction_points] == [
        *range(start + PREFIX_FROM, end), plain.read]
    assert {p.choice for p in prefixed[0].direction_points} == {calm}
    assert prefixed[1].direction_points == numeric.direction_points  # numbers: the read only


def test_stories_by_emotion_takes_more_of_the_choice_emotions_and_names_a_shortfall():
    from transformers import PreTrainedTokenizerFast

    from pipeline.inputs.stimuli import load_emotions
    from pipeline.testmodels.toy.corpus import Example
    from pipeline.testmodels.toy.train import stories_by_emotion

    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOY_RANDOM_DIR)
    examples = [Example("story", f"Story {k} of {e}.\n\nFeeling: {e}", meta={"emotion": e})
                for e in load_emotions() for k in range(3)]
    groups, starts = stories_by_emotion(tokenizer, examples, 1, ("happy", "sad"), 3)
    assert set(starts["sad"]) == {0}
    assert {len(g) for e, g in groups.items() if e not in ("happy", "sad")} == {1}
    assert len(groups["happy"]) == len(groups["sad"]) == 3
    assert "Feeling" not in tokenizer.decode(groups["sad"][2])
    with pytest.raises(ValueError, match="too few plain stories of happy"):
        stories_by_emotion(tokenizer, examples, 1, ("happy",), 4)


def test_chat_stories_are_the_story_prompts_replies_with_their_starts():
    from transformers import PreTrainedTokenizerFast

    from pipeline.inputs.stimuli import load_emotions
    from pipeline.model.prompts import render_prompt
    from pipeline.testmodels.toy.corpus import Example
    from pipeline.testmodels.toy.train import stories_by_emotion

    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOY_RANDOM_DIR)
    examples = [Example("story_prompt", f"Reply {k} about {e}.", user=f"Write about {e}.",
                        prefill="[story 1]\n", meta={"emotion": e})
                for e in load_emotions() for k in range(2)]
    groups, starts = stories_by_emotion(tokenizer, examples, 1, ("sad",), 2, chat=True,
                                        max_tokens=3)
    prompt = render_prompt(tokenizer, "Write about sad.", fmt="chat", chat_template_args={},
                           assistant_prefill="[story 1]\n")
    assert starts["sad"] == [len(prompt.input_ids)] * 2 and len(groups["happy"]) == 1
    assert groups["sad"][1][: starts["sad"][1]] == prompt.input_ids
    assert len(groups["sad"][1]) == starts["sad"][1] + 3  # the reply cut at max_tokens
    with pytest.raises(ValueError, match="too few story-prompt examples of sad"):
        stories_by_emotion(tokenizer, examples, 1, ("sad",), 3, chat=True)
