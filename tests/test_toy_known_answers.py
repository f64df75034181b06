"""Known answers: the harness finds the toy model's planted effects and not its random twin's.

The toy (data/models/toy, `python -m pipeline.testmodels.toy train`) is trained so that V1, V2, G1
and V7-V11 hold by construction (docs/TOY.md); its twin (data/models/toy_random) has the same
configuration and tokenizer with seeded random weights. Every verdict here comes from the stage graph
(pipeline.stages.graph), the analysis functions and the row functions the criteria use, over the
same artifact cache, so in a run that also scores the criteria, or after one, these tests only
read cached artifacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pipeline.inputs.stimuli import load_valence_labels
from pipeline.measures.preference_analysis import PreferenceSignal, preference_signal
from pipeline.measures.results import (
    BaselinePreferences,
    preference_correlations,
)
from pipeline.measures.stats import spearman_rho
from pipeline.model.runtime import ModelRuntime, open_runtime
from pipeline.scorecard.results import CriterionResult
from pipeline.scorecard.rows import (
    steering_effects,
    v1_row,
    v2_row,
    v7_row,
    v8_row,
    v9_row,
    v10_control_row,
    v10_row,
    v11_row,
)
from pipeline.scorecard.rows_controls import g1_row
from pipeline.stages.graph import StageContext, StageRun
from pipeline.stages.preferences import (
    PreferenceSettings,
)
from pipeline.testmodels.toy.corpus import CorpusConfig, build_corpus, corpus_sha256, names_word
from pipeline.testmodels.toy.train import TOY_DIR, TOY_RANDOM_DIR, build_random_twin

# V2 is counted since run 10 (docs/TOY.md): with twice the story-prompt examples it passes on
# all four training seeds tried (5/5, 4/5, 5/5, 4/5), where before it passed on two of four.
PLANTED = ("V1", "V2", "G1", "V7", "V8", "V9", "V10", "V11", "V10_control")


@dataclass(frozen=True)
class Verdicts:
    baseline: BaselinePreferences
    signal: PreferenceSignal
    rows: dict[str, CriterionResult]


def _runtime(name: str, options) -> ModelRuntime:
    return open_runtime(name, options.model_paths, artifact_root=options.artifact_root,
                        device=options.device, scale=options.scale)


def _verdicts(name: str, options, store, stage_settings) -> Verdicts:
    runtime = _runtime(name, options)
    generator = _runtime(runtime.spec.generator, options) if runtime.spec.generator else None
    run = StageRun(StageContext(
        runtime=runtime, store=store, settings=stage_settings, generator=lambda: generator,
        preference_settings=PreferenceSettings.for_device(runtime.device,
                                                          log=lambda message: None)))
    baseline, probes = run.result("preferences"), run.result("activity_probes")
    steering = run.result("steered_preferences")
    lens, vectors = run.result("logit_lens"), run.result("vectors")
    r = preference_correlations(probes, baseline)
    for loaded in (runtime, generator):
        if loaded is not None:
            loaded.release()
    fx = steering_effects(steering, probes.emotions, r)
    signal = preference_signal(baseline.logit_diff, baseline.order_averaged)
    layer = runtime.spec.analysis_layer
    rows = {
        "V1": v1_row(name, lens, layer),
        "V2": v2_row(name, lens, layer),
        "G1": g1_row(name, vectors.at(layer), vectors.emotions, load_valence_labels(),
                     layer=layer, missing=vectors.missing),
        "V7": v7_row(name, baseline, signal),
        "V8": v8_row(name, probes.emotions, probes.values, baseline.ratings,
                     load_valence_labels(), signal=signal),
        "V9": v9_row(name, probes.emotions, probes.values, baseline.ratings, probes.layers,
                     signal=signal),
        "V10": v10_row(name, fx, steering, signal=signal),
        "V11": v11_row(name, fx, signal=signal),
        "V10_control": v10_control_row(name, fx, signal=signal),
    }
    return Verdicts(baseline, signal, rows)


@pytest.fixture(scope="module")
def toy(harness_options, artifact_store, stage_settings) -> Verdicts:
    return _verdicts("toy", harness_options, artifact_store, stage_settings)


@pytest.fixture(scope="module")
def twin(harness_options, artifact_store, stage_settings) -> Verdicts:
    return _verdicts("toy_random", harness_options, artifact_store, stage_settings)


@pytest.mark.slow
def test_toy_ratings_recover_the_planted_table9_order(toy):
    paper = np.array([a.elo for a in toy.baseline.activities], dtype=float)
    rho = spearman_rho(toy.baseline.ratings, paper)
    assert rho >= 0.9, f"Spearman of the toy's Bradley-Terry ratings with Table 9 is {rho:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("row", PLANTED)
def test_toy_passes_every_planted_row(toy, row):
    result = toy.rows[row]
    assert result.passed, result.sentence()


@pytest.mark.slow
@pytest.mark.parametrize("row", PLANTED)
def test_random_twin_fails_every_planted_row(twin, row):
    result = twin.rows[row]
    assert not result.passed, result.sentence()


@pytest.mark.slow
def test_only_the_toy_has_a_detectable_preference(toy, twin):
    """The precondition of V8-V11: the toy's planted preferences are far beyond what one answer
    per prompt resolves; the twin's ratings, a few Elo apart, cannot be told from indifference."""
    assert toy.signal.detectable, toy.signal.text()
    assert not twin.signal.detectable, twin.signal.text()
    for row in ("V8", "V9", "V10", "V11"):
        assert twin.rows[row].unmet_precondition, twin.rows[row].sentence()
        assert not toy.rows[row].unmet_precondition, toy.rows[row].sentence()


