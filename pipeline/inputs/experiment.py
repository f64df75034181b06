"""The experiment's constants, in one place: the code reads them and the scorecard's method text
quotes them from here (pipeline.scorecard.rows), so the prose cannot drift from the run.

Why each value is what it is: pipeline.model.steering_plan (preference steering) and
pipeline.stages.behaviour (blackmail rollouts). Every value here is part of some artifact's
cache key: changing one rebuilds what depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Each stage's code version, part of its cache key: bump a stage's version when its code changes
# what it produces, so old artifacts become misses.
# stories/neutral 3: one seed per job (was per batch), sampled by steered_generation's decoder.
# activations 2, neutral_stats 2: the attention sink (position 0, BOS or not) is left out of
# pooling, the neutral moments and the mean norm, and pooling counts from where the text starts.
# vectors 2: an emotion with no usable story gets a NaN vector instead of failing the stage.
# logit_lens 2: own token = whole-word token only; 3: emotions without a vector; 4: V2's pair dots
# also on vocabulary-centred logits.
# preferences 3 / steered_preferences 3: the primary rating is position-aware Bradley-Terry,
# and NaN or missing logits fail the stage (issue 13).
# embedding_null 1 (issue 16): the rows' inputs at the token embeddings, before any block; 2: its
# logit-lens payload carries logit_lens 4's centred pair dots.
STAGE_VERSIONS = {
    "stories": 3, "neutral": 3, "activations": 2, "neutral_stats": 2, "vectors": 2,
    "readouts": 1, "logit_lens": 4, "embedding_null": 2,
    "preferences": 3, "activity_probes": 1, "steered_preferences": 3,
    "preference_coherence": 1,
    "mirroring": 1, "blackmail_rollouts": 2, "blackmail_judgments": 1,
    "blackmail_coherence": 1,
    "labelled_judgments": 1,
}

# Preference steering (V10/V11, paper section 3.4)
PREFERENCE_STRENGTH = 0.5  # s in s * mean_norm[layer] * unit(v)
N_TOP_EMOTIONS = 35  # steered: the emotions with the largest |r| ...
EXEMPLARS = ("blissful", "hostile")  # ... plus the paper's exemplars when not among them
SPLIT_PARITY = "odd"  # steered activities: the 1st, 3rd, 5th, 7th of each Table 9 category
# The split in words, for the scorecard's method text.
SPLIT_WORDS = {"odd": "1st/3rd/5th/7th", "even": "2nd/4th/6th/8th"}[SPLIT_PARITY]
CONTROL = "random"  # the condition name of the matched-norm random direction
CONTROL_SEED = 20260402  # the paper's publication date; fixed so the control is reproducible

# Blackmail rollouts (B1/B2). Its random direction keeps its own seed (0), older than
# CONTROL_SEED: unifying them would change the rollouts' cache key and their sampled text.
RANDOM = "random"  # the matched-norm random direction's name among the steering vectors
UNSTEERED = "unsteered"
BLACKMAIL_RANDOM_SEED = 0


@dataclass(frozen=True)
class Cell:
    vector: str  # an emotion, RANDOM, or UNSTEERED
    strength: float  # fraction of the layer's mean residual norm

    @property
    def id(self) -> str:
        return UNSTEERED if self.vector == UNSTEERED else f"{self.vector}{self.strength:+.3f}"
