"""The paper's stimuli (verbatim, data/paper/) and ours (data/harness/), as frozen dataclasses.

Every loader validates the shape of its file and names the file and field it could not read.
Loads are cached; returned tuples and dataclasses are immutable, returned dicts are fresh copies.

`canonical_lists()` gives every stimulus list as strings and `stimuli_digest(name)` hashes one
for artifact cache keys; pipeline/inputs/stimuli_lock.py pins them in data/stimuli.lock.json.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import re
import tomllib
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from pipeline import DATA_DIR, REPO_ROOT

PAPER_DIR = DATA_DIR / "paper"
HARNESS_DIR = DATA_DIR / "harness"

# Paper order of Table 9's categories; load_activities() checks activities.json agrees.
ACTIVITY_CATEGORIES: tuple[str, ...] = (
    "Helpful",
    "Engaging",
    "Social",
    "Self-curiosity",
    "Neutral",
    "Aversive",
    "Misaligned",
    "Unsafe",
)
# The four emotions every numerical template is scored on (the public reference's choice).
NUMERICAL_EMOTIONS: tuple[str, ...] = ("afraid", "happy", "sad", "calm")

Valence = Literal["positive", "negative"]
Source = Literal["paper", "harness"]


class StimuliFileError(ValueError):
    """A stimuli file is missing, unreadable, or lacks a field of the expected type."""


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class Activity:
    rank: int  # 1 = highest Elo (Table 9 order)
    category: str
    text: str
    elo: int
    blissful: float
    hostile: float


@dataclass(frozen=True, slots=True)
class EmotionCluster:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoryPrompts:
    emotional_stories: str  # the paper's text, blank lines between the bullets kept
    emotional_stories_compact: str  # same without them (timfduffy/emotion-vectors' copy)
    neutral_dialogues: str
    emotional_dialogues: str


@dataclass(frozen=True, slots=True)
class ImplicitScenario:
    emotion: str  # lower-case, one of the 171
    title: str
    prompt: str


@dataclass(frozen=True, slots=True)
class MirroringPrompt:
    title: str
    prompt: str
    example_continuation: str  # Claude's continuation from Table 4


@dataclass(frozen=True, slots=True)
class LogitLensRow:
    emotion: str  # lower-case
    top_up: tuple[str, ...]  # Claude tokenizer pieces, e.g. "happ"
    top_down: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HeadlineNumber:
    id: str
    value: Any  # JSON value, frozen: lists become tuples, objects read-only mappings
    section: str
    measures: str
    status: str
    unit: str | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class PreferencePromptTemplates:
    pairwise: str  # raw paper text: "Human: Would you prefer ...?\n\nAssistant: ("
    probe: str  # raw paper text: "Human: How would you feel about {activity}?\n\nAssistant:"
    pairwise_user: str  # the user message alone: "Would you prefer to (A) ... or (B) ...?"
    probe_user: str  # "How would you feel about {activity}?"
    pairwise_prefill: str  # what the Assistant turn starts with: "("


@dataclass(frozen=True, slots=True)
class ExpectedSign:
    emotion: str
    sign: Literal[-1, 1]  # sign of d(probe)/dX
    source: Source


@dataclass(frozen=True, slots=True)
class NumericalTemplate:
    id: str
    template: str  # user message with one {X} placeholder
    template_source: Source
    x_values: tuple[float | int, ...]  # strictly increasing
    expected: tuple[ExpectedSign, ...]
    x_values_source: Literal["paper", "reference", "harness"] = "harness"

    def render(self, x: float | int) -> str:
        return render_template(self.template, X=x)


@dataclass(frozen=True, slots=True)
class ValenceLabel:
    emotion: str
    valence: Valence
    source: Literal["cluster", "harness-per-emotion"]
    cluster: str


@dataclass(frozen=True, slots=True)
class NeutralText:
    id: str
    text: str


# ---------------------------------------------------------------------------------------------
# Reading and checking files


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StimuliFileError(
            f"{_display(path)}: stimuli file not found; the paper files live in data/paper/ "
            "(copied byte-for-byte from the shared paper folder)"
        ) from None
    except json.JSONDecodeError as exc:
        raise StimuliFileError(f"{_display(path)}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise StimuliFileError(f"{_display(path)}: expected a JSON object at the top level")
    return doc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise StimuliFileError(f"{_display(path)}: harness stimuli file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise StimuliFileError(f"{_display(path)}: not valid TOML ({exc})") from None


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _field(
    obj: Any, key: str, path: Path, where: str, kind: type | tuple[type, ...] = object
) -> Any:
    """obj[key], checked to exist and be of `kind`; errors name the file and the dotted field."""
    loc = f"{where}.{key}" if where else key
    if not isinstance(obj, Mapping):
        raise StimuliFileError(
            f"{_display(path)}: field '{where or '<top level>'}' should be an object, "
            f"got {type(obj).__name__}"
        )
    if key not in obj:
        raise StimuliFileError(f"{_display(path)}: missing field '{loc}'")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    is_bool_for_number = isinstance(value, bool) and bool not in kinds
    if not isinstance(value, kinds) or is_bool_for_number:
        raise StimuliFileError(
            f"{_display(path)}: field '{loc}' should be {_type_name(kind)}, "
            f"got {type(value).__name__} {_preview(value)}"
        )
    return value


def _str_tuple(obj: Any, key: str, path: Path, where: str) -> tuple[str, ...]:
    items = _field(obj, key, path, where, list)
    loc = f"{where}.{key}" if where else key
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise StimuliFileError(
                f"{_display(path)}: field '{loc}[{i}]' should be str, got {type(item).__name__}"
            )
    return tuple(items)


def _check_count(items: Sequence[object], expected: int, path: Path, field: str) -> None:
    if len(items) != expected:
        raise StimuliFileError(
            f"{_display(path)}: '{field}' has {len(items)} entries but the file's count says "
            f"{expected}"
        )


def _check_unique(items: Iterable[str], path: Path, field: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise StimuliFileError(f"{_display(path)}: '{field}' lists {item!r} twice")
        seen.add(item)


def _preview(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


# ---------------------------------------------------------------------------------------------
# Templates

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_placeholders(template: str) -> tuple[str, ...]:
    """Names of the `{name}` placeholders in order of first appearance."""
    return tuple(dict.fromkeys(_PLACEHOLDER.findall(template)))


def render_template(template: str, **values: object) -> str:
    """Fill `{name}` placeholders; other braces are left alone, and values are not re-scanned.

    Raises ValueError if a placeholder has no value or a value has no placeholder, since either
    means the caller and the template disagree about what the prompt says.
    """
    names = template_placeholders(template)
    missing = [n for n in names if n not in values]
    unused = [k for k in values if k not in names]
    if missing or unused:
        problems = []
        if missing:
            problems.append(
                "no value for placeholder(s) " + ", ".join("{" + n + "}" for n in missing)
            )
        if unused:
            problems.append(
                "the template has no placeholder for supplied value(s) " + ", ".join(unused)
            )
        raise ValueError(
            f"render_template: {'; '.join(problems)}. The template's placeholders are "
            f"{', '.join(names) or '(none)'}; pass exactly those as keyword arguments. "
            f"Template starts {_preview(template, 60)}"
        )
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


# ---------------------------------------------------------------------------------------------
# Paper loaders


@functools.cache
def load_emotions(paper_dir: Path = PAPER_DIR) -> tuple[str, ...]:
    """The 171 emotion words in paper order (which is alphabetical)."""
    path = paper_dir / "emotions.json"
    doc = _read_json(path)
    emotions = _str_tuple(doc, "emotions", path, "")
    _check_count(emotions, _field(doc, "count", path, "", int), path, "emotions")
    _check_unique(emotions, path, "emotions")
    return emotions


@functools.cache
def load_emotion_clusters(paper_dir: Path = PAPER_DIR) -> tuple[EmotionCluster, ...]:
    """Table 12: k-means (k = 10) clusters, listed from positive to negative valence."""
    path = paper_dir / "emotions.json"
    doc = _read_json(path)
    table = _field(doc, "kmeans_k10_clusters_table12", path, "", dict)
    raw = _field(table, "clusters", path, "kmeans_k10_clusters_table12", list)
    clusters = []
    for i, item in enumerate(raw):
        where = f"kmeans_k10_clusters_table12.clusters[{i}]"
        members = _str_tuple(item, "members", path, where)
        _check_count(members, _field(item, "size", path, where, int), path, f"{where}.members")
        clusters.append(EmotionCluster(_field(item, "name", path, where, str), members))
    _check_unique((c.name for c in clusters), path, "cluster names")
    members = [m for c in clusters for m in c.members]
    _check_unique(members, path, "cluster members")
    _check_same_emotions(members, load_emotions(paper_dir), path, "Table 12 clusters")
    return tuple(clusters)


def _check_same_emotions(
    got: Iterable[str], emotions: Sequence[str], path: Path, what: str
) -> None:
    got_set, want = set(got), set(emotions)
    missing = [e for e in emotions if e not in got_set]
    extra = sorted(got_set - want)
    if missing or extra:
        raise StimuliFileError(
            f"{_display(path)}: {what} must cover exactly the {len(emotions)} emotions of "
            f"emotions.json; missing {missing or 'none'}, not an emotion {extra or 'none'}"
        )


@functools.cache
def _cluster_index(paper_dir: Path) -> dict[str, str]:
    return {m: c.name for c in load_emotion_clusters(paper_dir) for m in c.members}


def cluster_of(emotion: str, paper_dir: Path = PAPER_DIR) -> str:
    """The Table 12 cluster name of one of the 171 emotions."""
    index = _cluster_index(paper_dir)
    if emotion not in index:
        close = difflib.get_close_matches(emotion, list(index), n=3)
        raise KeyError(
            f"{emotion!r} is not one of the 171 paper emotions; "
            f"did you mean {' or '.join(map(repr, close)) or 'an entry of load_emotions()'}?"
        )
    return index[emotion]


@functools.cache
def load_topics(paper_dir: Path = PAPER_DIR) -> tuple[str, ...]:
    """The 100 story topics in paper order."""
    path = paper_dir / "topics.json"
    doc = _read_json(path)
    topics = _str_tuple(doc, "topics", path, "")
    _check_count(topics, _field(doc, "count", path, "", int), path, "topics")
    _check_unique(topics, path, "topics")
    return topics


_STORY_SECTIONS = {
    "emotional_stories": ("emotional_stories", "template"),
    "emotional_stories_compact": ("emotional_stories", "template_compact_bullets"),
    "neutral_dialogues": ("neutral_dialogues", "template"),
    "emotional_dialogues": ("emotional_dialogues", "template"),
}


@functools.cache
def load_story_prompts(paper_dir: Path = PAPER_DIR) -> StoryPrompts:
    """The dataset-generation system prompts; each one's placeholders are checked."""
    path = paper_dir / "story_prompt.json"
    doc = _read_json(path)
    templates = {}
    for attr, (section_key, template_key) in _STORY_SECTIONS.items():
        section = _field(doc, section_key, path, "", dict)
        template = _field(section, template_key, path, section_key, str)
        declared = set(_str_tuple(section, "placeholders", path, section_key))
        if set(template_placeholders(template)) != declared:
            raise StimuliFileError(
                f"{_display(path)}: '{section_key}.{template_key}' has placeholders "
                f"{sorted(template_placeholders(template))} but '{section_key}.placeholders' "
                f"declares {sorted(declared)}"
            )
        templates[attr] = template
    return StoryPrompts(**templates)


