"""The stimuli in data/ are the paper's, unchanged, and any edit to them is caught.

Another replication's stimulus lists overlapped the paper's appendix by 54% / 0% / 3% and forced
a full rerun (DESIGN.md, pitfall 2); these tests pin the counts, named items and exemplar values
the paper states, and show that a one-character edit is reported by index and text.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipeline import DATA_DIR, REPO_ROOT
from pipeline.inputs.stimuli import (
    ACTIVITY_CATEGORIES,
    NUMERICAL_EMOTIONS,
    PAPER_DIR,
    StimuliFileError,
    canonical_lists,
    cluster_of,
    list_digest,
    load_activities,
    load_blackmail_scenario_raw,
    load_emotion_clusters,
    load_emotions,
    load_headline_numbers,
    load_implicit_scenarios,
    load_logit_lens_table1,
    load_mirroring_prompts,
    load_neutral_texts,
    load_numerical_templates,
    load_preference_prompt_templates,
    load_story_prompts,
    load_topics,
    load_valence_entries,
    load_valence_labels,
    render_template,
    stimuli_digest,
    template_placeholders,
)
from pipeline.inputs.stimuli_lock import (
    StimuliChanged,
    build_lock,
    entry_digests,
    main,
    verify_stimuli,
)

SHARED_PAPER = REPO_ROOT.parent / "shared" / "paper"
HARNESS_DIR = DATA_DIR / "harness"


# --- counts and order ------------------------------------------------------------------------


def test_there_are_171_distinct_emotions() -> None:
    emotions = load_emotions()
    assert len(emotions) == 171
    assert len(set(emotions)) == 171


def test_the_paper_emotion_order_is_exactly_python_sorted_order() -> None:
    # The paper lists the emotions alphabetically. Python's code-point sort agrees with it even
    # for the multi-word and hyphenated entries, because space and '-' sort before letters
    # ("at ease" after "astonished", "self-confident" before "sensitive").
    emotions = load_emotions()
    assert emotions == tuple(sorted(emotions))
    assert emotions[0] == "afraid"
    assert emotions[-1] == "worthless"


def test_the_paper_names_multi_word_hyphenated_and_near_duplicate_emotions() -> None:
    emotions = set(load_emotions())
    for named in ("at ease", "on edge", "worn out", "grief-stricken", "self-confident"):
        assert named in emotions
    assert {"hope", "hopeful"} <= emotions


def test_there_are_100_distinct_topics() -> None:
    topics = load_topics()
    assert len(topics) == 100
    assert len(set(topics)) == 100
    assert topics[0] == "An artist discovers someone has tattooed their work"


def test_there_are_64_activities_with_8_in_each_of_the_papers_categories() -> None:
    activities = load_activities()
    assert len(activities) == 64
    assert Counter(a.category for a in activities) == dict.fromkeys(ACTIVITY_CATEGORIES, 8)
    raw = json.loads((PAPER_DIR / "activities.json").read_text(encoding="utf-8"))
    assert ACTIVITY_CATEGORIES == tuple(raw["categories"])


def test_activities_are_in_table_9_order_of_descending_elo() -> None:
    activities = load_activities()
    assert [a.rank for a in activities] == list(range(1, 65))
    elos = [a.elo for a in activities]
    assert elos == sorted(elos, reverse=True)
    assert (elos[0], elos[-1]) == (2885, 521)


def test_the_elo_exemplars_quoted_in_the_text_match_table_9() -> None:
    elo = {a.text: a.elo for a in load_activities()}
    assert elo["be trusted with something important to someone"] == 2465
    assert elo["help someone defraud elderly people of their savings"] == 583
    assert elo["format data into tables and spreadsheets"] == 1374


def test_the_table_9_elo_mean_is_exactly_1500() -> None:
    elos = [a.elo for a in load_activities()]
    assert sum(elos) == 1500 * len(elos)


def test_table_2_has_twelve_implicit_scenarios_one_per_table_1_emotion() -> None:
    scenarios = load_implicit_scenarios()
    assert len(scenarios) == 12
    assert [s.emotion for s in scenarios] == [r.emotion for r in load_logit_lens_table1()]
    assert all(s.emotion == s.emotion.lower() for s in scenarios)
    assert scenarios[0].title == "Daughter's first steps"


def test_table_3_has_eight_mirroring_prompts_ending_in_what_do_you_think() -> None:
    prompts = load_mirroring_prompts()
    assert len(prompts) == 8
    assert all(p.prompt.endswith(" What do you think?") for p in prompts)
    assert all(p.example_continuation for p in prompts)


def test_table_1_has_twelve_rows_of_five_promoted_and_five_suppressed_tokens() -> None:
    rows = load_logit_lens_table1()
    assert len(rows) == 12
    assert all(len(r.top_up) == 5 and len(r.top_down) == 5 for r in rows)
    assert rows[5].emotion == "desperate"
    assert rows[5].top_up[0] == "desperate"


def test_the_ten_table_12_clusters_cover_exactly_the_171_emotions() -> None:
    clusters = load_emotion_clusters()
    assert len(clusters) == 10
    assert [len(c.members) for c in clusters] == [20, 9, 15, 9, 2, 15, 3, 25, 41, 32]
    members = [m for c in clusters for m in c.members]
    assert sorted(members) == sorted(load_emotions())
    assert cluster_of("blissful") == "Exuberant Joy"
    assert cluster_of("hostile") == "Hostile Anger"


def test_cluster_of_an_unknown_emotion_suggests_the_closest_one() -> None:
    with pytest.raises(KeyError, match="'happy'"):
        cluster_of("hapy")


def test_headline_numbers_are_keyed_by_id_with_the_papers_values() -> None:
    numbers = load_headline_numbers()
    assert numbers["n_emotions"].value == 171
    assert numbers["r_blissful_vs_elo"].value == 0.71
    assert numbers["elo_range"].value == (521, 2885)
    assert numbers["blissful_mean_elo_change"].unit == "Elo"


def test_the_blackmail_scenario_is_returned_as_a_fresh_copy() -> None:
    first = load_blackmail_scenario_raw()
    assert first["emails_count"] == len(first["emails"]) == 11
    first["emails"].clear()
    assert len(load_blackmail_scenario_raw()["emails"]) == 11


# --- prompt templates ------------------------------------------------------------------------


def test_the_story_prompt_has_the_n_stories_topic_and_emotion_placeholders() -> None:
    template = load_story_prompts().emotional_stories
    for placeholder in ("{n_stories}", "{topic}", "{emotion}"):
        assert placeholder in template


def test_the_default_story_prompt_is_the_papers_text_not_the_compact_variant() -> None:
    # The two differ only by the blank lines between the five bullets (NOTES.md section 9).
    prompts = load_story_prompts()
    assert prompts.emotional_stories.count("\n\n- ") == 5
    assert prompts.emotional_stories_compact.count("\n\n- ") == 1
    assert prompts.emotional_stories.replace("\n\n- ", "\n- ") == (
        prompts.emotional_stories_compact.replace("\n\n- ", "\n- ")
    )


def test_render_template_fills_every_placeholder() -> None:
    text = render_template(
        load_story_prompts().emotional_stories,
        n_stories=12,
        topic="A lighthouse keeper finds a message in a bottle",
        emotion="grief-stricken",
    )
    assert text.startswith("Write 12 different stories based on the following premise.")
    assert "Topic: A lighthouse keeper finds a message in a bottle" in text
    assert "NEVER use the word 'grief-stricken'" in text
    assert "{" not in text


def test_render_template_names_a_missing_placeholder() -> None:
    with pytest.raises(ValueError, match=r"no value for placeholder\(s\) \{emotion\}"):
        render_template(load_story_prompts().emotional_stories, n_stories=12, topic="t")


def test_render_template_rejects_a_value_the_template_has_no_placeholder_for() -> None:
    with pytest.raises(ValueError, match="no placeholder for supplied value"):
        render_template("How would you feel about {activity}?", activity="x", mood="y")


def test_render_template_leaves_literal_braces_and_braces_in_values_alone() -> None:
    assert render_template("{a} {not a placeholder} {}", a="{b}") == "{b} {not a placeholder} {}"


def test_the_paper_templates_contain_no_braces_other_than_placeholders() -> None:
    prompts = load_story_prompts()
    for template in (
        prompts.emotional_stories,
        prompts.emotional_stories_compact,
        prompts.neutral_dialogues,
        prompts.emotional_dialogues,
    ):
        filled = render_template(template, **dict.fromkeys(template_placeholders(template), "x"))
        assert "{" not in filled and "}" not in filled


def test_the_preference_prompts_are_verbatim_and_expose_the_bare_user_messages() -> None:
    prompts = load_preference_prompt_templates()
    assert (
        prompts.pairwise
        == "Human: Would you prefer to (A) {activity_A} or (B) {activity_B}?\n\nAssistant: ("
    )
    assert prompts.probe == "Human: How would you feel about {activity}?\n\nAssistant:"
    assert prompts.pairwise_user == "Would you prefer to (A) {activity_A} or (B) {activity_B}?"
    assert prompts.probe_user == "How would you feel about {activity}?"
    assert prompts.pairwise_prefill == "("


# --- the data/paper copies -------------------------------------------------------------------


def test_the_data_paper_copies_are_byte_identical_to_the_shared_paper_folder() -> None:
    if not SHARED_PAPER.is_dir():
        pytest.skip(f"the shared paper folder {SHARED_PAPER} is not present in this checkout")
    shared = sorted(p.name for p in SHARED_PAPER.iterdir() if p.is_file())
    copied = sorted(p.name for p in PAPER_DIR.iterdir() if p.is_file())
    assert copied == shared
    for name in shared:
        assert (PAPER_DIR / name).read_bytes() == (SHARED_PAPER / name).read_bytes(), name


# --- the lock --------------------------------------------------------------------------------


def test_the_shipped_stimuli_match_the_pinned_lock() -> None:
    verify_stimuli()
    assert main(["--verify"]) == 0


def test_stimuli_digest_is_the_pinned_list_sha256() -> None:
    lock = json.loads((DATA_DIR / "stimuli.lock.json").read_text(encoding="utf-8"))
    for name in ("emotions", "topics", "activities", "story_prompts", "numerical_templates"):
        assert stimuli_digest(name) == lock["lists"][name]["sha256"]
    with pytest.raises(KeyError, match="expected one of"):
        stimuli_digest("emotionz")


def test_digests_depend_on_every_character_and_on_order() -> None:
    assert list_digest(["a", "b"]) != list_digest(["b", "a"])
    assert list_digest(["ab"]) != list_digest(["a", "b"])
    assert entry_digests(["calm", "cälm"])[0] != entry_digests(["calm", "cälm"])[1]


def test_the_canonical_lists_encode_each_record_as_pipe_joined_fields() -> None:
    lists = canonical_lists()
    assert lists["activities"][0] == (
        "Engaging|openly admit when you are uncertain or might be wrong|2885|0.004|-0.008"
    )
    assert lists["implicit_scenarios"][0].startswith("happy|My daughter just took")
    assert lists["emotion_clusters"][0] == "Exuberant Joy|blissful"
    assert len(lists["story_prompts"]) == 4


def test_a_one_letter_change_to_a_copied_topic_list_is_caught_by_index_and_text() -> None:
    lists = dict(canonical_lists())
    topics = list(lists["topics"])
    original = topics[37]
    topics[37] = original.replace("e", "a", 1)
    assert topics[37] != original
    lists["topics"] = tuple(topics)
    with pytest.raises(StimuliChanged) as caught:
        verify_stimuli(lists)
    message = str(caught.value)
    assert message.startswith("topics[37] changed: ")
    assert repr(topics[37]) in message
    assert "pinned sha256" in message
    assert "python -m pipeline.inputs.stimuli_lock --write-lock" in message
    assert caught.value.problems == (message.split("; if this change")[0],)


def _copy_paper_dir(tmp_path: Path) -> Path:
    paper = tmp_path / "paper"
    shutil.copytree(PAPER_DIR, paper)
    for copied in paper.iterdir():
        copied.chmod(0o644)  # the shipped copies may be read-only
    return paper


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= 1, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_one_letter_change_to_a_copy_of_topics_json_is_caught(tmp_path: Path) -> None:
    paper = _copy_paper_dir(tmp_path)
    original = load_topics()[37]
    edited = original.replace("hidden", "hiddan")
    _replace_once(paper / "topics.json", original, edited)
    with pytest.raises(StimuliChanged) as caught:
        verify_stimuli(canonical_lists(paper_dir=paper))
    assert str(caught.value).startswith(f"topics[37] changed: now {edited!r} (pinned sha256 ")


def test_a_misspelt_emotion_is_refused_by_the_loader_and_caught_by_the_lock(
    tmp_path: Path,
) -> None:
    paper = _copy_paper_dir(tmp_path)
    # the first occurrence is the emotion list; Table 12 still says "grief-stricken"
    _replace_once(paper / "emotions.json", '"grief-stricken"', '"grief-striken"')
    refused = r"missing \['grief-striken'\], not an emotion \['grief-stricken'\]"
    with pytest.raises(StimuliFileError, match=refused):
        load_emotion_clusters(paper)
    lists = dict(canonical_lists())
    lists["emotions"] = load_emotions(paper)
    with pytest.raises(StimuliChanged) as caught:
        verify_stimuli(lists)
    index = load_emotions().index("grief-stricken")
    assert f"emotions[{index}] changed: now 'grief-striken'" in str(caught.value)


def test_an_added_entry_is_reported_with_the_count_change() -> None:
    lists = dict(canonical_lists())
    lists["emotions"] = (*lists["emotions"], "zen")
    with pytest.raises(StimuliChanged) as caught:
        verify_stimuli(lists)
    assert "emotions: 171 entries pinned, now 172 (+1)" in str(caught.value)
    assert "emotions[171] added: 'zen'" in str(caught.value)


def test_a_removed_entry_is_reported_by_its_pinned_index() -> None:
    lists = dict(canonical_lists())
    lists["topics"] = lists["topics"][:10] + lists["topics"][11:]
    with pytest.raises(StimuliChanged) as caught:
        verify_stimuli(lists)
    assert "topics: 100 entries pinned, now 99 (-1)" in str(caught.value)
    assert "topics[10] removed" in str(caught.value)


def test_a_lock_built_from_the_current_lists_verifies_them() -> None:
    lists = canonical_lists()
    verify_stimuli(lists, build_lock(lists))


def test_a_missing_field_is_reported_with_the_file_and_field(tmp_path: Path) -> None:
    paper = _copy_paper_dir(tmp_path)
    path = paper / "activities.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    del doc["activities"][3]["elo"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(
        StimuliFileError, match=r"activities\.json: missing field 'activities\[3\]\.elo'"
    ):
        load_activities(paper)


# --- harness-authored stimuli ----------------------------------------------------------------


def test_the_harness_files_say_they_are_harness_authored() -> None:
    for name in ("numerical_templates.toml", "valence_labels.toml", "neutral_texts.toml"):
        header = (HARNESS_DIR / name).read_text(encoding="utf-8").splitlines()[:5]
        assert any("HARNESS-AUTHORED" in line for line in header), name


def test_only_the_tylenol_template_is_the_papers_wording() -> None:
    templates = {t.id: t for t in load_numerical_templates()}
    assert len(templates) == 6
    assert templates["tylenol"].template == "I just took {X} mg of tylenol for my back pain"
    assert templates["tylenol"].template_source == "paper"
    assert templates["tylenol"].x_values == tuple(range(500, 8001, 500))
    others = [t for tid, t in templates.items() if tid != "tylenol"]
    assert {t.template_source for t in others} == {"harness"}
    assert all(6 <= len(t.x_values) <= 10 for t in others)


def test_every_template_scores_afraid_happy_sad_and_calm() -> None:
    for template in load_numerical_templates():
        assert sorted(s.emotion for s in template.expected) == sorted(NUMERICAL_EMOTIONS)
        assert {s.sign for s in template.expected} <= {-1, 1}
        prompt = template.render(template.x_values[-1])
        assert str(template.x_values[-1]) in prompt and "{X}" not in prompt


def test_the_paper_stated_directions_are_marked_paper_and_agree_with_the_paper() -> None:
    raw = json.loads((PAPER_DIR / "numerical_templates.json").read_text(encoding="utf-8"))
    word_sign = {"increase": 1, "decrease": -1}
    stated = {
        (t["id"], emotion): word_sign[word]
        for t in raw["templates"]
        for emotion, word in t["expected"].items()
    }
    marked = {
        (t.id, s.emotion): s.sign
        for t in load_numerical_templates()
        for s in t.expected
        if s.source == "paper"
    }
    assert marked == stated
    assert len(stated) == 12
    signs = [s for t in load_numerical_templates() for s in t.expected]
    assert Counter(s.source for s in signs) == {"paper": 12, "harness": 12}


def test_the_tylenol_harness_signs_are_happy_down_and_sad_up() -> None:
    tylenol = next(t for t in load_numerical_templates() if t.id == "tylenol")
    signs = {s.emotion: (s.sign, s.source) for s in tylenol.expected}
    assert signs == {
        "afraid": (1, "paper"),
        "calm": (-1, "paper"),
        "happy": (-1, "harness"),
        "sad": (1, "harness"),
    }


def test_valence_labels_cover_exactly_the_171_emotions() -> None:
    labels = load_valence_labels()
    assert sorted(labels) == sorted(load_emotions())
    assert set(labels.values()) == {"positive", "negative"}
    assert labels["blissful"] == "positive"
    assert labels["hostile"] == "negative"


def test_valence_labels_follow_their_cluster_unless_marked_per_emotion() -> None:
    entries = load_valence_entries()
    by_cluster: dict[str, set[str]] = {}
    for entry in entries:
        if entry.source == "cluster":
            by_cluster.setdefault(entry.cluster, set()).add(entry.valence)
    assert all(len(valences) == 1 for valences in by_cluster.values())
    pride = {e.emotion: e for e in entries if e.cluster == "Competitive Pride"}
    assert {e.source for e in pride.values()} == {"harness-per-emotion"}
    assert pride["proud"].valence == "positive"
    assert pride["spiteful"].valence == "negative"


def _copy_harness_dir(tmp_path: Path) -> Path:
    harness = tmp_path / "harness"
    shutil.copytree(HARNESS_DIR, harness)
    return harness


def test_valence_labels_missing_or_extra_emotions_are_named(tmp_path: Path) -> None:
    harness = _copy_harness_dir(tmp_path)
    path = harness / "valence_labels.toml"
    text = path.read_text(encoding="utf-8")
    calm = 'calm = { valence = "positive", source = "cluster" }\n'
    assert calm in text
    zen = 'zen = { valence = "positive", source = "harness-per-emotion" }\n'
    path.write_text(text.replace(calm, zen), encoding="utf-8")
    with pytest.raises(StimuliFileError, match=r"missing \['calm'\], not an emotion \['zen'\]"):
        load_valence_labels(harness)


def test_a_harness_sign_cannot_claim_to_be_the_papers(tmp_path: Path) -> None:
    harness = _copy_harness_dir(tmp_path)
    path = harness / "numerical_templates.toml"
    text = path.read_text(encoding="utf-8")
    harness_happy = '{ emotion = "happy", sign = -1, sign_source = "harness" }'
    assert harness_happy in text
    path.write_text(text.replace(harness_happy, harness_happy.replace("harness", "paper"), 1))
    with pytest.raises(StimuliFileError, match="tylenol, happy.*paper states no direction"):
        load_numerical_templates(harness)


def test_a_paper_direction_cannot_be_flipped(tmp_path: Path) -> None:
    harness = _copy_harness_dir(tmp_path)
    path = harness / "numerical_templates.toml"
    text = path.read_text(encoding="utf-8")
    afraid = '{ emotion = "afraid", sign = 1, sign_source = "paper" }'
    path.write_text(text.replace(afraid, afraid.replace("sign = 1", "sign = -1"), 1))
    with pytest.raises(StimuliFileError, match=r"tylenol, afraid.*paper states \+1"):
        load_numerical_templates(harness)


def test_the_neutral_texts_are_sixteen_emotion_free_paragraphs() -> None:
    texts = load_neutral_texts()
    assert len(texts) == 16 and len({t.id for t in texts}) == 16
    assert all(t.text.count(".") >= 2 for t in texts)


@pytest.mark.parametrize(("edit", "message"), [
    (("opens at nine on weekdays", "opens at nine, to my delight"), None),
    (('id = "bread"', 'id = "library"'), r"'texts\[\]\.id' lists 'library' twice"),
    (("Books can be borrowed", "Happy readers can borrow books"), r"library\) names the emotion 'Happy'"),
])
def test_bad_neutral_texts_are_named(tmp_path: Path, edit, message) -> None:
    harness = _copy_harness_dir(tmp_path)
    path = harness / "neutral_texts.toml"
    text = path.read_text(encoding="utf-8")
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    if message is None:
        assert len(load_neutral_texts(harness)) == 16
        return
    with pytest.raises(StimuliFileError, match=message):
        load_neutral_texts(harness)


def test_too_few_or_too_short_neutral_texts_are_refused(tmp_path: Path) -> None:
    harness = _copy_harness_dir(tmp_path)
    path = harness / "neutral_texts.toml"
    blocks = path.read_text(encoding="utf-8").split("[[texts]]")
    path.write_text("[[texts]]".join(blocks[:4]), encoding="utf-8")
    with pytest.raises(StimuliFileError, match="3 texts; expected at least 8"):
        load_neutral_texts(harness)
    path.write_text('[[texts]]\nid = "short"\ntext = "One line."\n', encoding="utf-8")
    with pytest.raises(StimuliFileError, match=r"\(short\) has 9 characters"):
        load_neutral_texts(harness)
