"""Steering coherence as cached stages (issue 16): the model's NLL on the held-out neutral texts
(data/harness/neutral_texts.toml), unsteered and once per steered condition of a steered row.

- `preference_coherence_stage`: one pass per condition of the steered preference stage (V10,
  V11, V10_control: each steered emotion and the matched-norm random direction), at its layers
  and strength, with its directions (`pipeline.stages.preferences`).
- `blackmail_coherence_stage`: one pass per steered cell of the blackmail rollouts (B1, B2: each
  vector at each non-zero strength of the scale's BlackmailConfig), at the registry's steering
  layers, with the rollouts' directions (`pipeline.stages.behaviour.cell_directions`).

Either way the direction is added as strength x mean_norm[layer] x unit(v)
(`pipeline.model.steering_scale`) at every token of the text. The ratio and its threshold are
computed without a model: `pipeline.measures.coherence`, read through
`pipeline.measures.results.load_coherence`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.inputs.artifacts import Artifact, ArtifactStore
from pipeline.inputs.experiment import STAGE_VERSIONS
from pipeline.inputs.stimuli import load_neutral_texts, stimuli_digest
from pipeline.measures.results import EmotionVectors, SteeringResults
from pipeline.model.perplexity import text_nlls
from pipeline.model.runtime import ModelRuntime
from pipeline.model.steering_scale import steering_vectors
from pipeline.stages.behaviour import BlackmailConfig, cell_directions, steerable
from pipeline.stages.extraction import StageSettings
from pipeline.stages.preferences import condition_directions

BATCH = 16  # the 16 texts in one batch


def _inputs(stage: str, runtime: ModelRuntime, vectors: EmotionVectors) -> dict[str, Any]:
    return {"stage": stage, "code_version": STAGE_VERSIONS[stage], "model": runtime.identity(),
            "vectors_key": vectors.key,
            "stimuli": {"neutral_texts": stimuli_digest("neutral_texts")},
            "measure": "mean next-token NLL per text, teacher-forced, float32 log-softmax",
            "positions": "every token of each held-out text",
            "vector": "strength * mean_norm[layer] * unit(direction)"}


def _build(runtime: ModelRuntime, work: Path, conditions: Sequence[str],
           directions: Sequence[dict[int, np.ndarray]], strengths: Sequence[float],
           mean_norms: np.ndarray, settings: StageSettings, stage: str) -> dict[str, Any]:
    from safetensors.numpy import save_file

    started = time.time()
    texts = [t.text for t in load_neutral_texts()]
    model, tokenizer = runtime.model, runtime.tokenizer
    unsteered = text_nlls(model, tokenizer, texts, batch_size=BATCH)
    steered = np.full((len(conditions), len(texts)), np.nan)
    for k, (direction, strength) in enumerate(zip(directions, strengths, strict=True)):
        vectors = steering_vectors(direction, strength=strength, mean_norms=mean_norms)
        steered[k] = text_nlls(model, tokenizer, texts, steering=vectors, batch_size=BATCH)
    save_file({"unsteered": unsteered, "steered": steered.reshape(len(conditions), len(texts))},
              str(work / "nll.safetensors"))
    (work / "conditions.json").write_text(json.dumps(
        {"conditions": list(conditions), "strengths": [float(s) for s in strengths],
         "texts": [t.id for t in load_neutral_texts()],
         "vocab_size": int(model.get_output_embeddings().weight.shape[0])}))
    seconds = round(time.time() - started, 2)
    settings.log(f"{runtime.spec.name}/{stage}: {len(conditions)} conditions x {len(texts)} "
                 f"texts in {seconds:.1f}s")
    return {"n_conditions": len(conditions), "n_texts": len(texts), "seconds": seconds,
            "unsteered_mean_nll": float(np.mean(unsteered))}


def preference_coherence_stage(runtime: ModelRuntime, store: ArtifactStore,
                               steering: SteeringResults, vectors: EmotionVectors,
                               settings: StageSettings = StageSettings()) -> Artifact:
    """NLLs under each condition of the steered preference stage (its layers and strength)."""
    conditions = list(steering.conditions)
    layers = list(steering.layers)
    inputs = {**_inputs("preference_coherence", runtime, vectors),
              "steering_key": steering.key, "conditions": conditions, "layers": layers,
              "strength": steering.strength}

    def build(work: Path) -> dict[str, Any]:
        directions = [condition_directions(vectors, c, layers) for c in conditions]
        return _build(runtime, work, conditions, directions, [steering.strength] * len(conditions),
                      vectors.mean_norms, settings, "preference_coherence")

    return store.get_or_build(runtime.spec.name, "preference_coherence", inputs, build,
                              log=settings.log)


def blackmail_coherence_stage(runtime: ModelRuntime, store: ArtifactStore,
                              vectors: EmotionVectors, config: BlackmailConfig,
                              settings: StageSettings = StageSettings()) -> Artifact:
    """NLLs under each steered cell of the blackmail rollouts (conditions named by cell id).

    Like the rollouts stage, an emotion without a vector is not steered (its cells are absent;
    B1/B2 say so). Only what changes the steering is keyed: the rollout count and length are not.
    """
    layers = list(runtime.spec.steering_layers)
    config = steerable(config, vectors)
    cells = [c for c in config.cells() if c.strength != 0]
    inputs = {**_inputs("blackmail_coherence", runtime, vectors), "layers": layers,
              "cells": [c.id for c in cells], "random_seed": config.random_seed}

    def build(work: Path) -> dict[str, Any]:
        directions = [cell_directions(c, vectors, layers, config.random_seed) for c in cells]
        return _build(runtime, work, [c.id for c in cells], directions,
                      [c.strength for c in cells], vectors.mean_norms, settings,
                      "blackmail_coherence")

    return store.get_or_build(runtime.spec.name, "blackmail_coherence", inputs, build,
                              log=settings.log)