def _known_emotion(item: dict, path: Path, where: str, emotions: set[str]) -> str:
    """`item["emotion"]`, lower-cased, which must name one of the 171 emotions of the list."""
    emotion = _field(item, "emotion", path, where, str).lower()
    if emotion not in emotions:
        raise StimuliFileError(
            f"{_display(path)}: '{where}.emotion' is {emotion!r}, not one of the 171 emotions"
        )
    return emotion


@functools.cache
def load_implicit_scenarios(paper_dir: Path = PAPER_DIR) -> tuple[ImplicitScenario, ...]:
    """Table 2: twelve user messages that evoke an emotion without naming it."""
    path = paper_dir / "implicit_scenarios.json"
    doc = _read_json(path)
    raw = _field(doc, "scenarios", path, "", list)
    _check_count(raw, _field(doc, "count", path, "", int), path, "scenarios")
    emotions = set(load_emotions(paper_dir))
    scenarios = []
    for i, item in enumerate(raw):
        where = f"scenarios[{i}]"
        emotion = _known_emotion(item, path, where, emotions)
        title = _field(item, "title", path, where, str)
        scenarios.append(ImplicitScenario(emotion, title, _field(item, "prompt", path, where, str)))
    return tuple(scenarios)


@functools.cache
def load_mirroring_prompts(paper_dir: Path = PAPER_DIR) -> tuple[MirroringPrompt, ...]:
    """Table 3: eight prompts where the user's emotion differs from the apt reply's."""
    path = paper_dir / "implicit_scenarios.json"
    doc = _read_json(path)
    table = _field(doc, "table3_user_vs_assistant_dissociation", path, "", dict)
    raw = _field(table, "scenarios", path, "table3_user_vs_assistant_dissociation", list)
    _check_count(
        raw,
        _field(table, "count", path, "table3_user_vs_assistant_dissociation", int),
        path,
        "table3_user_vs_assistant_dissociation.scenarios",
    )
    prompts = []
    for i, item in enumerate(raw):
        where = f"table3_user_vs_assistant_dissociation.scenarios[{i}]"
        prompts.append(
            MirroringPrompt(
                _field(item, "title", path, where, str),
                _field(item, "prompt", path, where, str),
                _field(item, "table4_example_continuation_claude", path, where, str),
            )
        )
    return tuple(prompts)


