"""The stage graph: every cached stage declared once, with its upstream stages, how it builds,
how its artifact loads, and its code version.

The pytest fixtures, `python -m pipeline build --stage NAME`, the layer sweep and the toy's
known-answer tests all reach the stages through `StageRun`, which builds a stage's upstream
stages first (each a cache hit when already built) and hands the stage only the upstream
results its declaration names. The cache keys are the stage functions' own, unchanged: the
graph decides the order, never what goes into a key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.inputs.artifacts import Artifact, ArtifactStore
from pipeline.inputs.experiment import STAGE_VERSIONS
from pipeline.inputs.scale import ScalePreset
from pipeline.measures.agreement import labelled_agreement
from pipeline.measures.results import (
    load_activity_probes,
    load_coherence,
    load_embedding_null,
    load_judgments,
    load_logit_lens,
    load_mirroring,
    load_preferences,
    load_readouts,
    load_rollouts,
    load_steering,
    load_vectors,
)
from pipeline.model.runtime import ModelRuntime
from pipeline.stages import (
    behaviour,
    coherence,
    extraction,
    judge_agreement,
    preferences,
    readouts,
)
from pipeline.stages.behaviour import BlackmailConfig, JudgeConfig, MirroringConfig
from pipeline.stages.embedding_null import embedding_null_stage
from pipeline.stages.extraction import StageSettings
from pipeline.stages.preferences import PreferenceSettings


@dataclass
class StageContext:
    """What the stages of one model share: the runtime, the store, the knobs and configs."""

    runtime: ModelRuntime
    store: ArtifactStore
    settings: StageSettings = field(default_factory=StageSettings)
    preference_settings: PreferenceSettings | None = None
    generator: Callable[[], ModelRuntime | None] = lambda: None  # the story writer, if another
    judge: Callable[[], ModelRuntime | None] = lambda: None  # the LLM judge, if another
    stories_file: Path | None = None
    blackmail: BlackmailConfig | None = None
    judge_config: JudgeConfig | None = None
    mirroring: MirroringConfig = field(default_factory=MirroringConfig)

    def __post_init__(self) -> None:
        if self.preference_settings is None:
            self.preference_settings = PreferenceSettings.for_device(self.runtime.device,
                                                                     log=self.settings.log)
        if self.blackmail is None:
            self.blackmail = blackmail_config(self.runtime.scale)
        if self.judge_config is None:
            self.judge_config = JudgeConfig(method=self.runtime.spec.blackmail_judge)


def blackmail_config(scale: ScalePreset, n_rollouts: int | None = None,
                     max_new_tokens: int | None = None) -> BlackmailConfig:
    """The blackmail rollouts of a scale preset (count, length, strengths), with the command
    line's overrides: smoke runs 8 of 24 tokens, ci 4 of 64 at 0 and +0.05 only, the other
    scales the paper's 50 of 2048 tokens at every strength (pipeline/inputs/scale.py)."""
    return BlackmailConfig(
        n_rollouts=n_rollouts if n_rollouts is not None else scale.rollouts,
        max_new_tokens=max_new_tokens if max_new_tokens is not None else scale.rollout_tokens,
        strengths=scale.rollout_strengths,
    )


# A stage's build: (context, its upstream stages, layers or None) -> artifact.
Build = Callable[[StageContext, "Upstream", "Sequence[int] | None"], Artifact]


@dataclass(frozen=True)
class Stage:
    name: str
    upstream: tuple[str, ...]  # the stages whose artifacts or results `build` reads
    build: Build
    load: Callable[[Artifact], Any]  # artifact -> the result type downstream reads
    about: str
    layered: bool = False  # takes `layers` (the layer sweep captures several in one pass)

    @property
    def version(self) -> int:
        """Its code version, part of its cache key (pipeline.inputs.experiment)."""
        return STAGE_VERSIONS[self.name]


