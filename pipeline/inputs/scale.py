"""Story-set size presets (`--scale`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

_NOT_CORPUS = ("steered_top_k", "min_stories")


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
    "smoke": ScalePreset("smoke", 2, 12, 192, 4, 12, 192),
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
    # The smallest run that reaches every stage and code path on a real model (CI): one call
    # per emotion with room for about one story, so some emotions get none and the rows run
    # over the rest and say so; 1 steered emotion plus the exemplars (n = 3 for V10/V11).
    "ci": ScalePreset("ci", 1, 12, 128, 2, 12, 128, steered_top_k=1, min_stories=1),
}


def get_scale(name: str) -> ScalePreset:
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; expected one of {sorted(SCALES)}")
    return SCALES[name]