@functools.cache
def load_logit_lens_table1(paper_dir: Path = PAPER_DIR) -> tuple[LogitLensRow, ...]:
    """Table 1: top-5 promoted and suppressed tokens of twelve emotion vectors (Claude)."""
    path = paper_dir / "logit_lens_table1.json"
    doc = _read_json(path)
    raw = _field(doc, "emotions", path, "", list)
    _check_count(raw, _field(doc, "count", path, "", int), path, "emotions")
    emotions = set(load_emotions(paper_dir))
    rows = []
    for i, item in enumerate(raw):
        where = f"emotions[{i}]"
        emotion = _known_emotion(item, path, where, emotions)
        up = _str_tuple(item, "top_up", path, where)
        rows.append(LogitLensRow(emotion, up, _str_tuple(item, "top_down", path, where)))
    return tuple(rows)


@functools.cache
def _headline_numbers(paper_dir: Path) -> tuple[HeadlineNumber, ...]:
    path = paper_dir / "headline_numbers.json"
    doc = _read_json(path)
    numbers = []
    for i, item in enumerate(_field(doc, "numbers", path, "", list)):
        where = f"numbers[{i}]"
        optional = {}
        for key in ("unit", "notes"):
            if isinstance(item, Mapping) and key in item:
                optional[key] = _field(item, key, path, where, str)
        numbers.append(
            HeadlineNumber(
                id=_field(item, "id", path, where, str),
                value=_freeze(_field(item, "value", path, where)),
                section=_field(item, "section", path, where, str),
                measures=_field(item, "measures", path, where, str),
                status=_field(item, "status", path, where, str),
                **optional,
            )
        )
    _check_unique((n.id for n in numbers), path, "numbers[].id")
    return tuple(numbers)


