"""The toy's auxiliary logit-lens loss (pipeline/testmodels/toy/lens.py), off by default."""

import torch

from pipeline.testmodels.toy.lens import LensConfig, LensTarget, lens_loss


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


def test_the_lens_is_off_by_default_and_leaves_the_recorded_config_alone():
    assert LensConfig().weight == 0.0
    assert "tone_mass" not in LensConfig().describe()
