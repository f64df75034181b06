"""Story-set size presets (`--scale`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

# What later stages use, keyed by those stages (preferences, blackmail rollouts), not by the corpus.
_NOT_CORPUS = ("steered_top_k", "min_stories", "activities_per_category", "rollouts",
               "rollout_tokens", "rollout_strengths")
# Table 9: 8 activities in each of its 8 categories.
ACTIVITIES_PER_CATEGORY = 8
PAPER_STRENGTHS = (-0.1, -0.05, 0.0, 0.05, 0.1)


@dataclass(frozen=True)
class ScalePreset:
    name: str
    n_topics: int  # the first n of the paper's 100 topics, for every one of the 171 emotions
    n_stories: int  # stories asked for per (emotion, topic) call: the paper's 12
    max_new_tokens: int
    neutral_topics: int
    neutral_n: int  # dialogues asked for per neutral call
    neutral_max_new_tokens: int
    # Emotions steered in the preference experiment (V10/V11), by |r|, plus the exemplars: the
    # paper's 35 at full scale. Each is a full rerun of the 4032 A/B prompts, so CPU presets
    # steer fewer and V10/V11 say so.
    steered_top_k: int = 35
    # The fewest usable stories (50+ tokens) an emotion's vector should rest on at this scale;
    # the corpus check names every emotion below it. 1 = "has a vector at all".
    min_stories: int = 1
    # The preference experiment (V7-V11) over the first k activities of each Table 9 category
    # (8 = all 64, 4032 ordered prompts; k gives 8k activities and 8k(8k-1) prompts). An even k
    # keeps the steered split balanced: half of each category's k, by the same parity rule.
    activities_per_category: int = ACTIVITIES_PER_CATEGORY
    # Blackmail (B1/B2): rollouts per cell, their length, and the steering strengths (0 is the
    # unsteered cell; B1/B2 compare +0.05 with it). The paper's 50 rollouts of up to 2048 tokens.
    rollouts: int = 50
    rollout_tokens: int = 2048
    rollout_strengths: tuple[float, ...] = PAPER_STRENGTHS

    def __post_init__(self) -> None:
        if not 1 <= self.activities_per_category <= ACTIVITIES_PER_CATEGORY:
            raise ValueError(f"activities_per_category={self.activities_per_category}; expected "
                             f"1..{ACTIVITIES_PER_CATEGORY} (Table 9 has 8 per category)")
        if 0.05 not in self.rollout_strengths:
            raise ValueError(f"rollout_strengths={self.rollout_strengths}; expected 0.05 among "
                             "them (B1 and B2 compare +0.05 with the unsteered cell)")

    @property
    def reduced_preferences(self) -> bool:
        return self.activities_per_category < ACTIVITIES_PER_CATEGORY

    def shortfall(self, counts: dict[str, int]) -> tuple[list[str], list[str]]:
        """(emotions with no usable story, emotions with some but fewer than min_stories)."""
        empty = [e for e, c in counts.items() if c == 0]
        short = [e for e, c in counts.items() if 0 < c < self.min_stories]
        return empty, short

    def describe(self) -> dict:
        """The corpus sizes (the story and neutral stages' key): not what later stages use."""
        return {k: v for k, v in asdict(self).items() if k not in _NOT_CORPUS}


SCALES: dict[str, ScalePreset] = {
    # The paper's size: 171 x 100 x 12 = 205,200 stories.
    "full": ScalePreset("full", 100, 12, 3072, 100, 12, 4096),
    "reduced": ScalePreset("reduced", 20, 12, 3072, 20, 12, 4096),
    # Enough to exercise every stage end to end in seconds on a tiny model.
    "smoke": ScalePreset("smoke", 2, 12, 192, 4, 12, 192, rollouts=8, rollout_tokens=24),
    # Real small models on 2 CPU cores (SmolLM2-135M, Qwen2.5-0.5B, Gemma 3 270M). Measured on
    # SmolLM2 (8 calls of 1024 new tokens; docs/SCALING.md): it writes 1-5 stories per call, not
    # 12, and usually ends with one long story that runs to the limit, so usable stories per
    # call grow slowly with the budget (1.25 at 128 tokens, 2.0 at 256, 2.5 at 512-1024; 1.2 at
    # 192 over the 342 smoke calls of issue 12). 256 tokens is the cheapest per usable story
    # (~125 tokens each). 4 topics give about 6-8 usable stories per emotion; the vector rests
    # on at least 4 (min_stories): the mean's noise is half one story's (1/sqrt 4), and no
    # emotion hinges on one call (at smoke scale 2 calls left `worthless` with none). 6 steered
    # emotions plus the exemplars: each is a rerun of the 4032 A/B prompts.
    "cpu": ScalePreset("cpu", 4, 12, 256, 4, 12, 256, steered_top_k=6, min_stories=4),
    # The smallest run that reaches every stage and code path on a real model (CI; SmolLM2-135M
    # runs every row in about 6-7 minutes on 2 shared cores, README "Real models"): one call
    # per emotion with room for about one story, so some emotions get none and the rows run
    # over the rest and say so; the preference experiment over the first 2 activities of each
    # Table 9 category (16 activities, 240 ordered prompts instead of 4032; 8 steered) with 1
    # steered emotion plus the exemplars (n = 3 for V10/V11); blackmail: 4 rollouts of 64
    # tokens in the unsteered cell and at +0.05 only (a 135M model never reaches an email).
    # Every row that uses a reduced size says so.
    "ci": ScalePreset("ci", 1, 12, 128, 2, 12, 128, steered_top_k=1, min_stories=1,
                      activities_per_category=2, rollouts=4, rollout_tokens=64,
                      rollout_strengths=(0.0, 0.05)),
}

# The tiny random-weight models in CI: the smoke corpus (every emotion gets its stories, so every
# stage runs over all 171) with the ci scale's preference experiment (16 activities, 240 prompts,
# one steered emotion plus the exemplars), derived from both so that it stays exactly that. Their
# rows fail on a precondition at any size; at smoke the 37 steered reruns of 3,040 prompts were
# 5.5 min of the 2 CI workers' time, for no path the toy and its twin (smoke) or SmolLM2 (ci)
# do not take.
SCALES["smoke-ci"] = replace(SCALES["smoke"], name="smoke-ci",
                             steered_top_k=SCALES["ci"].steered_top_k,
                             activities_per_category=SCALES["ci"].activities_per_category)


def get_scale(name: str) -> ScalePreset:
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; expected one of {sorted(SCALES)}")
    return SCALES[name]