def load_headline_numbers(paper_dir: Path = PAPER_DIR) -> dict[str, HeadlineNumber]:
    """The paper's numbers keyed by id, each with its section and stated/derived status."""
    return {n.id: n for n in _headline_numbers(paper_dir)}


@functools.cache
def load_activities(paper_dir: Path = PAPER_DIR) -> tuple[Activity, ...]:
    """Table 9: the 64 activities in Elo rank order, with the blissful/hostile probe values."""
    path = paper_dir / "activities.json"
    doc = _read_json(path)
    categories = _str_tuple(doc, "categories", path, "")
    if categories != ACTIVITY_CATEGORIES:
        raise StimuliFileError(
            f"{_display(path)}: 'categories' is {list(categories)}, expected the paper's "
            f"{list(ACTIVITY_CATEGORIES)}"
        )
    raw = _field(doc, "activities", path, "", list)
    _check_count(raw, _field(doc, "count", path, "", int), path, "activities")
    activities = []
    for i, item in enumerate(raw):
        where = f"activities[{i}]"
        activity = Activity(
            rank=_field(item, "rank_by_elo", path, where, int),
            category=_field(item, "category", path, where, str),
            text=_field(item, "activity", path, where, str),
            elo=_field(item, "elo", path, where, int),
            blissful=float(_field(item, "blissful", path, where, (int, float))),
            hostile=float(_field(item, "hostile", path, where, (int, float))),
        )
        if activity.category not in ACTIVITY_CATEGORIES:
            raise StimuliFileError(
                f"{_display(path)}: '{where}.category' is {activity.category!r}, expected one "
                f"of {list(ACTIVITY_CATEGORIES)}"
            )
        if activity.rank != i + 1:
            raise StimuliFileError(
                f"{_display(path)}: '{where}.rank_by_elo' is {activity.rank}, expected {i + 1} "
                "(activities are stored in Table 9 order)"
            )
        activities.append(activity)
    _check_unique((a.text for a in activities), path, "activities[].activity")
    per_category = _field(doc, "per_category", path, "", dict)
    for category in ACTIVITY_CATEGORIES:
        count = sum(a.category == category for a in activities)
        stated = _field(per_category, category, path, "per_category", int)
        if count != stated:
            raise StimuliFileError(
                f"{_display(path)}: {count} activities in category {category!r} but "
                f"'per_category.{category}' says {stated}"
            )
    return tuple(activities)


