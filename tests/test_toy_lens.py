"""The toy's auxiliary losses at its analysis layer (pipeline/testmodels/toy/lens.py)."""

import json

import pytest
import torch

from pipeline.testmodels.toy.lens import (
    LensConfig,
    LensTarget,
    lens_loss,
    level_loss,
    loud_directions,
    neutral_steer_loss,
    valence_axis,
    valence_axis_loss,
)
from pipeline.testmodels.toy.train import TOY_DIR, TOY_SHAPE, toy_shape


def _setup(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    unembedding = torch.randn(40, 16, generator=generator)
    return unembedding, torch.ones(2, 12)


def test_a_residual_along_the_words_unembedding_scores_better_than_a_random_one():
    unembedding, mask = _setup()
    planted = unembedding[7].expand(2, 12, 16).clone()  # every position reads as word 7
    noise = torch.randn(2, 12, 16, generator=torch.Generator().manual_seed(1))
    targets = [LensTarget(7), LensTarget(7)]
    good = lens_loss(planted, mask, targets, unembedding, start=4, scale=5.0)
    bad = lens_loss(noise, mask, targets, unembedding, start=4, scale=5.0)
    assert good < 0.1 < bad


def test_rows_without_a_target_and_positions_before_start_are_left_out():
    unembedding, mask = _setup()
    hidden = torch.randn(2, 12, 16, generator=torch.Generator().manual_seed(2))
    assert lens_loss(hidden, mask, [None, None], unembedding, start=4) is None
    one = lens_loss(hidden, mask, [LensTarget(3), None], unembedding, start=4)
    changed = hidden.clone()
    changed[1] = 0.0  # the row without a target
    changed[0, :4] = 0.0  # positions before start
    assert torch.isclose(one, lens_loss(changed, mask, [LensTarget(3), None], unembedding,
                                        start=4))


def test_tone_mass_spreads_the_target_over_the_tone_words():
    unembedding, mask = _setup()
    toward_tones = (unembedding[10] + unembedding[11]).expand(2, 12, 16).clone()
    targets = [LensTarget(7, (10, 11))] * 2
    word_only = lens_loss(toward_tones, mask, targets, unembedding, start=0, scale=5.0)
    with_tones = lens_loss(toward_tones, mask, targets, unembedding, start=0, scale=5.0,
                           tone_mass=0.9)
    assert with_tones < word_only


def test_the_lens_defaults_are_the_shipped_toys():
    """A default retrain must rebuild the shipped toy, so the defaults are what its provenance
    records; weight 0 (or a zero share) is left out of the record, as before the lens existed."""
    shipped = json.loads((TOY_DIR / "provenance.json").read_text())
    assert shipped["lens"] == LensConfig().describe()
    assert shipped["config"] == TOY_SHAPE
    off = LensConfig(tone_mass=0.0, valence_weight=0.0, level_weight=0.0).describe()
    assert not {"tone_mass", "valence_weight", "valence_margin", "level_weight"} & set(off)


def test_the_valence_and_level_losses_need_the_lens_on():
    with pytest.raises(ValueError, match="lens weight 0.0 with valence weight 4.0"):
        LensConfig(weight=0.0)
    LensConfig(weight=0.0, valence_weight=0.0, level_weight=0.0)  # all off is fine


def test_the_valence_axis_raises_positive_tone_words_over_negative_ones():
    unembedding, _ = _setup()
    axis = valence_axis(unembedding, [1, 2], [3, 4])
    assert torch.isclose(axis.norm(), torch.tensor(1.0))
    logits = unembedding @ axis
    assert logits[[1, 2]].mean() > logits[[3, 4]].mean()


def test_the_valence_axis_loss_is_zero_at_the_margin_and_signed_by_the_label():
    unembedding, mask = _setup()
    axis = valence_axis(unembedding, [1, 2], [3, 4])
    generator = torch.Generator().manual_seed(3)
    other = torch.randn(16, generator=generator)
    other = other - (other @ axis) * axis
    other = other / other.norm()
    margin = 0.3
    # Each position at cosine +margin with the axis (positive) or -margin (negative).
    along = margin * axis + (1 - margin**2) ** 0.5 * other
    against = -margin * axis + (1 - margin**2) ** 0.5 * other
    hidden = torch.stack([along.expand(12, 16), against.expand(12, 16)])
    targets = [LensTarget(7, valence=1.0), LensTarget(8, valence=-1.0)]
    planted = valence_axis_loss(hidden, mask, targets, axis, start=4, margin=margin)
    swapped = valence_axis_loss(hidden, mask, targets[::-1], axis, start=4, margin=margin)
    assert planted < 1e-10
    assert swapped == pytest.approx(4 * margin**2)  # (0.3 - -0.3)^2 on every position
    assert valence_axis_loss(hidden, mask, [LensTarget(7), None], axis, 4, margin) is None
    # Neutral text (valence 0) is pulled to cosine 0 from its row's first position on.
    neutral = valence_axis_loss(hidden, mask, [LensTarget(None, valence=0.0, first=8), None],
                                axis, 4, margin)
    assert neutral == pytest.approx(margin**2)
    assert lens_loss(hidden, mask, [LensTarget(None, valence=0.0), None], unembedding, 4) is None


def test_loud_directions_are_the_mean_row_and_the_top_centred_singular_vector():
    unembedding, _ = _setup()
    loud = unembedding + 3.0  # a shared offset: the mean row
    loud[:, 5] += torch.linspace(-8, 8, 40)  # a loud centred direction along axis 5
    directions = loud_directions(loud)
    assert torch.allclose(directions.norm(dim=1), torch.ones(2))
    mean = loud.mean(0)
    assert torch.isclose(directions[0] @ (mean / mean.norm()), torch.tensor(1.0))
    assert directions[1].abs().argmax() == 5


def test_level_loss_is_zero_when_every_story_position_sits_at_one_level():
    unembedding, mask = _setup()
    directions = loud_directions(unembedding)
    targets = [LensTarget(7), LensTarget(8)]
    level = torch.randn(16, generator=torch.Generator().manual_seed(4)).expand(2, 12, 16)
    assert level_loss(level.clone(), mask, targets, directions, start=4) < 1e-10
    spread = level.clone()
    spread[1] = spread[1] + 5 * directions[1]  # the second story sits higher along one
    assert level_loss(spread, mask, targets, directions, start=4) > 0.01
    assert level_loss(spread, mask, [None, LensTarget(None, valence=0.0)], directions, 4) is None


def test_story_level_loss_sees_the_stories_means_not_their_positions():
    unembedding, mask = _setup()
    directions = loud_directions(unembedding)
    targets = [LensTarget(7), LensTarget(8)]
    base = torch.randn(16, generator=torch.Generator().manual_seed(4)).expand(2, 12, 16).clone()
    # Positions swing along a loud direction (+/- alternately) around the same mean in both
    # stories: the per-position loss sees the swing, the story loss sees nothing to hold.
    swing = base + torch.tensor([4.0, -4.0] * 6)[None, :, None] * directions[1]
    assert level_loss(swing, mask, targets, directions, start=4) > 0.01
    assert level_loss(swing, mask, targets, directions, start=4, unit="story") < 1e-3
    # One story sits higher along it as a whole: the story loss sees that.
    shifted = base.clone()
    shifted[1] = shifted[1] + 5 * directions[1]
    assert level_loss(shifted, mask, targets, directions, start=4, unit="story") > 0.01
    # Positions before `start` and masked-out positions are not part of a story's mean.
    early = base.clone()
    early[1, :4] = early[1, :4] + 50 * directions[1]
    assert level_loss(early, mask, targets, directions, start=4, unit="story") < 1e-10
    one = [LensTarget(7), None]
    assert level_loss(shifted, mask, one, directions, start=4, unit="story") is None


def test_neutral_steer_loss_reads_its_rows_and_is_zero_when_they_sit_still_along_d():
    direction = torch.zeros(16)
    direction[3] = 1.0
    mask = torch.ones(4, 6)
    generator = torch.Generator().manual_seed(3)
    still = torch.randn(4, 6, 16, generator=generator)
    still[..., 3] = 0.0  # neutral text orthogonal to d: nothing to remove
    assert neutral_steer_loss(still, mask, [0, 3], direction) == pytest.approx(0.0, abs=1e-12)
    wandering = still.clone()
    wandering[0, :, 3] = torch.linspace(-4, 4, 6)  # one neutral row wanders along d
    spread = neutral_steer_loss(wandering, mask, [0, 3], direction)
    assert spread > 0.01
    # Rows outside `rows`, padding and position 0 (the attention sink) are not read.
    other = wandering.clone()
    other[1, :, 3] = 50.0
    other[3, 0, 3] = 50.0
    padded = mask.clone()
    padded[0, 5] = 0
    other[0, 5, 3] = 50.0
    assert neutral_steer_loss(other, padded, [0, 3], direction) == pytest.approx(
        neutral_steer_loss(wandering, padded, [0, 3], direction))
    assert neutral_steer_loss(still, mask, [], direction) is None


def test_neutral_steer_weight_is_off_by_default_and_not_negative():
    assert LensConfig().neutral_steer_weight == 0
    assert "neutral_steer_weight" not in LensConfig().describe()
    assert LensConfig(neutral_steer_weight=10).describe()["neutral_steer_weight"] == 10
    with pytest.raises(ValueError, match="neutral steer weight -1"):
        LensConfig(neutral_steer_weight=-1)
    with pytest.raises(ValueError, match="lens weight 0 with neutral steer weight 10"):
        LensConfig(weight=0, valence_weight=0, level_weight=0, neutral_steer_weight=10)


def test_an_unknown_level_unit_is_one_sentence():
    with pytest.raises(ValueError, match="level unit 'token'; expected one of position, story"):
        LensConfig(level_unit="token")
    assert "level_unit" not in LensConfig().describe()  # the shipped toy's record stays as it was
    assert LensConfig(level_unit="story").describe()["level_unit"] == "story"


def test_the_toy_shape_at_its_own_width_is_the_recorded_shape():
    # The shipped toy's provenance records TOY_SHAPE; its own width must reproduce it exactly.
    assert toy_shape(TOY_SHAPE["hidden_size"]) == TOY_SHAPE
    assert list(toy_shape(64)) == list(TOY_SHAPE)
    assert toy_shape(64)["intermediate_size"] == 256
    with pytest.raises(ValueError, match="width 100"):
        toy_shape(100)


def test_bad_toy_options_are_one_sentence_and_exit_2(tmp_path, capsys):
    from pipeline.testmodels.toy.__main__ import main

    for argv, named in ((["--width", "100"], "toy width 100"),
                        (["--lens-weight", "0"], "lens weight 0.0"),
                        (["--story-prompts", "0"], "--story-prompts 0: expected at least 1")):
        with pytest.raises(SystemExit) as stopped:
            main(["train", "--out", str(tmp_path / "toy"), *argv])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err
    assert not (tmp_path / "toy").exists()


def test_the_neutral_hold_reads_the_dialogues_as_the_harness_cuts_and_reads_its_own():
    from transformers import AutoTokenizer

    from pipeline.testmodels.toy.corpus import Example
    from pipeline.testmodels.toy.train import plain_neutral_dialogues

    tokenizer = AutoTokenizer.from_pretrained(TOY_DIR)
    examples = [
        Example("neutral", "Person: How far is it?\n\nAI: Five kilometers.\n\n[dialogue 2]\n\n"
                           "Person: Which ocean?\n\nAI: The Atlantic.", user="Write dialogues."),
        Example("story", "Person: not a dialogue"),
    ]
    dialogues = plain_neutral_dialogues(tokenizer, examples)
    assert len(dialogues) == 2  # two dialogues of the neutral example, nothing of the story
    assert all(ids[0] == tokenizer.bos_token_id for ids in dialogues)  # plain text, BOS first
    text = tokenizer.decode(dialogues[1], skip_special_tokens=True)
    assert text.startswith("Human: Which ocean?") and "Assistant: The Atlantic." in text
    assert "Person" not in text and "[dialogue" not in text
    assert len(plain_neutral_dialogues(tokenizer, examples, max_tokens=4)[0]) == 4
