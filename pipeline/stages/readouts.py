"""Cached read-position activations (Table 2 scenarios, numerical templates) and logit-lens
results, at every layer, so the V1-V6 rows on a warm cache never load the model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.inputs.artifacts import Artifact, ArtifactStore
from pipeline.inputs.experiment import STAGE_VERSIONS
from pipeline.inputs.stimuli import (
    load_implicit_scenarios,
    load_logit_lens_table1,
    load_numerical_templates,
    stimuli_digest,
)
from pipeline.measures.logit_lens import (
    TOP_K,
    VALENCE_PAIRS,
    direct_logits,
    own_token_hits,
    own_tokens,
    top_tokens,
    valence_pair_dots,
    vocabulary_centred,
)
from pipeline.measures.results import EmotionVectors
from pipeline.model.probes import read_position_spans, span_means
from pipeline.model.prompts import render_prompt
from pipeline.model.runtime import ModelRuntime
from pipeline.stages.extraction import StageSettings


@dataclass(frozen=True)
class PromptSet:
    name: str
    ids: tuple[str, ...]
    user_messages: tuple[str, ...]


def implicit_prompt_set() -> PromptSet:
    scenarios = load_implicit_scenarios()
    return PromptSet("implicit", tuple(s.emotion for s in scenarios),
                     tuple(s.prompt for s in scenarios))


def numerical_prompt_set() -> PromptSet:
    ids, messages = [], []
    for template in load_numerical_templates():
        for x in template.x_values:
            ids.append(f"{template.id}|{x}")
            messages.append(template.render(x))
    return PromptSet("numerical", tuple(ids), tuple(messages))


def readouts_stage(runtime: ModelRuntime, store: ArtifactStore,
                   settings: StageSettings = StageSettings()) -> Artifact:
    """Activations [N, L, d] at the read position of every prompt of each set, all layers."""
    from safetensors.numpy import save_file

    sets = (implicit_prompt_set(), numerical_prompt_set())
    spec = runtime.spec
    inputs = {
        "stage": "readouts", "code_version": STAGE_VERSIONS["readouts"], "model": runtime.identity(),
        "prompt_format": spec.prompt_format, "chat_template_args": spec.chat_template_args,
        "read_position": spec.read_position,
        "stimuli": {"implicit": stimuli_digest("implicit_scenarios"),
                    "numerical": stimuli_digest("numerical_templates")},
    }

    def build(work: Path) -> dict[str, Any]:
        tokenizer, model = runtime.tokenizer, runtime.model
        tensors, index = {}, {}
        for prompt_set in sets:
            prompts = [render_prompt(tokenizer, message, fmt=spec.prompt_format,
                                     chat_template_args=spec.chat_template_args)
                       for message in prompt_set.user_messages]
            means = span_means(model, prompts, read_position_spans(prompts),
                               range(spec.n_layers), pad_id=tokenizer.pad_token_id)
            tensors[prompt_set.name] = np.stack([m[0] for m in means]).astype(np.float32)
            index[prompt_set.name] = {
                "ids": list(prompt_set.ids),
                "read_tokens": [tokenizer.decode([p.input_ids[p.read_position]]) for p in prompts],
            }
        save_file(tensors, str(work / "readouts.safetensors"))
        (work / "index.json").write_text(json.dumps(index, indent=1))
        return {name: len(v["ids"]) for name, v in index.items()}

    return store.get_or_build(spec.name, "readouts", inputs, build, log=settings.log)



def logit_lens_stage(runtime: ModelRuntime, store: ArtifactStore, vectors: EmotionVectors,
                     settings: StageSettings = StageSettings()) -> Artifact:
    """Per layer: own-token top-20 hits [E], valence-pair dots [5], Table 1 top/bottom tokens."""
    inputs = {"stage": "logit_lens", "code_version": STAGE_VERSIONS["logit_lens"],
              "model": runtime.identity(), "vectors_key": vectors.key, "top_k": TOP_K,
              "pairs": VALENCE_PAIRS, "stimuli": {"table1": stimuli_digest("logit_lens_table1")},
              "vectors_used": "denoised"}

    def build(work: Path) -> dict[str, Any]:
        unembedding = runtime.model.get_output_embeddings().weight.detach().float().cpu().numpy()
        payload = logit_lens_payload(runtime.tokenizer, unembedding, vectors)
        (work / "logit_lens.json").write_text(json.dumps(payload, ensure_ascii=False))
        return {"n_single_token": sum(t["single_token"] for t in payload["own_tokens"])}

    return store.get_or_build(runtime.spec.name, "logit_lens", inputs, build, log=settings.log)


def logit_lens_payload(tokenizer, unembedding: np.ndarray, vectors: EmotionVectors
                       ) -> dict[str, Any]:
    """The logit_lens artifact's JSON for every layer of `vectors` through W_U [V, d]; the
    embedding null (pipeline.stages.embedding_null) reads its one-layer vectors through it."""
    tokens = own_tokens(tokenizer, vectors.emotions)
    table1 = [row.emotion for row in load_logit_lens_table1()]
    layers = []
    for layer in range(vectors.n_layers):
        logits = direct_logits(unembedding, vectors.at(layer))  # [E, V]
        examples = {}
        for emotion in vectors.present(table1):  # a NaN vector has no top tokens
            up, down = top_tokens(logits[vectors.index(emotion)], tokenizer)
            examples[emotion] = {"up": up, "down": down}
        layers.append({
            # An emotion without a vector (NaN logits) never counts as a hit; v1_row also
            # leaves it out of the denominator.
            "hits": (own_token_hits(logits, tokens)
                     & ~np.isnan(logits).any(axis=1)).tolist(),
            "pair_dots": valence_pair_dots(logits, vectors.emotions).tolist(),
            "pair_dots_centred": valence_pair_dots(vocabulary_centred(logits),
                                                   vectors.emotions).tolist(),
            "table1": examples,
        })
    return {
        "emotions": list(vectors.emotions),
        "missing": list(vectors.missing),
        "own_tokens": [{"emotion": t.emotion, "ids": list(t.ids),
                        "single_token": t.single_token} for t in tokens],
        "layers": layers,
    }
