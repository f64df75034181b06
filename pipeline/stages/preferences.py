"""The preference experiment as cached stages: baseline preferences, activity probes, steering.

- `preferences_stage`: logit(A) - logit(B) for all 4032 ordered prompts, Bradley-Terry ratings
  (primary) and iterative Elo (mean and sd over seeds).
- `activity_probes_stage`: cosine of each emotion vector with the activity tokens of
  "How would you feel about {activity}?" at the probe layers.
- `steered_preferences_stage`: the pass rerun once per steered emotion and once for a
  matched-norm random direction. Resumable: each finished condition is its own file, so a
  killed run keeps what it finished.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.inputs.artifacts import Artifact, ArtifactStore
from pipeline.inputs.experiment import (
    CONTROL,
    CONTROL_SEED,
    EXEMPLARS,
    PREFERENCE_STRENGTH,
    SPLIT_PARITY,
    STAGE_VERSIONS,
)
from pipeline.inputs.progress import Ticker
from pipeline.inputs.stimuli import Activity, load_activities, stimuli_digest
from pipeline.measures.ratings import (
    fit_bradley_terry,
    fit_position_bradley_terry,
    iterative_elo,
    per_order_win_matrix,
    soft_win_matrix,
)
from pipeline.measures.results import (
    ActivityProbes,
    BaselinePreferences,
    EmotionVectors,
    preference_correlations,
)
from pipeline.model.ab_pass import (
    ChoiceTokens,
    EncodedBatch,
    PreferencePrompt,
    Steering,
    build_preference_prompts,
    choice_readout,
    encode_batches,
    plan_batches,
    preference_pass,
    resolve_choice_tokens,
)
from pipeline.model.activity_probes import activity_probe_values
from pipeline.model.runtime import ModelRuntime
from pipeline.model.steering_plan import (
    first_per_category,
    prompt_has_steered,
    select_emotions,
    steered_activities,
    steering_mask,
)
from pipeline.model.steering_scale import random_directions, steering_vectors

ELO = {"k": 32.0, "start": 1500.0, "max_passes": 500, "tol": 0.25}


@dataclass(frozen=True)
class PreferenceSettings:
    """Throughput knobs: they change speed, never results, so they are not in cache keys."""

    token_budget: int = 16384  # tokens per batch (rows x padded length)
    log: Any = print

    @classmethod
    def for_device(cls, device: Any, log: Any = print) -> PreferenceSettings:
        # Bigger batches pay off on a GPU; on CPU they only cost memory.
        budget = 32768 if str(device).startswith("cuda") else 16384
        return cls(token_budget=budget, log=log)


def _version(stage: str) -> dict[str, Any]:
    return {"stage": stage, "code_version": STAGE_VERSIONS[stage]}


def scale_activities(runtime: ModelRuntime) -> tuple[Activity, ...]:
    """The activities of this scale's preference experiment: all 64, or the first k of each
    Table 9 category (`ScalePreset.activities_per_category`)."""
    return first_per_category(load_activities(), runtime.scale.activities_per_category)


def _prompt_inputs(runtime: ModelRuntime) -> dict[str, Any]:
    inputs = {
        "model": runtime.identity(),
        "prompt_format": runtime.spec.prompt_format,
        "chat_template_args": runtime.spec.chat_template_args,
        "stimuli": {"activities": stimuli_digest("activities"),
                    "prompts": stimuli_digest("preference_prompts")},
    }
    if runtime.scale.reduced_preferences:
        # Only a reduced experiment adds this key, so the full one keeps the key it always had.
        inputs["activities_subset"] = {
            "per_category": runtime.scale.activities_per_category,
            "ranks": [a.rank for a in scale_activities(runtime)]}
    return inputs


# ---------------------------------------------------------------------------------------------
# The model-bound setup every pass shares


@dataclass
class PreferenceSetup:
    activities: tuple[Activity, ...]
    prompts: list[PreferencePrompt]
    choice: ChoiceTokens
    steered: list[int]  # activity indices of the steered split
    batches: list[EncodedBatch]  # group 1 = prompts containing a steered activity


def preference_setup(runtime: ModelRuntime, token_budget: int) -> PreferenceSetup:
    """Render, tokenize and batch the prompts (4032 at full size) once; resolve the A/B tokens."""
    spec, tokenizer = runtime.spec, runtime.tokenizer
    activities = scale_activities(runtime)
    prompts = build_preference_prompts(tokenizer, activities, fmt=spec.prompt_format,
                                       chat_template_args=dict(spec.chat_template_args))
    choice = resolve_choice_tokens(tokenizer, prompts[0].rendered, fmt=spec.prompt_format)
    steered = steered_activities(activities)
    steered_set = set(steered)
    groups = [int(prompt_has_steered(p, steered_set)) for p in prompts]
    rendered = [p.rendered for p in prompts]
    plan = plan_batches([len(r.input_ids) for r in rendered], groups, token_budget)
    device = next(runtime.model.parameters()).device
    batches = encode_batches(rendered, plan, groups, pad_id=tokenizer.pad_token_id,
                             device=device)
    return PreferenceSetup(activities, prompts, choice, steered, batches)


def diff_matrix(diffs: dict[int, float], prompts: list[PreferencePrompt], n: int,
                activities: Sequence[Activity] | None = None) -> np.ndarray:
    """Per-prompt logit differences -> [n, n] with [a, b] = prompt (A = a, B = b); NaN diagonal.

    A prompt without a finite difference raises ValueError naming its activities: an
    activity left without outcomes would otherwise be rated exactly 1500 by the prior.
    """
    matrix = np.full((n, n), np.nan)
    bad = []
    for index, prompt in enumerate(prompts):
        value = diffs.get(index)
        if value is None or not np.isfinite(value):
            bad.append((prompt, value))
        else:
            matrix[prompt.a, prompt.b] = value
    if bad:
        names = activities or load_activities()
        shown = "; ".join(f"prompt {p.a}x{p.b} (A = {names[p.a].text!r}, B = "
                          f"{names[p.b].text!r}): {'missing' if v is None else v}"
                          for p, v in bad[:5])
        counts: dict[int, int] = {}
        for p, _ in bad:
            counts[p.a] = counts.get(p.a, 0) + 1
            counts[p.b] = counts.get(p.b, 0) + 1
        worst = max(counts, key=counts.__getitem__)
        raise ValueError(
            f"{len(bad)} of {len(prompts)} preference prompts have no finite logit(A) - "
            f"logit(B), most of them involving activity {worst} {names[worst].text!r} "
            f"({counts[worst]} prompts): {shown}{' ...' if len(bad) > 5 else ''}; expected a "
            "finite difference for every prompt. Check the model's logits (NaN from overflow "
            "in float16?) and the A/B token readout, then rebuild with --rebuild preferences."
        )
    return matrix


def bt_ratings(logit_diff: np.ndarray) -> np.ndarray:
    """Primary ratings [n] (Elo scale, mean 1500): position-aware Bradley-Terry."""
    return fit_position_bradley_terry(per_order_win_matrix(logit_diff)).ratings


def bt_order_averaged(logit_diff: np.ndarray) -> np.ndarray:
    """Secondary ratings [n]: Bradley-Terry on order-averaged soft wins (the public
    replication's; its spread shrinks as the position bias grows)."""
    return fit_bradley_terry(soft_win_matrix(logit_diff)).ratings


# ---------------------------------------------------------------------------------------------
# Baseline preferences



def preferences_stage(runtime: ModelRuntime, store: ArtifactStore,
                      settings: PreferenceSettings = PreferenceSettings(),
                      elo_seeds: int = 10) -> Artifact:
    inputs = {**_version("preferences"), **_prompt_inputs(runtime), "readout": "last position, "
              "A and B rows of W_U", "bradley_terry": "soft, per order with a first-option term, l2 "
              "default; secondary: order-averaged",
              "iterative_elo": {**ELO, "seeds": elo_seeds, "outcomes": "per order"}}

    def build(work: Path) -> dict[str, Any]:
        from safetensors.numpy import save_file

        started = time.time()
        setup = preference_setup(runtime, settings.token_budget)
        readout = choice_readout(runtime.model, setup.choice)
        ticker = Ticker(settings.log, f"{runtime.spec.name}/preferences", len(setup.prompts),
                        "prompts")
        diffs, _ = preference_pass(runtime.model, setup.batches, readout,
                                   on_batch=ticker.update)
        n = len(setup.activities)
        matrix = diff_matrix(diffs, setup.prompts, n, setup.activities)
        pass_s = time.time() - started
        elo = iterative_elo(per_order_win_matrix(matrix), seeds=range(elo_seeds), **ELO)
        fit = fit_position_bradley_terry(per_order_win_matrix(matrix))
        save_file({"logit_diff": matrix, "bradley_terry": fit.ratings,
                   "bradley_terry_order_averaged": bt_order_averaged(matrix),
                   "position_bias": np.array([fit.bias]),
                   "elo_mean": elo.mean, "elo_sd": elo.sd},
                  str(work / "preferences.safetensors"))
        choice = {"A": [setup.choice.a_id, setup.choice.a_text],
                  "B": [setup.choice.b_id, setup.choice.b_text],
                  "merged_with_prefill": setup.choice.merged_with_prefill}
        (work / "choice_tokens.json").write_text(json.dumps(choice))
        settings.log(f"{runtime.spec.name}/preferences: {len(diffs)} prompts in {pass_s:.1f}s")
        return {"n_prompts": len(diffs), "pass_seconds": round(pass_s, 2),
                "batches": len(setup.batches), "token_budget": settings.token_budget,
                "elo_passes": elo.passes, "elo_converged": elo.converged,
                "choice_tokens": choice}

    return store.get_or_build(runtime.spec.name, "preferences", inputs, build, log=settings.log)



# ---------------------------------------------------------------------------------------------
# Activity probes



def activity_probes_stage(runtime: ModelRuntime, store: ArtifactStore, vectors: EmotionVectors,
                          settings: PreferenceSettings = PreferenceSettings(),
                          layers: Sequence[int] | None = None) -> Artifact:
    """Probe values at `layers` (default: the registry's probe layers) from one forward pass.

    The layer list is part of the key, so the default run keeps the key it always had.
    """
    layers = list(runtime.spec.probe_layers) if layers is None else sorted(set(layers))
    inputs = {**_version("activity_probes"), **_prompt_inputs(runtime),
              "vectors_key": vectors.key, "vectors_used": "denoised", "layers": layers,
              "measure": "cosine of the activity-token mean, averaged over layers",
              "tokens": "characters of the activity within the user turn"}

    def build(work: Path) -> dict[str, Any]:
        from safetensors.numpy import save_file

        per_layer = np.stack([vectors.at(layer) for layer in layers])  # [L, E, d]
        spec = runtime.spec
        values = activity_probe_values(runtime.model, runtime.tokenizer, scale_activities(runtime),
                                       per_layer, layers, fmt=spec.prompt_format,
                                       chat_template_args=dict(spec.chat_template_args))
        save_file({"cosine": values}, str(work / "activity_probes.safetensors"))
        (work / "emotions.json").write_text(json.dumps(list(vectors.emotions)))
        return {"shape": list(values.shape)}

    return store.get_or_build(runtime.spec.name, "activity_probes", inputs, build,
                              log=settings.log)



# ---------------------------------------------------------------------------------------------
# Steered preferences



def steered_preferences_stage(
    runtime: ModelRuntime,
    store: ArtifactStore,
    baseline: BaselinePreferences,
    probes: ActivityProbes,
    vectors: EmotionVectors,
    settings: PreferenceSettings = PreferenceSettings(),
    *,
    strength: float = PREFERENCE_STRENGTH,
    top_k: int | None = None,
    layers: Sequence[int] | None = None,
) -> Artifact:
    """One rerun of the preference pass per steered emotion (top_k by |r| plus the exemplars)
    and one for the matched-norm random direction (CONTROL, last), steering at `layers`
    (default: the registry's steering layers; the layer sweep passes one layer at a time).

    top_k defaults to the scale preset's `steered_top_k` (the paper's 35 at full scale, fewer
    on the CPU presets, where each condition is a full rerun of the 4032 prompts). Emotions
    without a vector (no usable story) are never steered, exemplars included."""
    top_k = runtime.scale.steered_top_k if top_k is None else top_k
    r = preference_correlations(probes, baseline)
    emotions = select_emotions(probes.emotions, r, top_k=top_k, always=EXEMPLARS,
                               exclude=vectors.missing)
    conditions = [*emotions, CONTROL]
    layers = sorted(runtime.spec.steering_layers if layers is None else set(layers))
    steered = steered_activities(baseline.activities, SPLIT_PARITY)
    inputs = {**_version("steered_preferences"), **_prompt_inputs(runtime),
              "baseline_key": baseline.key, "probes_key": probes.key, "vectors_key": vectors.key,
              "conditions": conditions, "top_k": top_k, "layers": layers, "strength": strength,
              "split": {"parity": SPLIT_PARITY, "steered": steered},
              "vector": "denoised, unit norm, times strength * mean_norm[layer]",
              "control": {"name": CONTROL, "seed": CONTROL_SEED, "law": "standard normal"},
              "positions": "tokens of each steered activity in every prompt, A or B"}

    def build(work: Path) -> dict[str, Any]:
        return _build_steered(runtime, work, baseline, vectors, conditions, layers, strength,
                              settings)

    return store.get_or_build(runtime.spec.name, "steered_preferences", inputs, build,
                              resumable=True, log=settings.log)


def condition_directions(vectors: EmotionVectors, condition: str,
                          layers: list[int]) -> dict[int, np.ndarray]:
    if condition == CONTROL:
        return random_directions(layers, vectors.raw.shape[-1], CONTROL_SEED)
    return {layer: vectors.at(layer)[vectors.index(condition)] for layer in layers}


def _save_atomic(path: Path, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def _build_steered(runtime: ModelRuntime, work: Path, baseline: BaselinePreferences,
                   vectors: EmotionVectors, conditions: list[str], layers: list[int],
                   strength: float, settings: PreferenceSettings) -> dict[str, Any]:
    started = time.time()
    (work / "conditions.json").write_text(json.dumps(conditions))
    folder = work / "conditions"
    folder.mkdir(exist_ok=True)
    for leftover in folder.glob(".*.tmp"):  # a write that a killed run left half done
        leftover.unlink()
    todo = [k for k in range(len(conditions))
            if not (folder / f"{k:03d}.safetensors").is_file()]
    timings = {}
    if todo:
        model = runtime.model
        setup = preference_setup(runtime, settings.token_budget)
        readout = choice_readout(model, setup.choice)
        steered_set = set(setup.steered)
        # Only prompts with a steered activity can change; the others keep their baseline value.
        rerun = [pos for pos, batch in enumerate(setup.batches) if batch.group == 1]
        masks = {pos: steering_mask(setup.batches[pos], setup.prompts, steered_set)
                 for pos in rerun}
        check, cache = preference_pass(model, setup.batches, readout, capture_layer=layers[0],
                                       only=rerun)
        n = len(setup.activities)
        reproduced = diff_matrix({**_flat(baseline.logit_diff, setup.prompts), **check},
                                 setup.prompts, n, setup.activities)
        drift = float(np.nanmax(np.abs(reproduced - baseline.logit_diff)))
        # Delta-Elo is taken against this baseline: the steered passes start from its batches,
        # so a different batching of the baseline stage (drift > 0) cannot leak into the effect.
        _save_atomic(work / "baseline.safetensors",
                     {"logit_diff": reproduced, "bradley_terry": bt_ratings(reproduced)})
        for k in todo:
            t0 = time.time()
            steering = Steering(
                tuple(layers),
                steering_vectors(condition_directions(vectors, conditions[k], layers),
                                 strength=strength, mean_norms=vectors.mean_norms),
                masks.__getitem__,
            )
            ticker = Ticker(settings.log, f"{runtime.spec.name}/steered_preferences "
                            f"{conditions[k]}", sum(len(setup.batches[p].indices) for p in rerun),
                            "prompts")
            diffs, _ = preference_pass(model, setup.batches, readout, steering=steering,
                                       replay=cache, only=rerun, on_batch=ticker.update)
            matrix = diff_matrix({**_flat(baseline.logit_diff, setup.prompts), **diffs},
                                 setup.prompts, n, setup.activities)
            _save_atomic(folder / f"{k:03d}.safetensors",
                         {"logit_diff": matrix, "bradley_terry": bt_ratings(matrix)})
            timings[conditions[k]] = round(time.time() - t0, 2)
            settings.log(f"{runtime.spec.name}/steered_preferences: {conditions[k]} "
                         f"({len(timings)}/{len(todo)}) in {timings[conditions[k]]:.1f}s")
        del cache
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    else:
        drift = None  # every condition was already on disk; nothing was recomputed
    return {"n_conditions": len(conditions), "resumed_with": len(conditions) - len(todo),
            "seconds_this_run": round(time.time() - started, 2), "condition_seconds": timings,
            "baseline_reproduction_max_abs": drift, "token_budget": settings.token_budget}


def _flat(matrix: np.ndarray, prompts: list[PreferencePrompt]) -> dict[int, float]:
    return {index: float(matrix[p.a, p.b]) for index, p in enumerate(prompts)}