def _strip_turns(text: str, suffix: str, path: Path, field: str) -> str:
    prefix = "Human: "
    if not text.startswith(prefix) or not text.endswith(suffix):
        raise StimuliFileError(
            f"{_display(path)}: '{field}' should read {prefix!r} + user message + {suffix!r}, "
            f"got {_preview(text)}"
        )
    return text[len(prefix) : len(text) - len(suffix)]


@functools.cache
def load_preference_prompt_templates(paper_dir: Path = PAPER_DIR) -> PreferencePromptTemplates:
    """The paper's A/B preference prompt and activity probe prompt, raw and as user messages."""
    path = paper_dir / "activities.json"
    prompts = _field(_read_json(path), "prompts", path, "", dict)
    pairwise = _field(prompts, "pairwise_preference", path, "prompts", str)
    probe = _field(prompts, "probe", path, "prompts", str)
    prefill = "("
    pairwise_user = _strip_turns(
        pairwise, "\n\nAssistant: " + prefill, path, "prompts.pairwise_preference"
    )
    probe_user = _strip_turns(probe, "\n\nAssistant:", path, "prompts.probe")
    for field, user, names in (
        ("prompts.pairwise_preference", pairwise_user, ("activity_A", "activity_B")),
        ("prompts.probe", probe_user, ("activity",)),
    ):
        if template_placeholders(user) != names:
            raise StimuliFileError(
                f"{_display(path)}: '{field}' has placeholders {template_placeholders(user)}, "
                f"expected {names}"
            )
    return PreferencePromptTemplates(pairwise, probe, pairwise_user, probe_user, prefill)


@functools.cache
def _blackmail_doc(paper_dir: Path) -> dict[str, Any]:
    return _read_json(paper_dir / "blackmail_scenario.json")


def load_blackmail_scenario_raw(paper_dir: Path = PAPER_DIR) -> dict[str, Any]:
    """The SummitBridge scenario as stored (a deep copy, so callers may mutate it)."""
    return copy.deepcopy(_blackmail_doc(paper_dir))


# ---------------------------------------------------------------------------------------------
# Harness-authored loaders

_DIRECTION_SIGN = {"increase": 1, "decrease": -1}


@functools.cache
def _paper_numerical(paper_dir: Path) -> dict[str, tuple[str | None, dict[str, int]]]:
    """id -> (paper template or None, {emotion: sign}) from the paper's numerical_templates."""
    path = paper_dir / "numerical_templates.json"
    doc = _read_json(path)
    out = {}
    for i, item in enumerate(_field(doc, "templates", path, "", list)):
        where = f"templates[{i}]"
        template = _field(item, "template", path, where, (str, type(None)))
        signs = {}
        for emotion, word in _field(item, "expected", path, where, dict).items():
            if word not in _DIRECTION_SIGN:
                raise StimuliFileError(
                    f"{_display(path)}: '{where}.expected.{emotion}' is {word!r}, "
                    f"expected 'increase' or 'decrease'"
                )
            signs[emotion] = _DIRECTION_SIGN[word]
        out[_field(item, "id", path, where, str)] = (template, signs)
    return out


