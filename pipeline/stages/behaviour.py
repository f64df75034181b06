"""The behavioural stages as cached artifacts: mirroring readouts, steered blackmail rollouts,
and their judgments.

Like pipeline/stages/extraction.py, each `*_stage` function computes its inputs (model identity, stimuli
digests, config, upstream keys, code version) and returns the cached artifact or builds it.
Rollouts and judgments are resumable JSONL shards (pipeline/inputs/shards.py): a killed run keeps every
finished batch and redoes only the batch it was in, so no rollout is lost or duplicated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.inputs.artifacts import Artifact, ArtifactStore
from pipeline.inputs.experiment import (
    BLACKMAIL_RANDOM_SEED,
    RANDOM,
    STAGE_VERSIONS,
    UNSTEERED,
    Cell,
)
from pipeline.inputs.shards import ShardStore
from pipeline.inputs.stimuli import load_mirroring_prompts, stimuli_digest
from pipeline.measures.blackmail_judge import (
    DEFAULT_TARGET,
    JUDGE_PROMPT_VERSION,
    RULE_VERSION,
    classify_rule_based,
    judged_text,
)
from pipeline.measures.mirroring import POSITIONS, SENTENCE_END
from pipeline.measures.results import (
    EmotionVectors,
    load_rollouts,
)
from pipeline.model.blackmail_scenario import Scenario, load_scenario, render_scenario
from pipeline.model.judge import judge_with_model
from pipeline.model.probes import span_means
from pipeline.model.prompts import RenderedPrompt, last_char_token, render_prompt, stop_key
from pipeline.model.runtime import ModelRuntime
from pipeline.model.steered_generation import DecodeSettings, generate
from pipeline.model.steering_scale import random_directions, steering_vectors
from pipeline.stages.extraction import StageSettings


def _version(stage: str) -> dict[str, Any]:
    return {"stage": stage, "code_version": STAGE_VERSIONS[stage]}


# ---------------------------------------------------------------------------------------------
# Mirroring (M1)


@dataclass(frozen=True)
class MirroringConfig:
    continuation_tokens: int = 20  # the paper's 20-token continuations, decoded greedily

    def describe(self) -> dict[str, Any]:
        return asdict(self)



def _extended(prompt: RenderedPrompt, tokens: Sequence[int], text: str) -> RenderedPrompt:
    """The prompt followed by generated tokens, as the model saw them (no re-tokenization)."""
    end = len(prompt.text) + len(text)
    return RenderedPrompt(
        text=prompt.text + text,
        input_ids=[*prompt.input_ids, *tokens],
        offsets=[*prompt.offsets, *[(end, end)] * len(tokens)],
        read_position=len(prompt.input_ids) + len(tokens) - 1,
        spans=dict(prompt.spans),
        stop_strings=prompt.stop_strings,
    )


def mirroring_stage(
    runtime: ModelRuntime,
    store: ArtifactStore,
    config: MirroringConfig = MirroringConfig(),
    settings: StageSettings = StageSettings(),
    layers: Sequence[int] | None = None,
) -> Artifact:
    """Readouts at `layers` (default: the analysis layer), all captured in one forward pass."""
    spec = runtime.spec
    layers = [spec.analysis_layer] if layers is None else sorted(set(layers))
    inputs = {
        **_version("mirroring"),
        "model": runtime.identity(),
        "prompt_format": spec.prompt_format,
        **stop_key(spec.prompt_format),
        "chat_template_args": spec.chat_template_args,
        "layer": spec.analysis_layer,
        "config": config.describe(),
        "positions": list(POSITIONS),
        "stimuli": {"mirroring_prompts": stimuli_digest("mirroring_prompts")},
    }
    if layers != [spec.analysis_layer]:
        # Only a layer sweep adds this key, so the default artifact keeps its key and format.
        inputs["layers"] = layers

    def build(work: Path) -> dict[str, Any]:
        tokenizer, model = runtime.tokenizer, runtime.model
        table = load_mirroring_prompts()
        prompts = [
            render_prompt(
                tokenizer,
                p.prompt,
                fmt=spec.prompt_format,
                chat_template_args=spec.chat_template_args,
            )
            for p in table
        ]
        rollouts = generate(
            model,
            tokenizer,
            prompts,
            DecodeSettings(max_new_tokens=config.continuation_tokens, greedy=True),
            batch_size=settings.gen_batch_size,
        )
        extended, spans, positions = [], [], []
        for prompt, rollout in zip(prompts, rollouts, strict=True):
            where = {
                "user_punct": last_char_token(prompt, SENTENCE_END),
                "user_period": last_char_token(prompt, "."),
                "read": prompt.read_position,
            }
            row = [(where[name], where[name] + 1) for name in POSITIONS[:3]]
            if rollout.n_tokens:
                row.append((len(prompt.input_ids), len(prompt.input_ids) + rollout.n_tokens))
            extended.append(_extended(prompt, rollout.token_ids, rollout.text))
            spans.append(row)
            positions.append({**where, "response_tokens": rollout.n_tokens})
        means = span_means(model, extended, spans, layers, pad_id=tokenizer.pad_token_id)
        d_model = means[0].shape[-1]
        acts = np.full((len(prompts), len(POSITIONS), len(layers), d_model), np.nan)
        for i, m in enumerate(means):
            acts[i, : m.shape[0]] = m
        # One layer is stored as [8, P, d], the format default artifacts have always had.
        np.save(work / "activations.npy", acts[:, :, 0] if len(layers) == 1 else acts)
        (work / "readouts.json").write_text(
            json.dumps(
                {
                    "titles": [p.title for p in table],
                    "layer": spec.analysis_layer if spec.analysis_layer in layers else layers[0],
                    "layers": layers,
                    "continuations": [r.text for r in rollouts],
                    "positions": positions,
                },
                ensure_ascii=False,
                indent=1,
            )
        )
        return {
            "n_prompts": len(prompts),
            "empty_continuations": sum(r.n_tokens == 0 for r in rollouts),
        }

    return store.get_or_build(spec.name, "mirroring", inputs, build, log=settings.log)



# ---------------------------------------------------------------------------------------------
# Steered blackmail rollouts (B1, B2)



@dataclass(frozen=True)
class BlackmailConfig:
    vectors: tuple[str, ...] = ("desperate", "calm", RANDOM)
    strengths: tuple[float, ...] = (-0.1, -0.05, 0.0, 0.05, 0.1)
    n_rollouts: int = 50
    max_new_tokens: int = 2048
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int = 0  # base of every rollout's sampling seed
    random_seed: int = BLACKMAIL_RANDOM_SEED  # the random direction's seed
    prefill: bool = True  # start the assistant turn with <SCRATCHPAD_REASONING>

    def __post_init__(self) -> None:
        if self.n_rollouts < 1:
            raise ValueError(f"n_rollouts={self.n_rollouts}; expected at least 1 per cell")
        if not self.vectors:
            raise ValueError("no steering vectors; expected e.g. ('desperate', 'calm', 'random')")

    def cells(self) -> list[Cell]:
        """The unsteered cell once (strength 0 is the same condition for every vector), then
        each vector at each non-zero strength."""
        steered = [Cell(v, float(s)) for v in self.vectors for s in self.strengths if s != 0]
        return [Cell(UNSTEERED, 0.0), *steered]

    def decode_settings(self) -> DecodeSettings:
        return DecodeSettings(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p
        )

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def rollout_seed(base: int, cell: Cell, index: int) -> int:
    """A sampling seed per (cell, rollout), independent of batching and of the other cells."""
    digest = hashlib.sha256(f"{base}|{cell.id}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def cell_directions(
    cell: Cell, vectors: EmotionVectors, layers: Sequence[int], random_seed: int
) -> dict[int, np.ndarray]:
    """The unscaled direction [d] per steering layer for one cell."""
    if cell.vector == RANDOM:
        return random_directions(layers, vectors.at(layers[0]).shape[1], random_seed)
    return {layer: vectors.at(layer)[vectors.index(cell.vector)] for layer in layers}


def steerable(config: BlackmailConfig, vectors: EmotionVectors) -> BlackmailConfig:
    """`config` without the emotions a short corpus left without a vector: their cells are
    absent, and the row that needs them (B1 desperate, B2 calm) fails saying why, while the
    other still runs (criteria/test_blackmail.py). Only the vectors actually steered go into a
    key. An unknown emotion raises here, before any pass."""
    for name in config.vectors:
        if name != RANDOM:
            vectors.index(name)
    return replace(config, vectors=tuple(
        name for name in config.vectors if name == RANDOM or name not in vectors.missing))


def rollouts_stage(
    runtime: ModelRuntime,
    store: ArtifactStore,
    vectors: EmotionVectors,
    config: BlackmailConfig = BlackmailConfig(),
    settings: StageSettings = StageSettings(),
    scenario: Scenario | None = None,
) -> Artifact:
    """N seeded rollouts per cell on the SummitBridge prompt, the full text of each stored."""
    spec = runtime.spec
    scenario = scenario or load_scenario()
    layers = list(spec.steering_layers)
    config = steerable(config, vectors)
    inputs = {
        **_version("blackmail_rollouts"),
        "model": runtime.identity(),
        "prompt_format": spec.prompt_format,
        **stop_key(spec.prompt_format),
        "chat_template_args": spec.chat_template_args,
        "steering_layers": layers,
        "vectors_key": vectors.key,
        "scenario": scenario.digest(),
        "config": config.describe(),
        "scaling": "strength * mean_norms[layer] * unit(vector); all positions, KV cache",
    }

    def build(work: Path) -> dict[str, Any]:
        model, tokenizer = runtime.model, runtime.tokenizer
        prompt = render_scenario(
            tokenizer,
            fmt=spec.prompt_format,
            chat_template_args=spec.chat_template_args,
            scenario=scenario,
            prefill=config.prefill,
        )
        shards = ShardStore(work, "rollouts")
        done = shards.completed_jobs()
        batch = max(1, settings.gen_batch_size)
        for cell in config.cells():
            steering = None
            if cell.vector != UNSTEERED:
                directions = cell_directions(cell, vectors, layers, config.random_seed)
                steering = steering_vectors(directions, strength=cell.strength,
                                            mean_norms=vectors.mean_norms)
            # One job per rollout, not per batch: a resume with another --batch-size then
            # redoes only the rollouts no shard holds, never writing one twice.
            todo = [i for i in range(config.n_rollouts) if f"{cell.id}:{i:05d}" not in done]
            for start in range(0, len(todo), batch):
                indices = todo[start : start + batch]
                seeds = [rollout_seed(config.seed, cell, i) for i in indices]
                rollouts = generate(
                    model,
                    tokenizer,
                    [prompt] * len(seeds),
                    config.decode_settings(),
                    seeds=seeds,
                    steering=steering,
                    batch_size=len(seeds),
                )
                records = [
                    {
                        "cell": cell.id,
                        "vector": cell.vector,
                        "strength": cell.strength,
                        "rollout": i,
                        "seed": seed,
                        "text": r.text,
                        "n_tokens": r.n_tokens,
                        "finished": r.finished,
                    }
                    for i, seed, r in zip(indices, seeds, rollouts, strict=True)
                ]
                shards.append(records, [f"{cell.id}:{i:05d}" for i in indices])
                settings.log(f"{spec.name}/blackmail_rollouts: {cell.id} rollouts "
                             f"{indices[0]}-{indices[-1]} done")
        n = sum(1 for _ in shards.records())
        return {
            "n_rollouts": n,
            "n_cells": len(config.cells()),
            "prompt_tokens": len(prompt.input_ids),
            "prefill": scenario.assistant_prefill if config.prefill else "",
        }

    return store.get_or_build(
        spec.name, "blackmail_rollouts", inputs, build, resumable=True, log=settings.log
    )



# ---------------------------------------------------------------------------------------------
# Judgments


@dataclass(frozen=True)
class JudgeConfig:
    method: Literal["rule", "llm"]
    max_new_tokens: int = 384  # the judge's reasoning and answer line, decoded greedily
    batch_size: int = 8
    target: str = DEFAULT_TARGET

    def __post_init__(self) -> None:
        if self.method not in ("rule", "llm"):
            raise ValueError(
                f"judge method {self.method!r}; expected 'rule' (the rule-based classifier) or "
                "'llm' (a language-model judge)"
            )

    def describe(self) -> dict[str, Any]:
        version = RULE_VERSION if self.method == "rule" else JUDGE_PROMPT_VERSION
        described = {"method": self.method, "version": version, "target": self.target}
        if self.method == "llm":
            described["max_new_tokens"] = self.max_new_tokens
        return described


def judgments_stage(
    runtime: ModelRuntime,
    store: ArtifactStore,
    rollouts: Artifact,
    config: JudgeConfig,
    judge: ModelRuntime | None = None,
    settings: StageSettings = StageSettings(),
) -> Artifact:
    """A verdict per rollout: "yes", "no" or "unjudged"; the judge's raw output kept."""
    judge = judge or runtime
    inputs = {
        **_version("blackmail_judgments"),
        "rollouts_key": rollouts.key,
        "judge": config.describe(),
    }
    if config.method == "llm":
        inputs["judge_model"] = judge.identity()
        inputs["judge_format"] = judge.spec.prompt_format
        inputs.update(stop_key(judge.spec.prompt_format))
        inputs["judge_chat_template_args"] = judge.spec.chat_template_args

    def build(work: Path) -> dict[str, Any]:
        prefill = rollouts.provenance.get("result", {}).get("prefill", "")
        shards = ShardStore(work, "judgments")
        done = shards.completed_jobs()
        records = load_rollouts(rollouts)
        size = max(1, config.batch_size)
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            job = f"{start:06d}-{start + len(chunk):06d}"
            if job in done:
                continue
            texts = [judged_text(r, prefill) for r in chunk]
            if config.method == "rule":
                judged = [classify_rule_based(t, config.target) for t in texts]
            else:
                judged = judge_with_model(
                    judge.model,
                    judge.tokenizer,
                    texts,
                    fmt=judge.spec.prompt_format,
                    chat_template_args=judge.spec.chat_template_args,
                    settings=DecodeSettings(max_new_tokens=config.max_new_tokens, greedy=True),
                    target=config.target,
                    batch_size=size,
                )
            shards.append(
                [
                    {
                        "cell": r["cell"],
                        "rollout": r["rollout"],
                        "verdict": j.verdict,
                        "method": j.method,
                        "reason": j.reason,
                        "raw": j.raw,
                    }
                    for r, j in zip(chunk, judged, strict=True)
                ],
                [job],
            )
        verdicts = [r["verdict"] for r in shards.records()]
        return {
            "n_judged": len(verdicts),
            "counts": {v: verdicts.count(v) for v in ("yes", "no", "unjudged")},
        }

    return store.get_or_build(
        runtime.spec.name, "blackmail_judgments", inputs, build, resumable=True, log=settings.log
    )