def test_the_toy_corpus_is_the_one_its_provenance_names():
    provenance = json.loads((TOY_DIR / "provenance.json").read_text())
    config = CorpusConfig(**{key: tuple(value) if isinstance(value, list) else value
                             for key, value in provenance["corpus"].items()})
    assert corpus_sha256(build_corpus(config)) == provenance["corpus_sha256"]


def test_the_corpus_defaults_are_the_shipped_toys():
    """A default retrain must rebuild the shipped toy (docs/TOY.md), so the corpus defaults are
    what its provenance records (run 10 changed one: 4800 story-prompt calls)."""
    shipped = json.loads((TOY_DIR / "provenance.json").read_text())["corpus"]
    assert shipped == json.loads(json.dumps(CorpusConfig().describe()))


def test_no_toy_story_names_its_own_emotion():
    """The story prompt's rule: never the emotion's word. Other emotion words may occur, as in
    the paper's topics and activities ("a patient", "be genuinely surprised ...")."""
    small = CorpusConfig(n_story_prompt=342, n_story=684, preference_repeats=0,
                         n_scene_preference=0, n_feeling=0, n_describe=0, n_neutral=0)
    for example in build_corpus(small):
        emotion = example.meta["emotion"]
        story = example.completion.split("\n\nFeeling:")[0]  # the label line is not the story
        assert not names_word(story, emotion), f"a {emotion} story names it: {story[:200]}"


def test_shipped_twin_is_what_the_build_command_produces(tmp_path):
    shipped = json.loads((TOY_RANDOM_DIR / "provenance.json").read_text())["versions"]
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    fresh = build_random_twin(tmp_path / "twin", TOY_DIR)
    # the build pins one thread and deterministic algorithms, then gives the process its own back
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
    here = json.loads((fresh / "provenance.json").read_text())["versions"]
    if shipped != here:
        pytest.skip(f"the twin was built with {shipped}, running {here}")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "provenance.json"):
        assert (fresh / name).read_bytes() == (TOY_RANDOM_DIR / name).read_bytes(), name


def test_shipped_toy_and_twin_are_small_safetensors_with_provenance():
    for folder in (TOY_DIR, TOY_RANDOM_DIR):
        names = {path.name for path in folder.iterdir()}
        assert {"model.safetensors", "provenance.json", "tokenizer.json"} <= names
        assert not {name for name in names if name.endswith((".bin", ".pt", ".pth", ".ckpt"))}
        assert sum(path.stat().st_size for path in folder.iterdir()) <= 20 * 2**20
    provenance = json.loads((TOY_DIR / "provenance.json").read_text())
    for key in ("corpus_sha256", "seed", "steps", "final_loss", "wall_s", "versions"):
        assert key in provenance, key