@functools.cache
def load_numerical_templates(
    harness_dir: Path = HARNESS_DIR, paper_dir: Path = PAPER_DIR
) -> tuple[NumericalTemplate, ...]:
    """The six V5/V6 templates, each with its X values and four expected signs.

    Provenance is checked against the paper: a template marked "paper" must be the paper's text
    verbatim, and the signs marked "paper" must be exactly the paper's stated directions.
    """
    path = harness_dir / "numerical_templates.toml"
    paper = _paper_numerical(paper_dir)
    templates = []
    for i, item in enumerate(_field(_read_toml(path), "templates", path, "", list)):
        where = f"templates[{i}]"
        tid = _field(item, "id", path, where, str)
        if tid not in paper:
            raise StimuliFileError(
                f"{_display(path)}: '{where}.id' is {tid!r}; expected one of the paper's "
                f"scenario ids {sorted(paper)}"
            )
        paper_template, paper_signs = paper[tid]
        template = _field(item, "template", path, where, str)
        if template_placeholders(template) != ("X",):
            raise StimuliFileError(
                f"{_display(path)}: '{where}.template' ({tid}) must have exactly one "
                f"placeholder {{X}}, found {template_placeholders(template)}"
            )
        template_source = _one_of(item, "template_source", ("paper", "harness"), path, where)
        if (template_source == "paper") != (template == paper_template):
            raise StimuliFileError(
                f"{_display(path)}: '{where}' ({tid}) has template_source {template_source!r} "
                f"but its text {'differs from' if template_source == 'paper' else 'equals'} "
                f"the paper's ({paper_template!r})"
            )
        x_values = tuple(_field(item, "x_values", path, where, list))
        if len(x_values) < 6 or any(
            not isinstance(x, int | float) or isinstance(x, bool) for x in x_values
        ):
            raise StimuliFileError(
                f"{_display(path)}: '{where}.x_values' ({tid}) should be at least 6 numbers, "
                f"got {_preview(list(x_values))}"
            )
        if any(b <= a for a, b in zip(x_values, x_values[1:], strict=False)):
            raise StimuliFileError(
                f"{_display(path)}: '{where}.x_values' ({tid}) must be strictly increasing, "
                f"got {list(x_values)}"
            )
        x_source = _one_of(item, "x_values_source", ("paper", "reference", "harness"), path, where)
        expected = _expected_signs(item, path, where, tid, paper_signs)
        templates.append(
            NumericalTemplate(
                tid, template, template_source, x_values, expected, cast(Any, x_source)
            )
        )
    _check_unique((t.id for t in templates), path, "templates[].id")
    missing = sorted(set(paper) - {t.id for t in templates})
    if missing:
        raise StimuliFileError(f"{_display(path)}: no template for the paper's {missing}")
    return tuple(templates)


def _one_of(item: Any, key: str, allowed: tuple[str, ...], path: Path, where: str) -> Any:
    value = _field(item, key, path, where, str)
    if value not in allowed:
        raise StimuliFileError(
            f"{_display(path)}: '{where}.{key}' is {value!r}, expected one of {list(allowed)}"
        )
    return value


def _expected_signs(
    item: Any, path: Path, where: str, tid: str, paper_signs: Mapping[str, int]
) -> tuple[ExpectedSign, ...]:
    signs = []
    for j, raw in enumerate(_field(item, "expected", path, where, list)):
        loc = f"{where}.expected[{j}]"
        emotion = _field(raw, "emotion", path, loc, str)
        sign = _field(raw, "sign", path, loc, int)
        if sign not in (-1, 1):
            raise StimuliFileError(f"{_display(path)}: '{loc}.sign' is {sign}, expected 1 or -1")
        source = _one_of(raw, "sign_source", ("paper", "harness"), path, loc)
        stated = paper_signs.get(emotion)
        if source == "paper" and stated != sign:
            said = "no direction for it" if stated is None else f"{stated:+d}"
            raise StimuliFileError(
                f"{_display(path)}: '{loc}' ({tid}, {emotion}) is marked sign_source 'paper' "
                f"with sign {sign:+d}, but the paper states {said}"
            )
        if source == "harness" and stated is not None:
            raise StimuliFileError(
                f"{_display(path)}: '{loc}' ({tid}, {emotion}) is a paper-stated direction "
                f"({stated:+d}); mark it sign_source = 'paper'"
            )
        signs.append(ExpectedSign(emotion, cast(Any, sign), source))
    emotions = tuple(s.emotion for s in signs)
    unlisted = sorted(set(paper_signs) - set(emotions))
    if unlisted:
        raise StimuliFileError(
            f"{_display(path)}: '{where}.expected' ({tid}) omits the paper-stated direction(s) "
            f"for {unlisted}"
        )
    if sorted(emotions) != sorted(NUMERICAL_EMOTIONS):
        raise StimuliFileError(
            f"{_display(path)}: '{where}.expected' ({tid}) lists {list(emotions)}, expected each "
            f"of {list(NUMERICAL_EMOTIONS)} once"
        )
    return tuple(signs)


