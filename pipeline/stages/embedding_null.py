"""The embedding null (issue 16) as a cached stage: the inputs of V1, V2, V3/V4, V8/V9 and G1
computed at the token embeddings, the residual stream before any decoder block.

No forward pass: with rotary positions the stream before block 0 is the embedding lookup
(pipeline.model.embeddings checks that on one short input and refuses a model where it is not).
Everything else is the real path's: the same tokenization and pooling of the stories (from the
50th token, never the attention sink), the same neutral tokens for the PCA that denoises the
vectors, the same vector math (pipeline.measures.embedding_null), the logit lens through the
same payload builder as the logit_lens stage, the activity tokens of the probe prompts as the
activity_probes stage finds them. Each file is written in its real stage's format, so the real
loaders read it (pipeline.measures.results.load_embedding_null).

One departure, for V3/V4: the real readout is at the read position, the prompt's last token,
which is the same template token for every scenario; its embedding is one vector, so a null read
there would score the same emotion for all 12 scenarios by construction and say nothing. The
null reads the mean embedding of the scenario's own tokens (the user message) instead: what the
scenario's words carry before any block mixes them. The read-position embedding is stored too
("implicit_read").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.inputs.artifacts import Artifact, ArtifactStore
from pipeline.inputs.experiment import STAGE_VERSIONS
from pipeline.inputs.stimuli import load_emotions, stimuli_digest
from pipeline.measures.embedding_null import null_vectors
from pipeline.measures.results import EmotionVectors, load_items
from pipeline.model.activity_probes import cosine_scores, probe_prompts
from pipeline.model.capture import POOL_FROM, tokenize_texts
from pipeline.model.embeddings import (
    check_block0_input,
    neutral_moments,
    span_means,
    story_sums,
)
from pipeline.model.prompts import render_prompt
from pipeline.model.runtime import ModelRuntime
from pipeline.stages.extraction import (
    MAX_NEUTRAL_TOKENS,
    MAX_STORY_TOKENS,
    StageSettings,
    write_vectors,
)
from pipeline.stages.preferences import scale_activities
from pipeline.stages.readouts import implicit_prompt_set, logit_lens_payload

STAGE = "embedding_null"
CHECK_TOKENS = 32  # the block-0 check runs on the first neutral dialogue's first tokens


def embedding_null_stage(runtime: ModelRuntime, store: ArtifactStore, stories: Artifact,
                         neutral: Artifact, settings: StageSettings = StageSettings()
                         ) -> Artifact:
    spec = runtime.spec
    activities = scale_activities(runtime)
    inputs = {
        "stage": STAGE, "code_version": STAGE_VERSIONS[STAGE], "model": runtime.identity(),
        "stories_key": stories.key, "neutral_key": neutral.key,
        "layer": "token embeddings (the residual stream before block 0)",
        "pool_from": POOL_FROM, "max_story_tokens": MAX_STORY_TOKENS,
        "max_neutral_tokens": MAX_NEUTRAL_TOKENS, "pca_variance": 0.5,
        "prompt_format": spec.prompt_format, "chat_template_args": spec.chat_template_args,
        "read_position": spec.read_position,
        "implicit_tokens": "mean over the scenario's user-message tokens",
        "activities": [a.rank for a in activities],
        "stimuli": {"emotions": stimuli_digest("emotions"),
                    "implicit": stimuli_digest("implicit_scenarios"),
                    "table1": stimuli_digest("logit_lens_table1"),
                    "activities": stimuli_digest("activities"),
                    "prompts": stimuli_digest("preference_prompts")},
    }

    def build(work: Path) -> dict[str, Any]:
        from safetensors.numpy import save_file

        tokenizer, model = runtime.tokenizer, runtime.model
        emotions = load_emotions()
        neutral_items = load_items(neutral)
        if not neutral_items:
            raise ValueError(f"the neutral-dialogue artifact {neutral.path} holds no dialogue; "
                             "the embedding null's PCA needs neutral text")
        neutral_texts = tokenize_texts(tokenizer, [it["text"] for it in neutral_items],
                                       [0] * len(neutral_items),
                                       [it["id"] for it in neutral_items], MAX_NEUTRAL_TOKENS)
        difference = check_block0_input(model, neutral_texts[0].input_ids[:CHECK_TOKENS])

        index = {e: i for i, e in enumerate(emotions)}
        items = load_items(stories)
        texts = tokenize_texts(tokenizer, [it["text"] for it in items],
                               [index[it["emotion"]] for it in items],
                               [it["id"] for it in items], MAX_STORY_TOKENS)
        sums, counts, n_short = story_sums(model, texts, len(emotions))
        moments = neutral_moments(model, neutral_texts, set(tokenizer.all_special_ids))
        built = null_vectors(sums, counts, emotions, moments["sum"], moments["gram"],
                             moments["count"])
        vectors = EmotionVectors(emotions=tuple(emotions), raw=built.raw,
                                 denoised=built.denoised,
                                 mean_norms=np.array([moments["mean_norm"]]),
                                 pcs=(built.pca,), counts=counts, key="")
        write_vectors(work, emotions, built.raw, built.denoised, vectors.mean_norms,
                      (built.pca,), counts)

        unembedding = model.get_output_embeddings().weight.detach().float().cpu().numpy()
        (work / "logit_lens.json").write_text(json.dumps(
            logit_lens_payload(tokenizer, unembedding, vectors), ensure_ascii=False))

        implicit = implicit_prompt_set()
        prompts = [render_prompt(tokenizer, message, fmt=spec.prompt_format,
                                 chat_template_args=spec.chat_template_args)
                   for message in implicit.user_messages]
        ids = [p.input_ids for p in prompts]
        scenario = span_means(model, ids, [p.token_span("user") for p in prompts])
        read = span_means(model, ids, [(p.read_position, p.read_position + 1) for p in prompts])
        probe, spans = probe_prompts(tokenizer, activities, fmt=spec.prompt_format,
                                     chat_template_args=dict(spec.chat_template_args))
        at_activities = span_means(model, [p.input_ids for p in probe], spans)
        cosine = cosine_scores(at_activities[:, None], built.denoised)  # [N, 1, E]
        save_file({"implicit": scenario[:, None].astype(np.float32),
                   "implicit_read": read[:, None].astype(np.float32)},
                  str(work / "readouts.safetensors"))
        read_tokens = [tokenizer.decode([p.input_ids[p.read_position]]) for p in prompts]
        (work / "index.json").write_text(json.dumps({
            "implicit": {"ids": list(implicit.ids), "read_tokens": read_tokens},
            "implicit_read": {"ids": list(implicit.ids), "read_tokens": read_tokens},
        }, indent=1))
        save_file({"cosine": cosine.astype(np.float32)},
                  str(work / "activity_probes.safetensors"))
        return {"block0_difference": difference, "n_short": n_short,
                "n_neutral_tokens": moments["count"], "pcs_k": built.pca.k,
                "empty_emotions": list(vectors.missing)}

    return store.get_or_build(spec.name, STAGE, inputs, build, log=settings.log)