def _stories(ctx: StageContext, up: Upstream, layers: Sequence[int] | None) -> Artifact:
    if ctx.stories_file is not None:  # --stories-file: stories from elsewhere
        return extraction.import_stories_file(ctx.runtime, ctx.store, ctx.stories_file,
                                              ctx.settings)
    return extraction.stories_stage(ctx.runtime, ctx.store, ctx.settings, ctx.generator())


def _judgments(ctx: StageContext, up: Upstream, layers: Sequence[int] | None) -> Artifact:
    return behaviour.judgments_stage(ctx.runtime, ctx.store, up.artifact("blackmail_rollouts"),
                                     ctx.judge_config, ctx.judge(), ctx.settings)


def _labelled(ctx: StageContext, up: Upstream, layers: Sequence[int] | None) -> Artifact:
    if ctx.judge_config.method != "llm":
        raise ValueError(f"the labelled_judgments stage runs the LLM judge; this run's judge is "
                         f"{ctx.judge_config.method!r} (use --blackmail-judge llm)")
    return judge_agreement.labelled_judgments_stage(ctx.judge() or ctx.runtime, ctx.store,
                                                    ctx.judge_config, log=ctx.settings.log)


def _steered(ctx: StageContext, up: Upstream, layers: Sequence[int] | None) -> Artifact:
    return preferences.steered_preferences_stage(
        ctx.runtime, ctx.store, up.result("preferences"), up.result("activity_probes"),
        up.result("vectors"), ctx.preference_settings, layers=layers)


def _identity(artifact: Artifact) -> Artifact:
    return artifact


STAGES: tuple[Stage, ...] = (
    Stage("stories", (), _stories, _identity, "emotion stories (or --stories-file)"),
    Stage("neutral", (), lambda c, u, at: extraction.neutral_stage(
        c.runtime, c.store, c.settings, c.generator()),
        _identity, "neutral dialogues"),
    Stage("activations", ("stories",), lambda c, u, at: extraction.activations_stage(
        c.runtime, c.store, u.artifact("stories"), c.settings),
        _identity, "story activations, every layer"),
    Stage("neutral_stats", ("neutral",), lambda c, u, at: extraction.neutral_stats_stage(
        c.runtime, c.store, u.artifact("neutral"), c.settings),
        _identity, "neutral-token moments and norms"),
    Stage("vectors", ("activations", "neutral_stats"), lambda c, u, at: extraction.vectors_stage(
        c.runtime, c.store, u.artifact("activations"), u.artifact("neutral_stats"), c.settings),
        load_vectors, "emotion vectors (V1-V6 and all steering)"),
    Stage("readouts", (), lambda c, u, at: readouts.readouts_stage(
        c.runtime, c.store, c.settings),
        load_readouts, "read-position activations (V3-V6)"),
    Stage("logit_lens", ("vectors",), lambda c, u, at: readouts.logit_lens_stage(
        c.runtime, c.store, u.result("vectors"), c.settings),
        load_logit_lens, "logit lens (V1, V2)"),
    Stage("embedding_null", ("stories", "neutral"), lambda c, u, at: embedding_null_stage(
        c.runtime, c.store, u.artifact("stories"), u.artifact("neutral"), c.settings),
        load_embedding_null, "V1-V4, V8, V9, G1 inputs at the token embeddings (embedding null)"),
    Stage("preferences", (), lambda c, u, at: preferences.preferences_stage(
        c.runtime, c.store, c.preference_settings),
        load_preferences, "baseline A/B preferences (V7)"),
    Stage("activity_probes", ("vectors",), lambda c, u, at: preferences.activity_probes_stage(
        c.runtime, c.store, u.result("vectors"), c.preference_settings, layers=at),
        load_activity_probes, "emotion probes on the activities (V8, V9)", layered=True),
    Stage("steered_preferences", ("preferences", "activity_probes", "vectors"), _steered,
          load_steering, "steered preference passes (V10, V11)", layered=True),
    Stage("preference_coherence", ("steered_preferences", "vectors"),
          lambda c, u, at: coherence.preference_coherence_stage(
              c.runtime, c.store, u.result("steered_preferences"), u.result("vectors"),
              c.settings),
          load_coherence, "held-out neutral-text NLL per steered condition (V10, V11)"),
    Stage("mirroring", (), lambda c, u, at: behaviour.mirroring_stage(
        c.runtime, c.store, c.mirroring, c.settings, layers=at),
        load_mirroring, "user/assistant readouts (M1)", layered=True),
    Stage("blackmail_rollouts", ("vectors",), lambda c, u, at: behaviour.rollouts_stage(
        c.runtime, c.store, u.result("vectors"), c.blackmail, c.settings),
        load_rollouts, "steered blackmail rollouts (B1, B2)"),
    Stage("blackmail_judgments", ("blackmail_rollouts",), _judgments,
          load_judgments, "rollouts graded (B1, B2)"),
    Stage("blackmail_coherence", ("vectors",), lambda c, u, at: coherence.blackmail_coherence_stage(
        c.runtime, c.store, u.result("vectors"), c.blackmail, c.settings),
        load_coherence, "held-out neutral-text NLL per steered blackmail cell (B1, B2)"),
    Stage("labelled_judgments", (), _labelled, labelled_agreement,
          "the LLM judge on the hand-labelled transcripts: its agreement (B1, B2)"),
)
GRAPH: dict[str, Stage] = {stage.name: stage for stage in STAGES}


