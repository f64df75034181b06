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

    def describe(self) -> dict:
        """The corpus sizes (the story and neutral stages' key): not what later stages use."""
        return {k: v for k, v in asdict(self).items() if k not in _NOT_CORPUS}


SCALES: dict[str, ScalePreset] = {
    # The paper's size: 171 x 100 x 12 = 205,200 stories.
    "full": ScalePreset("full", 100, 12, 3072, 100, 12, 4096),
    "reduced": ScalePreset("reduced", 20, 12, 3072, 20, 12, 4096),
    # Enough to exercise every stage end to end in seconds on a tiny model.
    "smoke": ScalePreset("smoke", 2, 12, 192, 4, 12, 192),
}


def get_scale(name: str) -> ScalePreset:
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; expected one of {sorted(SCALES)}")
    return SCALES[name]