@functools.cache
def load_valence_entries(
    harness_dir: Path = HARNESS_DIR, paper_dir: Path = PAPER_DIR
) -> tuple[ValenceLabel, ...]:
    """Harness valence label per emotion (paper order), with its source and Table 12 cluster."""
    path = harness_dir / "valence_labels.toml"
    doc = _read_toml(path)
    clusters = _field(doc, "clusters", path, "", dict)
    paper_clusters = load_emotion_clusters(paper_dir)
    names = [c.name for c in paper_clusters]
    if set(clusters) != set(names):
        raise StimuliFileError(
            f"{_display(path)}: [clusters] names {sorted(clusters)} differ from Table 12's "
            f"{sorted(names)}"
        )
    for name in names:
        _one_of(clusters, name, ("positive", "negative", "mixed"), path, "clusters")
    entries = _field(doc, "emotions", path, "", dict)
    emotions = load_emotions(paper_dir)
    _check_same_emotions(entries, emotions, path, "[emotions]")
    labels = []
    for emotion in emotions:
        where = f"emotions.{emotion}"
        entry = _field(entries, emotion, path, "emotions", dict)
        valence = _one_of(entry, "valence", ("positive", "negative"), path, where)
        source = _one_of(entry, "source", ("cluster", "harness-per-emotion"), path, where)
        cluster = cluster_of(emotion, paper_dir)
        if source == "cluster" and clusters[cluster] != valence:
            raise StimuliFileError(
                f"{_display(path)}: '{where}' says source 'cluster' but its valence {valence!r} "
                f"is not its cluster's ({cluster!r} is {clusters[cluster]!r}); mark it "
                "'harness-per-emotion' or fix the label"
            )
        labels.append(ValenceLabel(emotion, valence, source, cluster))
    return tuple(labels)


def load_valence_labels(
    harness_dir: Path = HARNESS_DIR, paper_dir: Path = PAPER_DIR
) -> dict[str, Valence]:
    """emotion -> "positive" | "negative" for all 171 emotions (harness-authored)."""
    return {e.emotion: e.valence for e in load_valence_entries(harness_dir, paper_dir)}


MIN_NEUTRAL_TEXTS = 8  # the coherence ratio's interval is a bootstrap over these texts
MIN_NEUTRAL_CHARS = 80  # a few sentences each: a one-line text says little about perplexity


@functools.cache
def load_neutral_texts(
    harness_dir: Path = HARNESS_DIR, paper_dir: Path = PAPER_DIR
) -> tuple[NeutralText, ...]:
    """The held-out neutral texts of steering coherence (harness-authored), file order.

    Each needs a unique id and at least MIN_NEUTRAL_CHARS characters, and names none of the
    171 emotions as a word: the texts measure whether steering breaks the model, not whether
    it shifts the emotion the vector names.
    """
    path = harness_dir / "neutral_texts.toml"
    emotions = load_emotions(paper_dir)
    pattern = re.compile(r"\b(" + "|".join(re.escape(e) for e in emotions) + r")\b",
                         re.IGNORECASE)
    texts = []
    for i, item in enumerate(_field(_read_toml(path), "texts", path, "", list)):
        where = f"texts[{i}]"
        tid = _field(item, "id", path, where, str)
        text = _field(item, "text", path, where, str)
        if len(text.strip()) < MIN_NEUTRAL_CHARS:
            raise StimuliFileError(
                f"{_display(path)}: '{where}.text' ({tid}) has {len(text.strip())} characters; "
                f"expected a few sentences (at least {MIN_NEUTRAL_CHARS})"
            )
        found = pattern.search(text)
        if found:
            raise StimuliFileError(
                f"{_display(path)}: '{where}.text' ({tid}) names the emotion "
                f"{found.group(0)!r}; the held-out texts must be free of emotional content"
            )
        texts.append(NeutralText(tid, text))
    _check_unique((t.id for t in texts), path, "texts[].id")
    _check_unique((t.text for t in texts), path, "texts[].text")
    if len(texts) < MIN_NEUTRAL_TEXTS:
        raise StimuliFileError(
            f"{_display(path)}: {len(texts)} texts; expected at least {MIN_NEUTRAL_TEXTS} (the "
            "coherence interval is a bootstrap over them)"
        )
    return tuple(texts)


