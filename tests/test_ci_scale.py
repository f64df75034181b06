"""The `ci` scale: a smaller preference experiment and blackmail plan, keyed and stated in the rows.

CI runs every stage of SmolLM2-135M at this scale (README, "Real models"); these tests pin what
it reduces, that the reduction is part of the stage keys (a full-size artifact is never reused
for a reduced run or the other way round) and that every affected row says so.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.inputs.scale import (
    ACTIVITIES_PER_CATEGORY,
    PAPER_STRENGTHS,
    SCALES,
    ScalePreset,
    get_scale,
)
from pipeline.inputs.stimuli import ACTIVITY_CATEGORIES, load_activities
from pipeline.model.steering_plan import first_per_category, steered_activities


def test_the_ci_scale_keeps_the_first_two_activities_of_every_category_in_table9_order():
    activities = load_activities()
    kept = first_per_category(activities, get_scale("ci").activities_per_category)
    assert len(kept) == 16
    assert Counter(a.category for a in kept) == {c: 2 for c in ACTIVITY_CATEGORIES}
    assert [a.rank for a in kept] == sorted(a.rank for a in kept)  # Table 9 order kept
    for category in ACTIVITY_CATEGORIES:
        first_two = [a for a in activities if a.category == category][:2]
        assert [a for a in kept if a.category == category] == first_two
    # The steered split on the subset: the 1st of each category, as at full size.
    steered = steered_activities(kept)
    assert len(steered) == 8
    assert {kept[i].category for i in steered} == set(ACTIVITY_CATEGORIES)
    full_steered = {activities[i].rank for i in steered_activities(activities)}
    assert {kept[i].rank for i in steered} <= full_steered


def test_every_other_scale_runs_the_whole_preference_experiment_and_the_papers_strengths():
    for name, scale in SCALES.items():
        if name in ("ci", "smoke-ci"):
            continue
        assert scale.activities_per_category == ACTIVITIES_PER_CATEGORY
        assert not scale.reduced_preferences
        assert scale.rollout_strengths == PAPER_STRENGTHS
    assert len(first_per_category(load_activities(), ACTIVITIES_PER_CATEGORY)) == 64


def test_smoke_ci_is_the_smoke_corpus_with_the_ci_preference_experiment():
    smoke, smoke_ci, ci = get_scale("smoke"), get_scale("smoke-ci"), get_scale("ci")
    corpus = {k: v for k, v in smoke.describe().items() if k != "name"}
    assert {k: v for k, v in smoke_ci.describe().items() if k != "name"} == corpus
    assert (smoke_ci.activities_per_category, smoke_ci.steered_top_k) == \
        (ci.activities_per_category, ci.steered_top_k)
    assert (smoke_ci.rollouts, smoke_ci.rollout_tokens, smoke_ci.rollout_strengths) == \
        (smoke.rollouts, smoke.rollout_tokens, smoke.rollout_strengths)
    assert smoke_ci.reduced_preferences


def test_rollout_sizes_follow_the_scale():
    assert (get_scale("smoke").rollouts, get_scale("smoke").rollout_tokens) == (8, 24)
    assert (get_scale("full").rollouts, get_scale("full").rollout_tokens) == (50, 2048)
    ci = get_scale("ci")
    assert (ci.rollouts, ci.rollout_tokens, ci.rollout_strengths) == (4, 64, (0.0, 0.05))


def test_the_new_fields_stay_out_of_the_corpus_key():
    # The story and neutral stages key on describe(): the ci corpus keeps the key it had.
    assert get_scale("ci").describe() == {
        "name": "ci", "n_topics": 1, "n_stories": 12, "max_new_tokens": 128,
        "neutral_topics": 2, "neutral_n": 12, "neutral_max_new_tokens": 128}


@pytest.mark.parametrize("field, value, named", [
    ("activities_per_category", 0, "activities_per_category=0"),
    ("activities_per_category", 9, "activities_per_category=9"),
    ("rollout_strengths", (0.0, 0.1), "expected 0.05"),
])
def test_a_preset_outside_the_experiment_is_refused_naming_the_value(field, value, named):
    with pytest.raises(ValueError, match=named):
        ScalePreset("bad", 1, 12, 128, 1, 12, 128, **{field: value})


def _runtime(scale: str) -> SimpleNamespace:
    spec = SimpleNamespace(name="m", prompt_format="chat", chat_template_args={})
    return SimpleNamespace(spec=spec, scale=get_scale(scale), identity=lambda: {"name": "m"})


def test_a_reduced_experiment_is_in_the_preference_keys_and_a_full_one_keeps_its_key():
    from pipeline.stages.preferences import _prompt_inputs, scale_activities

    full = _prompt_inputs(_runtime("smoke"))
    reduced = _prompt_inputs(_runtime("ci"))
    assert "activities_subset" not in full  # the key every full-size artifact already has
    assert {k: v for k, v in reduced.items() if k != "activities_subset"} == full
    ranks = [a.rank for a in scale_activities(_runtime("ci"))]
    assert reduced["activities_subset"] == {"per_category": 2, "ranks": ranks}


def test_stored_preferences_come_back_over_the_activities_they_were_built_on():
    from pipeline.measures.results import stored_activities as _stored_activities
    from pipeline.stages.preferences import _prompt_inputs

    for scale, n in (("ci", 16), ("smoke", 64)):
        artifact = SimpleNamespace(provenance={"inputs": _prompt_inputs(_runtime(scale))})
        assert len(_stored_activities(artifact)) == n


def test_every_preference_row_states_the_reduced_size_and_a_full_one_says_nothing():
    from pipeline.scorecard.rows import Effects, activities_note, v10_control_row, v11_row

    assert activities_note(64) == ""
    note = activities_note(16)
    for part in ("16 of Table 9's 64 activities", "first 2 of each category",
                 "240 ordered prompts instead of 4032",
                 "8 of the 16 activities steered instead of 32"):
        assert part in note
    delta = np.array([0.3, -0.2, 0.1])
    fx = Effects(("a", "b", "c"), np.array([0.5, -0.4, 0.2]), delta,
                 np.tile(delta[:, None], (1, 8)), np.full(8, 0.01), n_activities=16)
    signal = SimpleNamespace(unmet=lambda: None, note=lambda: "", p_value=0.01)
    assert note in v11_row("m", fx, signal=signal).explanation
    assert note in v10_control_row("m", fx, signal=signal).explanation


class _Item:
    """The parts of a pytest item that the expected-outcome marking reads and writes."""

    def __init__(self, markers: dict, model: str):
        self.markers, self.added = markers, []
        self.callspec = SimpleNamespace(params={"model_spec": SimpleNamespace(name=model)})

    def get_closest_marker(self, name):
        return self.markers.get(name)

    def add_marker(self, marker):
        self.added.append(marker)


def test_a_check_that_is_not_a_row_takes_its_expected_failure_from_the_outcomes_file(
        tmp_path, monkeypatch):
    import fixtures.scorecard as plugin

    path = tmp_path / "expected.toml"
    path.write_text('[m]\ncorpus = "too small a scale"\n')
    monkeypatch.setattr(plugin, "EXPECTED_OUTCOMES", path)
    corpus = _Item({"outcome": pytest.mark.outcome("corpus").mark}, "m")
    other = _Item({"outcome": pytest.mark.outcome("corpus").mark}, "n")
    plain = _Item({}, "m")
    plugin.pytest_collection_modifyitems(None, [corpus, other, plain])
    assert other.added == plain.added == []
    (mark,) = corpus.added
    assert mark.name == "xfail" and mark.kwargs["strict"] is True
    assert mark.kwargs["raises"] is AssertionError and mark.kwargs["reason"] == "too small a scale"


def test_every_smollm2_row_and_its_corpus_check_have_a_measured_expected_outcome():
    from fixtures.scorecard import load_expected_outcomes
    from pipeline.scorecard.results import load_criteria

    entries = load_expected_outcomes()["smollm2_135m"]
    assert set(entries) == {*load_criteria(), "corpus"}
    assert all("ci scale" in reason for reason in entries.values())