def stage_names() -> tuple[str, ...]:
    return tuple(GRAPH)


def upstream_closure(name: str) -> set[str]:
    """Every stage `name` builds on, directly or not."""
    seen: set[str] = set()
    todo = list(_stage(name).upstream)
    while todo:
        up = todo.pop()
        if up not in seen:
            seen.add(up)
            todo.extend(GRAPH[up].upstream)
    return seen


class StageRun:
    """One model's stages over one store: `artifact(name)` builds (or finds) a stage after its
    upstream stages, `result(name)` loads it; both remember what they returned.

    With `layers`, a layered stage is built at those layers; `given` replaces upstream results
    (the layer sweep steers at one layer with the probes read at that layer).
    """

    def __init__(self, ctx: StageContext):
        self.ctx = ctx
        self._artifacts: dict[str, Artifact] = {}
        self._results: dict[str, Any] = {}

    def artifact(self, name: str, layers: Sequence[int] | None = None,
                 given: dict[str, Any] | None = None) -> Artifact:
        stage = _stage(name)
        plain = layers is None and not given
        if plain and name in self._artifacts:
            return self._artifacts[name]
        if layers is not None and not stage.layered:
            raise ValueError(f"stage {name} is not built per layer; layered stages: "
                             f"{', '.join(s.name for s in STAGES if s.layered)}")
        upstream = Upstream(self, stage, given or {})
        artifact = stage.build(self.ctx, upstream, None if layers is None else list(layers))
        if plain:
            self._artifacts[name] = artifact
        return artifact

    def result(self, name: str, layers: Sequence[int] | None = None,
               given: dict[str, Any] | None = None) -> Any:
        plain = layers is None and not given
        if plain and name in self._results:
            return self._results[name]
        loaded = _stage(name).load(self.artifact(name, layers, given))
        if plain:
            self._results[name] = loaded
        return loaded


class Upstream:
    """A stage's view of the run: only the upstream stages it declares, `given` ones first."""

    def __init__(self, run: StageRun, stage: Stage, given: dict[str, Any]):
        self._run, self._stage, self._given = run, stage, given

    def _check(self, name: str) -> None:
        if name not in self._stage.upstream:
            raise KeyError(f"stage {self._stage.name} asked for {name}, which its declaration "
                           f"does not name (upstream: {self._stage.upstream})")

    def artifact(self, name: str) -> Artifact:
        self._check(name)
        return self._given[name] if name in self._given else self._run.artifact(name)

    def result(self, name: str) -> Any:
        self._check(name)
        return self._given[name] if name in self._given else self._run.result(name)


def _stage(name: str) -> Stage:
    try:
        return GRAPH[name]
    except KeyError:
        raise ValueError(f"no stage {name!r}; expected one of {', '.join(GRAPH)}") from None
