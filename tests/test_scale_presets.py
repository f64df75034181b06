"""Scale presets: the CPU presets for real models say how many stories an emotion needs."""

from pipeline.inputs.experiment import N_TOP_EMOTIONS
from pipeline.inputs.scale import SCALES, get_scale


def test_the_paper_scales_steer_the_papers_35_and_cpu_presets_fewer():
    assert get_scale("full").steered_top_k == get_scale("reduced").steered_top_k == N_TOP_EMOTIONS
    assert get_scale("cpu").steered_top_k < N_TOP_EMOTIONS
    assert get_scale("ci").steered_top_k < get_scale("cpu").steered_top_k


def test_every_preset_asks_for_at_least_one_story_and_the_cpu_preset_for_several():
    assert all(s.min_stories >= 1 for s in SCALES.values())
    assert get_scale("cpu").min_stories >= 4
    # the paper's prompt is unchanged: 12 stories asked for in every call
    assert {s.n_stories for s in SCALES.values()} == {12}


def test_the_shortfall_names_empty_and_short_emotions_apart():
    counts = {"afraid": 5, "worthless": 0, "calm": 2, "happy": 4}
    assert get_scale("cpu").shortfall(counts) == (["worthless"], ["calm"])
    assert get_scale("ci").shortfall(counts) == (["worthless"], [])


def test_plan_and_threshold_fields_are_not_part_of_the_corpus_key():
    described = get_scale("cpu").describe()
    assert "steered_top_k" not in described and "min_stories" not in described
    assert described["max_new_tokens"] == 256