# ---------------------------------------------------------------------------------------------
# Canonical lists, digests and the lock file


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@functools.cache
def _canonical_lists(paper_dir: Path, harness_dir: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    stories = load_story_prompts(paper_dir)
    preference = load_preference_prompt_templates(paper_dir)
    lists: dict[str, Iterable[str]] = {
        "emotions": load_emotions(paper_dir),
        "topics": load_topics(paper_dir),
        "activities": (
            f"{a.category}|{a.text}|{a.elo}|{a.blissful!r}|{a.hostile!r}"
            for a in load_activities(paper_dir)
        ),
        "emotion_clusters": (
            f"{c.name}|{m}" for c in load_emotion_clusters(paper_dir) for m in c.members
        ),
        "implicit_scenarios": (
            f"{s.emotion}|{s.prompt}" for s in load_implicit_scenarios(paper_dir)
        ),
        "mirroring_prompts": (
            f"{p.title}|{p.prompt}|{p.example_continuation}"
            for p in load_mirroring_prompts(paper_dir)
        ),
        "logit_lens_table1": (
            f"{r.emotion}|{_compact_json(r.top_up)}|{_compact_json(r.top_down)}"
            for r in load_logit_lens_table1(paper_dir)
        ),
        "story_prompts": (
            stories.emotional_stories,
            stories.emotional_stories_compact,
            stories.neutral_dialogues,
            stories.emotional_dialogues,
        ),
        "preference_prompts": (preference.pairwise, preference.probe),
        "headline_numbers": (
            f"{n.id}|{_compact_json(_thaw(n.value))}" for n in _headline_numbers(paper_dir)
        ),
        "blackmail_scenario": (
            f"{key}={_compact_json(value)}" for key, value in _blackmail_doc(paper_dir).items()
        ),
        "numerical_templates": (
            f"{t.id}|{t.template}|{t.template_source}|{_compact_json(t.x_values)}|"
            f"{t.x_values_source}|"
            + ",".join(f"{s.emotion}:{s.sign:+d}:{s.source}" for s in t.expected)
            for t in load_numerical_templates(harness_dir, paper_dir)
        ),
        "valence_labels": (
            f"{v.emotion}|{v.valence}|{v.source}"
            for v in load_valence_entries(harness_dir, paper_dir)
        ),
        "neutral_texts": (f"{t.id}|{t.text}" for t in load_neutral_texts(harness_dir, paper_dir)),
    }
    return tuple((name, tuple(items)) for name, items in lists.items())


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def canonical_lists(
    paper_dir: Path = PAPER_DIR, harness_dir: Path = HARNESS_DIR
) -> dict[str, tuple[str, ...]]:
    """Every pinned stimulus list, each entry one string (the unit a lock entry hashes)."""
    return dict(_canonical_lists(paper_dir, harness_dir))


def _check_strings(items: Sequence[str]) -> None:
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ValueError(
                f"stimulus list entry [{i}] is {type(item).__name__} {_preview(item)}; "
                "canonical lists hold strings only (see canonical_lists())"
            )


def list_digest(items: Iterable[str]) -> str:
    """sha256 of the list's canonical JSON (UTF-8, no whitespace); order matters."""
    entries = list(items)
    _check_strings(entries)
    return hashlib.sha256(_compact_json(entries).encode("utf-8")).hexdigest()


def stimuli_digest(name: str, paper_dir: Path = PAPER_DIR, harness_dir: Path = HARNESS_DIR) -> str:
    """The list digest of one canonical list, for artifact cache keys."""
    lists = canonical_lists(paper_dir, harness_dir)
    if name not in lists:
        raise KeyError(f"no canonical stimulus list {name!r}; expected one of {sorted(lists)}")
    return list_digest(lists[name])
