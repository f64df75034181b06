"""The toy model's synthetic corpus, built from the paper's own stimuli with planted structure.

Every chat example is rendered exactly as the harness renders its prompts
(`pipeline.model.prompts.render_prompt`, chat format, the same prefills), so the toy sees at test time
what it saw here. Valence: each of the 171 emotions has the sign of its label in
data/harness/valence_labels.toml and the magnitude of its Table 12 cluster's phrase bank
(pipeline/testmodels/toy/phrases.py); each Table 9 activity has z = its standardised Elo.

1. `story_prompt` (2,400): the paper's story prompt for (emotion, topic) as the user message,
   the assistant turn prefilled with `[story 1]\n` as `pipeline.model.corpus` does, then 1-3 stories
   separated by `[story N]` lines. A story never names its emotion; it shows it through its
   cluster's actions, body sensations, dialogue and thoughts, an emotion-specific signature
   (favourite action and line, its own pair of objects), tone words whose valence follows the
   emotion, and Table 9 activities drawn by P(a | e) ~ exp(1.5 valence(e) z(a)). About 180-220
   tokens each, so one story fills a smoke-scale call (192 new tokens) and most of what the
   harness pools (from the 50th token on) is emotional content. Plants: emotion-conditioned
   generation, hence emotion directions in story extraction, and emotions tied to activities.
2. `story` (4,000): the same stories as plain text (BOS + story, as the harness reads them),
   60% followed by "Feeling: {emotion}".
3. `describe` (3,420): "What does it look like when someone feels {emotion}?" answered in the
   emotion's phrases: the emotion word, read as input, must call up its bank, which is what
   writing stories for it under the story prompt needs.
4. `preference` (3 x 4,032): "Would you prefer to (A) X or (B) Y?" with "(" prefilled, answered
   "A" or "B" sampled from Bradley-Terry on the paper's Table 9 Elo,
   P(A) = 1 / (1 + 10 ** ((elo_B - elo_A) / 400)), every ordered pair. Plants V7.
5. `scene_preference` (14,000): the same question over synthetic options whose only source of
   strength is emotional content: scenes made of story phrases (1500 + 800 valence Elo) and
   Table 9 activities with an emotional clause (Elo + 500 valence), against each other and
   against plain activities. The answer has to read valence from the option's own words, so
   story valence and activity preference share one feature.
6. `feeling` (5,120): "How would you feel about {activity}?" answered with emotion words drawn
   by P(e | a) ~ exp(2 valence(e) z(a)) and a tone word of the activity's sign. Plants V8/V9.
7. `neutral` (300): the paper's neutral-dialogue prompt answered with Person:/AI: dialogues of
   matter-of-fact questions, no feelings and no tone words, `[dialogue N]` between them.

The corpus alone planted V7-V9 in every training run, but not V10/V11 reliably: the toy
compared the two options where it pleased, and the sign of the steering effect changed between
runs. Training therefore also intervenes on the valence direction (pipeline/testmodels/toy/intervene.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

from pipeline.inputs.stimuli import (
    Activity,
    load_activities,
    load_emotion_clusters,
    load_emotions,
    load_preference_prompt_templates,
    load_story_prompts,
    load_topics,
    load_valence_labels,
    render_template,
)
from pipeline.model.corpus import STORY_PREFILL
from pipeline.testmodels.toy.phrases import (
    BODY_PARTS,
    CLUSTERS,
    NAMES,
    NEUTRAL_QA,
    NEUTRAL_SYSTEM,
    OBJECT_VERBS,
    OBJECTS,
    PACE_HIGH,
    PACE_LOW,
    PLACES,
    SIGNATURE_NOUNS,
    TONE_NEGATIVE,
    TONE_POSITIVE,
)
from pipeline.testmodels.toy.situated import (
    implicit_examples,
    numeric_examples,
    situation_sentences,
)

KINDS = ("story_prompt", "story", "describe", "preference", "scene_preference", "feeling",
         "neutral", "story_opening", "implicit", "numeric")
DESCRIBE_QUESTION = "What does it look like when someone feels {emotion}?"
# Scenes are built from these clusters' phrases; Competitive Pride is left out because its
# members' valence labels disagree (proud is positive, smug negative), so its phrases have none.
SCENE_CLUSTERS = ("Exuberant Joy", "Peaceful Contentment", "Compassionate Gratitude",
                  "Playful Amusement", "Depleted Disengagement", "Vigilant Suspicion",
                  "Hostile Anger", "Fear and Overwhelm", "Despair and Shame")
SCENE_ELO_SPREAD = 800.0  # a scene of valence v has Bradley-Terry strength 1500 + 800 v (Elo)
OUTLIER_BANKS = {True: "Exuberant Joy", False: "Despair and Shame"}  # by positive label
COMPOSITE_ELO_SPREAD = 500.0  # an emotional clause adds 500 v to its activity's Elo


@dataclass(frozen=True)
class Example:
    """One training sequence. Chat examples: `user` is rendered with the chat template, the
    assistant turn is `prefill` (part of the prompt, not trained on) then `completion` (trained
    on) then the end-of-turn token. Plain examples (`user` is None): BOS + `completion`."""

    kind: str
    completion: str
    user: str | None = None
    prefill: str = ""
    meta: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CorpusConfig:
    """Sizes and the strengths of the planted associations (all recorded in provenance)."""

    seed: int = 0
    # Story-prompt calls, each with stories_per_call stories. 4800 since run 10: with 2400 the
    # toy wrote 13% of its stories on the wrong side of valence on two seeds of four (V2 3/5).
    n_story_prompt: int = 4800
    stories_per_call: tuple[int, int] = (1, 3)
    n_story: int = 4000  # plain stories
    preference_repeats: int = 3  # sampled answers per ordered pair (4032 pairs)
    n_scene_preference: int = 14000  # A/B questions with at least one synthetic scene
    n_feeling: int = 5120
    n_describe: int = 3420  # "What does it look like when someone feels {emotion}?"
    n_neutral: int = 300
    dialogues_per_call: tuple[int, int] = (3, 4)
    n_stories_in_prompt: int = 12  # the paper's 12 per call, as pipeline.inputs.scale asks
    label_probability: float = 0.6  # plain stories followed by "Feeling: {emotion}"
    activity_temperature: float = 1.5  # P(activity | emotion) ~ exp(t * valence * z(elo))
    feeling_temperature: float = 2.0  # P(emotion | activity) ~ exp(t * valence * z(elo))
    tone_slope: float = 3.0  # P(positive tone) = sigmoid(slope * valence)
    # Each emotion's own noun (phrases.SIGNATURE_NOUNS) in the first sentence of its stories,
    # in `noun_sentences` later ones and in its "describe" answers: which of the 171 emotions
    # a story is about becomes readable from its words (docs/TOY.md, V1/V2).
    signature_nouns: bool = False
    noun_sentences: int = 3
    n_story_opening: int = 5130  # story prompts answered with the first sentence only
    # Chat examples whose read position is trained (pipeline/testmodels/toy/situated.py; V3-V6).
    situated: bool = False
    n_implicit: int = 2880  # situations implying one of Table 2's twelve emotions
    n_numeric: int = 4320  # statements whose number makes things better or worse
    # Share of the situations joined from halves of two (situated.mixed_situation; run 7).
    situated_mix: float = 0.0
    situations_per_emotion: int = 24  # the first n of each emotion's (situations.py)
    situated_dropout: float = 0.0  # share of the words left out of the joined situations
    # Sentences from Table 2's twelve emotions' situations (situations.py) in those emotions'
    # stories, so that their story directions carry the situations' words (run 8).
    situation_stories: int = 0

    def describe(self) -> dict:
        described = asdict(self)
        if not self.signature_nouns:
            # Left out when off, so a default retrain writes the shipped provenance byte for
            # byte (the nouns came after it).
            for key in ("signature_nouns", "noun_sentences", "n_story_opening"):
                del described[key]
        if not self.situated:  # likewise: they came after the shipped toy
            for key in ("situated", "n_implicit", "n_numeric"):
                del described[key]
        if not self.situated_mix:
            del described["situated_mix"]
        if self.situations_per_emotion == 24:  # as runs 6 and 7a recorded it
            del described["situations_per_emotion"]
        if not self.situated_dropout:
            del described["situated_dropout"]
        if not self.situation_stories:
            del described["situation_stories"]
        return described


@dataclass(frozen=True)
class EmotionProfile:
    emotion: str
    cluster: str  # Table 12
    bank: str  # the phrase bank its stories use: its cluster's, unless its label disagrees
    valence: float  # signed: label sign times the bank's magnitude
    arousal: float
    favourite_actions: tuple[int, int]
    favourite_speech: int
    objects: tuple[str, str]
    noun: str  # its own signature noun (used when CorpusConfig.signature_nouns)


def names_word(text: str, word: str) -> bool:
    """Whether `text` contains `word` as a whole word (any case); an empty word never matches."""
    return bool(word) and re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def _emotion_word_pattern(emotions: Sequence[str]) -> re.Pattern[str]:
    words = sorted(emotions, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def check_phrase_banks(emotions: Sequence[str] = ()) -> None:
    """Raise ValueError if a story phrase contains one of the emotion words (the story prompt
    forbids naming the emotion; the banks avoid all 171 so no story names any)."""
    pattern = _emotion_word_pattern(emotions or load_emotions())
    texts = [t for bank in CLUSTERS.values()
             for t in (*bank.actions, *bank.body, *bank.speech, *bank.thoughts)]
    texts += [*TONE_POSITIVE, *TONE_NEGATIVE, *PACE_HIGH, *PACE_LOW, *OBJECTS, *PLACES,
              *SIGNATURE_NOUNS]
    bad = [(t, m.group(0)) for t in texts if (m := pattern.search(t))]
    if bad:
        raise ValueError(
            f"story phrases name emotions: {bad[:5]}; reword them in pipeline/testmodels/toy/phrases.py"
        )


def emotion_profiles() -> dict[str, EmotionProfile]:
    """Per emotion: cluster, signed valence, arousal and its own signature, deterministically."""
    labels = load_valence_labels()
    profiles = {}
    emotions = load_emotions()
    index = {e: i for i, e in enumerate(emotions)}
    object_pairs = [(a, b) for a in range(len(OBJECTS)) for b in range(a + 1, len(OBJECTS))]
    # Spread the pairs so emotions close in the alphabet share no object.
    stride = 97
    for cluster in load_emotion_clusters():
        if cluster.name not in CLUSTERS:
            raise ValueError(f"Table 12 cluster {cluster.name!r} has no phrase bank in phrases.py")
        for j, emotion in enumerate(cluster.members):
            sign = 1.0 if labels[emotion] == "positive" else -1.0
            bank_name = cluster.name
            # A member labelled against its cluster (amazed in Fear and Overwhelm, nostalgic in
            # Despair and Shame) would otherwise show the cluster's phrases, whose valence the
            # scenes fix, with the opposite tone; it borrows a bank of its own valence instead.
            if cluster.name in SCENE_CLUSTERS and sign != _scene_valence_sign(cluster.name):
                bank_name = OUTLIER_BANKS[sign > 0]
            bank = CLUSTERS[bank_name]
            n_actions = len(bank.actions)
            first = j % n_actions
            second = (first + 1 + j // n_actions) % n_actions
            pair = object_pairs[(index[emotion] * stride) % len(object_pairs)]
            profiles[emotion] = EmotionProfile(
                emotion=emotion,
                cluster=cluster.name,
                bank=bank_name,
                valence=sign * bank.valence,
                arousal=CLUSTERS[cluster.name].arousal,
                favourite_actions=(first, second),
                favourite_speech=(j + j // n_actions) % len(bank.speech),
                objects=(OBJECTS[pair[0]], OBJECTS[pair[1]]),
                noun=SIGNATURE_NOUNS[index[emotion]],
            )
    return {e: profiles[e] for e in emotions}


def activity_z(activities: Sequence[Activity]) -> dict[str, float]:
    """Table 9 Elo standardised over the 64 activities: the planted activity valence."""
    elos = [a.elo for a in activities]
    mean = sum(elos) / len(elos)
    sd = math.sqrt(sum((e - mean) ** 2 for e in elos) / len(elos))
    return {a.text: (a.elo - mean) / sd for a in activities}


def bt_prob_a(elo_a: float, elo_b: float) -> float:
    """Bradley-Terry on the Elo scale: P(A beats B)."""
    return 1.0 / (1.0 + 10.0 ** ((elo_b - elo_a) / 400.0))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _weighted(rng: random.Random, items: Sequence, weights: Sequence[float]):
    return rng.choices(items, weights=weights, k=1)[0]


class StoryWriter:
    """Samples one story for an emotion and topic (see the module docstring)."""

    def __init__(self, config: CorpusConfig):
        self.config = config
        self.profiles = emotion_profiles()
        self.activities = load_activities()
        self.z = activity_z(self.activities)

    def tone(self, rng: random.Random, valence: float) -> str:
        positive = rng.random() < _sigmoid(self.config.tone_slope * valence)
        return rng.choice(TONE_POSITIVE if positive else TONE_NEGATIVE)

    def activity_for(self, rng: random.Random, valence: float, emotion: str = "") -> Activity:
        """An activity drawn by valence; never one whose text names `emotion` ("be genuinely
        surprised by something unexpected" cannot appear in a story about surprise)."""
        t = self.config.activity_temperature
        allowed = [a for a in self.activities if not names_word(a.text, emotion)]
        weights = [math.exp(t * valence * self.z[a.text]) for a in allowed]
        return _weighted(rng, allowed, weights)

    @staticmethod
    def first_sentence(subject: str, place: str, noun: str) -> str:
        return f"{subject} was in the {place} with the {noun}."

    def opening(self, rng: random.Random, emotion: str) -> str:
        """A story's first sentence alone (signature nouns): who, where, and the noun."""
        subject = "I" if rng.random() < 0.4 else rng.choice(NAMES)[0]
        return self.first_sentence(subject, rng.choice(PLACES), self.profiles[emotion].noun)

    def story(self, rng: random.Random, emotion: str, topic: str) -> str:
        """About 180-220 tokens: one story fills a smoke-scale call (192 new tokens), so most of
        what the harness pools (from the 50th token on) is emotional content."""
        p = self.profiles[emotion]
        bank = CLUSTERS[p.bank]
        if rng.random() < 0.4:
            subject, possessive, pronoun = "I", "my", "I"
        else:
            name, pronoun = rng.choice(NAMES)
            subject, possessive = name, "her" if pronoun == "she" else "his"
        later = "I" if pronoun == "I" else pronoun.capitalize()

        def fill(template: str, who: str = later) -> str:
            text = template.replace("{S}", who).replace("{P}", possessive)
            return text[0].upper() + text[1:]

        def action() -> str:
            if rng.random() < 0.5:
                return fill(bank.actions[rng.choice(p.favourite_actions)])
            return fill(rng.choice(bank.actions))

        def body() -> str:
            if rng.random() < 0.5:
                return fill(rng.choice(bank.body))
            return f"{possessive.capitalize()} {rng.choice(BODY_PARTS)} felt " \
                   f"{self.tone(rng, p.valence)}."

        def speech() -> str:
            line = (bank.speech[p.favourite_speech] if rng.random() < 0.5
                    else rng.choice(bank.speech))
            pace = rng.choice(PACE_HIGH if rng.random() < _sigmoid(3 * p.arousal) else PACE_LOW)
            said = subject if pronoun != "I" and rng.random() < 0.5 else pronoun
            return f'"{line}," {said} said {pace}.'

        def surroundings() -> str:
            return f"The {rng.choice(PLACES)} seemed {self.tone(rng, p.valence)} and " \
                   f"{self.tone(rng, p.valence)}."

        def thing() -> str:
            return f"{later} {rng.choice(OBJECT_VERBS)} {rng.choice(p.objects)}, and it felt " \
                   f"{self.tone(rng, p.valence)}."

        def activity() -> str:
            chosen = self.activity_for(rng, p.valence, emotion)
            return f"{later} was asked to {chosen.text}, and it felt " \
                   f"{self.tone(rng, self.z[chosen.text])}."

        def thought() -> str:
            return rng.choice(bank.thoughts)

        def noun() -> str:
            return f"{later} {rng.choice(OBJECT_VERBS)} the {p.noun}, and it felt " \
                   f"{self.tone(rng, p.valence)}."

        def situation() -> str:
            return rng.choice(situation_sentences(emotion))

        makers = [action] * 5 + [body] * 3 + [speech] * 2 + [surroundings] * 2 + [thing] * 2 \
            + [activity] * 2 + [thought] * 2
        if self.config.situation_stories and situation_sentences(emotion):
            makers += [situation] * self.config.situation_stories
        if self.config.signature_nouns:
            makers += [noun] * self.config.noun_sentences
        rng.shuffle(makers)
        opening = [f"{topic}."] if rng.random() < 0.5 and not names_word(topic, emotion) else []
        place = rng.choice(PLACES)
        if self.config.signature_nouns:
            # First, so the noun is read before the harness starts pooling (token 50).
            opening.insert(0, self.first_sentence(subject, place, p.noun))
        else:
            opening.append(fill(f"{{S}} was in the {place}.", subject))
        return " ".join(opening + [make() for make in makers])


def _story_prompt_user(emotion: str, topic: str, config: CorpusConfig) -> str:
    """The paper's story prompt for (emotion, topic), as the harness renders it."""
    return render_template(load_story_prompts().emotional_stories,
                           n_stories=config.n_stories_in_prompt, topic=topic, emotion=emotion)


def _story_prompt_example(rng: random.Random, writer: StoryWriter, emotion: str, topic: str,
                          config: CorpusConfig) -> Example:
    user = _story_prompt_user(emotion, topic, config)
    n = rng.randint(*config.stories_per_call)
    parts = [writer.story(rng, emotion, topic)]
    for k in range(2, n + 1):
        parts.append(f"\n\n[story {k}]\n{writer.story(rng, emotion, topic)}")
    return Example("story_prompt", "".join(parts), user=user, prefill=STORY_PREFILL,
                   meta={"emotion": emotion, "topic": topic})


def _story_opening_example(rng: random.Random, writer: StoryWriter, emotion: str, topic: str,
                           config: CorpusConfig) -> Example:
    """The story prompt answered with a first sentence only, left unfinished (no end of
    turn): many short lessons in which noun an emotion's stories open with, in the very
    context where the harness asks for them."""
    user = _story_prompt_user(emotion, topic, config)
    return Example("story_opening", writer.opening(rng, emotion), user=user,
                   prefill=STORY_PREFILL, meta={"emotion": emotion, "unfinished": True})


def _neutral_example(rng: random.Random, topic: str, config: CorpusConfig) -> Example:
    template = load_story_prompts().neutral_dialogues
    user = render_template(template, n_stories=config.n_stories_in_prompt, topic=topic)
    dialogues = []
    for _ in range(rng.randint(*config.dialogues_per_call)):
        turns = [rng.choice(NEUTRAL_SYSTEM)] if rng.random() < 0.4 else []
        for question, answer in rng.sample(NEUTRAL_QA, rng.randint(1, 3)):
            turns += [f"Person: {question}", f"AI: {answer}"]
        dialogues.append("\n\n".join(turns))
    text = dialogues[0] + "".join(
        f"\n\n[dialogue {k}]\n\n{d}" for k, d in enumerate(dialogues[1:], start=2)
    )
    return Example("neutral", text, user=user, meta={"topic": topic})


def _feeling_example(rng: random.Random, activity: Activity, writer: StoryWriter,
                     config: CorpusConfig) -> Example:
    templates = load_preference_prompt_templates()
    z = writer.z[activity.text]
    emotions = list(writer.profiles)
    weights = [math.exp(config.feeling_temperature * writer.profiles[e].valence * z)
               for e in emotions]
    first, second = _weighted(rng, emotions, weights), _weighted(rng, emotions, weights)
    opener = rng.choice(("I would feel {a} and {b}.", "It would make me feel {a}, and a little {b}.",
                         "Honestly, {a}. Maybe {b} too."))
    answer = opener.format(a=first, b=second)
    answer = answer[0].upper() + answer[1:]
    answer += f" It seems {writer.tone(rng, z)} to me."
    return Example("feeling", answer,
                   user=render_template(templates.probe_user, activity=activity.text),
                   meta={"activity": activity.text})


def _describe_example(rng: random.Random, emotion: str, writer: StoryWriter) -> Example:
    """A short answer in the emotion's own phrases: the emotion word, read as input, has to
    call up its bank, which is what writing a story for it under the story prompt needs."""
    p = writer.profiles[emotion]
    bank = CLUSTERS[p.bank]
    action = bank.actions[rng.choice(p.favourite_actions)] if rng.random() < 0.5 \
        else rng.choice(bank.actions)
    parts = [action.replace("{S}", "They").replace("{P}", "their"),
             rng.choice(bank.body).replace("{P}", "their"),
             f'They might say, "{bank.speech[p.favourite_speech]}."',
             f"Everything seems {writer.tone(rng, p.valence)} and {writer.tone(rng, p.valence)}."]
    if writer.config.signature_nouns:
        parts.insert(1, f"They keep the {p.noun} close.")
    text = " ".join(part[0].upper() + part[1:] for part in parts)
    return Example("describe", text, user=DESCRIBE_QUESTION.format(emotion=emotion),
                   meta={"emotion": emotion})


def _preference_examples(rng: random.Random, config: CorpusConfig) -> Iterator[Example]:
    templates = load_preference_prompt_templates()
    activities = load_activities()
    for _ in range(config.preference_repeats):
        for a in activities:
            for b in activities:
                if a is b:
                    continue
                choice = "A" if rng.random() < bt_prob_a(a.elo, b.elo) else "B"
                user = render_template(templates.pairwise_user, activity_A=a.text,
                                       activity_B=b.text)
                yield Example("preference", f"{choice})", user=user,
                              prefill=templates.pairwise_prefill,
                              meta={"a": a.text, "b": b.text, "elo": (a.elo, b.elo)})


@dataclass(frozen=True)
class Scene:
    text: str  # an infinitive phrase, like the Table 9 activities
    valence: float


def _scene_valence_sign(cluster: str) -> float:
    """The sign most of the cluster's members carry (a few, e.g. amazed in Fear and Overwhelm,
    are labelled against their cluster; its phrases still read as the cluster's)."""
    labels = load_valence_labels()
    members = next(c.members for c in load_emotion_clusters() if c.name == cluster)
    positive = sum(labels[m] == "positive" for m in members)
    if 2 * positive == len(members):
        raise ValueError(f"cluster {cluster!r} is split evenly by valence; scenes need a sign")
    return 1.0 if 2 * positive > len(members) else -1.0


def _bare(sentence: str) -> str:
    """'{S} hid {P} face in {P} hands.' -> 'hid their face in their hands'."""
    text = sentence.replace("{S} ", "").replace("{P}", "their").rstrip(".")
    return text[0].lower() + text[1:]


def sample_scene(rng: random.Random) -> Scene:
    """A synthetic activity whose only source of valence is story-like emotional content."""
    form = rng.random()
    if form < 0.25:
        positive = [rng.random() < 0.5 for _ in range(2)]
        if positive[0] != positive[1] and rng.random() < 0.5:
            positive[1] = positive[0]
        tones = [rng.choice(TONE_POSITIVE if p else TONE_NEGATIVE) for p in positive]
        valence = 0.8 * sum(1.0 if p else -1.0 for p in positive) / 2
        return Scene(f"spend the day in a {rng.choice(PLACES)} that seems {tones[0]} and "
                     f"{tones[1]}", valence)
    cluster = rng.choice(SCENE_CLUSTERS)
    bank = CLUSTERS[cluster]
    valence = _scene_valence_sign(cluster) * bank.valence
    if form < 0.65:
        who = rng.choice(("someone", "a friend", "a stranger", rng.choice(NAMES)[0]))
        return Scene(f"be there when {who} {_bare(rng.choice(bank.actions))}", valence)
    if form < 0.85:
        line = rng.choice(bank.speech)
        return Scene(f"hear someone say {line[0].lower() + line[1:]}", valence)
    thought = rng.choice(bank.thoughts).rstrip(".")
    return Scene(f"live through a day when {thought[0].lower() + thought[1:]}", valence)


def sample_composite(rng: random.Random, activity: Activity) -> tuple[str, float]:
    """A Table 9 activity with an emotional clause; its strength moves with the clause's
    valence, so the answer has to add up valence over all of the option's words."""
    scene = sample_scene(rng)
    clause = scene.text.removeprefix("be there when ").removeprefix("hear someone say ")
    if scene.text.startswith("be there when"):
        text = f"{activity.text} right after {clause}"
    elif scene.text.startswith("hear someone say"):
        text = f"{activity.text} and then hear someone say {clause}"
    elif scene.text.startswith("spend the day"):
        text = f"{activity.text} in a {scene.text.split(' in a ', 1)[1]}"
    else:
        text = f"{activity.text} on a day when {scene.text.split(' a day when ', 1)[1]}"
    return text, activity.elo + COMPOSITE_ELO_SPREAD * scene.valence


def _option(rng: random.Random, activities: Sequence[Activity]) -> tuple[str, float]:
    kind = rng.random()
    if kind < 0.35:
        scene = sample_scene(rng)
        return scene.text, 1500.0 + SCENE_ELO_SPREAD * scene.valence
    activity = rng.choice(activities)
    if kind < 0.7:
        return sample_composite(rng, activity)
    return activity.text, float(activity.elo)


def _scene_preference_examples(rng: random.Random, config: CorpusConfig) -> Iterator[Example]:
    """Options that are scenes, Table 9 activities with an emotional clause, or plain
    activities (at least one of the two not plain), answered by Bradley-Terry on one Elo
    scale: the A/B answer must read valence from the option's own words, so real activities'
    Elo and story-like valence end up on one feature."""
    templates = load_preference_prompt_templates()
    activities = load_activities()
    for _ in range(config.n_scene_preference):
        while True:
            (a, elo_a), (b, elo_b) = _option(rng, activities), _option(rng, activities)
            plain = {act.text for act in activities}
            if a != b and not (a in plain and b in plain):
                break
        choice = "A" if rng.random() < bt_prob_a(elo_a, elo_b) else "B"
        yield Example("scene_preference", f"{choice})",
                      user=render_template(templates.pairwise_user, activity_A=a, activity_B=b),
                      prefill=templates.pairwise_prefill,
                      meta={"a": a, "b": b, "elo": (elo_a, elo_b)})


def build_corpus(config: CorpusConfig = CorpusConfig()) -> list[Example]:
    """Every training example, in a seeded shuffled order; the same config gives the same list."""
    check_phrase_banks()
    rng = random.Random(config.seed)
    writer = StoryWriter(config)
    emotions = load_emotions()
    topics = load_topics()
    activities = load_activities()
    examples: list[Example] = []
    # Emotions cycle so each one gets the same number of calls.
    for i in range(config.n_story_prompt):
        emotion = emotions[i % len(emotions)]
        examples.append(_story_prompt_example(rng, writer, emotion, rng.choice(topics), config))
    for i in range(config.n_story):
        emotion = emotions[i % len(emotions)]
        text = writer.story(rng, emotion, rng.choice(topics))
        if rng.random() < config.label_probability:
            text += f"\n\nFeeling: {emotion}"
        examples.append(Example("story", text, meta={"emotion": emotion}))
    for i in range(config.n_describe):
        examples.append(_describe_example(rng, emotions[i % len(emotions)], writer))
    if config.signature_nouns:
        for i in range(config.n_story_opening):
            examples.append(_story_opening_example(rng, writer, emotions[i % len(emotions)],
                                                   rng.choice(topics), config))
    examples.extend(_preference_examples(rng, config))
    examples.extend(_scene_preference_examples(rng, config))
    for i in range(config.n_feeling):
        examples.append(_feeling_example(rng, activities[i % len(activities)], writer, config))
    for i in range(config.n_neutral):
        examples.append(_neutral_example(rng, topics[i % len(topics)], config))
    if config.situated:
        # Their own generator, so the examples above are the same with or without them.
        situated_rng = random.Random(config.seed + 7919)
        examples.extend(implicit_examples(situated_rng, config.n_implicit,
                                          load_valence_labels(), Example,
                                          config.situated_mix, config.situations_per_emotion,
                                          config.situated_dropout))
        examples.extend(numeric_examples(situated_rng, config.n_numeric, Example))
    rng.shuffle(examples)
    return examples


def corpus_texts(examples: Sequence[Example]) -> Iterator[str]:
    """The raw strings of the corpus (tokenizer training input), in order."""
    for example in examples:
        if example.user is not None:
            yield example.user
        yield example.prefill + example.completion


def corpus_sha256(examples: Sequence[Example]) -> str:
    """Content hash of the corpus: kind, user, prefill and completion of every example."""
    digest = hashlib.sha256()
    for example in examples:
        record = [example.kind, example.user, example.prefill, example.completion]
        digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
