"""The extraction stages as cached artifacts: stories -> activations -> vectors.

Each `*_stage` function computes its inputs (model identity, stimuli hashes, stage config,
upstream keys, code version), returns the cached artifact when one exists and builds it
otherwise. Fixtures and the CLI call the same functions.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.inputs.artifacts import Artifact, ArtifactStore, sha256_file
from pipeline.inputs.errors import BadInput
from pipeline.inputs.experiment import STAGE_VERSIONS
from pipeline.inputs.progress import Ticker
from pipeline.inputs.shards import ShardStore
from pipeline.inputs.stimuli import load_emotions, stimuli_digest
from pipeline.measures.results import load_items
from pipeline.measures.vectors import (
    center_across_emotions,
    emotion_means,
    empty_emotions,
    pca_from_moments,
    project_out,
)
from pipeline.model.backends import BACKENDS, get_backend
from pipeline.model.corpus import generate_corpus, neutral_jobs, story_jobs
from pipeline.model.generation import SamplingSettings
from pipeline.model.prompts import stop_key
from pipeline.model.runtime import ModelRuntime

MAX_STORY_TOKENS = 1024
MAX_NEUTRAL_TOKENS = 2048


@dataclass(frozen=True)
class StageSettings:
    """Throughput knobs: they change speed, not what a stage computes.

    Sampled text is the exception. Another `backend` (pipeline.model.backends) samples other text.
    And although every job samples from its own seed, the batch size (padding), the device and
    the CPU thread count change the logits in their last bits, which flips a sampled token now
    and then (1 story in 342 on the tiny model between batch sizes 64 and 16); so the story and
    neutral stages put the backend, `gen_batch_size` and the platform in their cache keys, and
    a resume with another batch size starts its own artifact instead of mixing two.
    Activations, probes and steering always run on the transformers model.
    """

    gen_batch_size: int = 64
    token_budget: int = 8192
    log: Any = print
    backend: str = "transformers"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"generation backend {self.backend!r}; expected one of {BACKENDS} "
                "(--backend on the CLI)"
            )


def _version(stage: str) -> dict[str, Any]:
    return {"stage": stage, "code_version": STAGE_VERSIONS[stage]}


def _sampling(runtime: ModelRuntime, kind: str) -> SamplingSettings:
    scale = runtime.scale
    limit = scale.max_new_tokens if kind == "stories" else scale.neutral_max_new_tokens
    # A call stops when its last asked-for item is complete: nothing is sampled for a 13th.
    items, marker = ((scale.n_stories, "story") if kind == "stories"
                     else (scale.neutral_n, "dialogue"))
    return SamplingSettings(max_new_tokens=limit, temperature=1.0, top_p=0.95, seed=0,
                            stop_after_items=items, item_marker=marker)


def _platform(runtime: ModelRuntime) -> dict[str, Any]:
    from pipeline.model.devices import sampling_platform

    config = runtime.location.path / "config.json"
    try:
        hidden = json.loads(config.read_text(encoding="utf-8")).get("hidden_size")
    except (OSError, ValueError):
        hidden = None
    return sampling_platform(runtime.device, runtime.device_map or runtime.spec.device_map,
                             hidden)


def _corpus_stage(
    kind: str,
    runtime: ModelRuntime,
    store: ArtifactStore,
    settings: StageSettings,
    generator: ModelRuntime | None = None,
) -> Artifact:
    generator = generator or runtime
    scale = runtime.scale
    jobs = story_jobs(scale) if kind == "stories" else neutral_jobs(scale)
    sampling = _sampling(runtime, kind)
    prompt_list = "emotional_stories" if kind == "stories" else "neutral_dialogues"
    inputs = {
        **_version(kind),
        "generator": generator.identity(),
        "generator_format": generator.spec.prompt_format,
        **stop_key(generator.spec.prompt_format),
        "chat_template_args": generator.spec.chat_template_args,
        "scale": scale.describe(),
        "sampling": sampling.describe(),
        "stimuli": {
            "emotions": stimuli_digest("emotions"),
            "topics": stimuli_digest("topics"),
            "prompt": stimuli_digest("story_prompts"),
            "prompt_used": prompt_list,
        },
        "n_jobs": len(jobs),
        "backend": settings.backend,
        "batch_size": settings.gen_batch_size,
        "platform": _platform(generator),
    }

    def build(work: Path) -> dict[str, Any]:
        backend = get_backend(settings.backend, generator)
        summary = generate_corpus(
            kind=kind,
            jobs=jobs,
            tokenizer=generator.tokenizer,
            spec=generator.spec,
            settings=sampling,
            work_dir=work,
            batch_size=settings.gen_batch_size,
            backend=backend,
            log=settings.log,
        )
        return {**summary, "backend": backend.describe()}

    # Stored under the generator: the same stories serve every model that reads them.
    return store.get_or_build(generator.spec.name, kind, inputs, build, resumable=True,
                              log=settings.log)


def stories_stage(runtime, store, settings=StageSettings(), generator=None) -> Artifact:
    return _corpus_stage("stories", runtime, store, settings, generator)


def neutral_stage(runtime, store, settings=StageSettings(), generator=None) -> Artifact:
    return _corpus_stage("neutral", runtime, store, settings, generator)


class BadStoriesFile(BadInput):
    """A `--stories-file` that cannot be read as the stories of the paper's emotions."""


def read_stories_file(path: Path) -> list[dict[str, Any]]:
    """The rows of a bring-your-own stories file, checked; BadStoriesFile names what is wrong.

    JSONL, one object per line with "emotion" (one of the paper's 171) and "text" (a string),
    optionally "topic" and "id" (unique). Every emotion needs at least one story, since each
    emotion's vector is the mean over its stories. Checked before anything is cached.
    """
    path = Path(path)
    how = "one JSON object per line with 'emotion' (one of the paper's 171) and 'text'"
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise BadStoriesFile(f"--stories-file {str(path)!r} {what}; expected a JSONL file of "
                             f"{how}; check the path")
    emotions = load_emotions()
    known = set(emotions)
    rows, ids = [], set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BadStoriesFile(f"--stories-file {str(path)!r} is not UTF-8 text (byte "
                             f"{exc.start}); expected a UTF-8 JSONL file; re-save it as "
                             "UTF-8") from None
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadStoriesFile(f"{where} is not valid JSON ({exc.msg} at column {exc.colno});"
                                 f" expected {how}; fix or delete that line") from None
        if not isinstance(row, dict):
            raise BadStoriesFile(f"{where} is a JSON {type(row).__name__}, not an object; "
                                 f"expected {how}, e.g. {{\"emotion\": \"afraid\", "
                                 f"\"text\": \"...\"}}")
        if row.get("emotion") not in known:
            raise BadStoriesFile(f"{where} has emotion={row.get('emotion')!r}, which is not one "
                                 "of the paper's 171 emotions (data/paper/emotions.txt); use "
                                 "one of those names, spelled as there")
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            raise BadStoriesFile(f"{where} has text={row.get('text')!r}; expected the story as "
                                 "a non-empty string under 'text'")
        item_id = str(row.get("id", f"file-{line_no:07d}"))
        if item_id in ids:
            raise BadStoriesFile(f"{where} repeats id {item_id!r}; expected every story's 'id' "
                                 "to be unique; rename or drop the duplicate")
        ids.add(item_id)
        rows.append({"id": item_id, "emotion": row["emotion"], "topic": row.get("topic"),
                     "text": row["text"]})
    if not rows:
        raise BadStoriesFile(f"--stories-file {str(path)!r} holds no story; expected {how}; "
                             "add stories (at least one per emotion)")
    covered = {row["emotion"] for row in rows}
    missing = [e for e in emotions if e not in covered]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        raise BadStoriesFile(f"--stories-file {str(path)!r} has stories for {len(covered)} of "
                             f"the 171 emotions (none for {shown}); expected at least one story"
                             " per emotion, since each vector is a mean over its emotion's "
                             "stories; add stories for the missing emotions")
    return rows


def import_stories_file(runtime: ModelRuntime, store: ArtifactStore, path: Path,
                        settings: StageSettings = StageSettings()) -> Artifact:
    """Bring-your-own stories: JSONL rows with "emotion" and "text" (optional "topic", "id")."""
    path = Path(path)
    rows = read_stories_file(path)  # before the cache: a bad file never becomes an artifact
    inputs = {**_version("stories"), "source_file": path.name, "sha256": sha256_file(path),
              "stimuli": {"emotions": stimuli_digest("emotions")}}

    def build(work: Path) -> dict[str, Any]:
        items = [{"id": r["id"], "job": r["id"], "emotion": r["emotion"], "topic": r["topic"],
                  "index": 0, "text": r["text"]} for r in rows]
        calls = [{"job": r["id"], "emotion": r["emotion"], "status": "ok", "n_segments": 1,
                  "n_empty": 0, "n_kept": 1, "finished": True, "n_tokens": None,
                  "raw": r["text"]} for r in rows]
        ShardStore(work, "items").append(items, [c["job"] for c in calls])
        ShardStore(work, "calls").append(calls, [c["job"] for c in calls])
        return {"n_items": len(items), "source": str(path)}

    return store.get_or_build(runtime.spec.name, "stories", inputs, build, log=settings.log)



def activations_stage(runtime: ModelRuntime, store: ArtifactStore, stories: Artifact,
                      settings: StageSettings = StageSettings()) -> Artifact:
    from safetensors.torch import save_file

    from pipeline.model.capture import capture_stories, tokenize_texts

    emotions = load_emotions()
    inputs = {
        **_version("activations"),
        "model": runtime.identity(),
        "stories_key": stories.key,
        "pool_from": 50,
        "pool_rule": "from the text's 50th token; position 0 (the attention sink) never",
        "max_story_tokens": MAX_STORY_TOKENS,
        "keep_layer": runtime.spec.analysis_layer,
        "stimuli": {"emotions": stimuli_digest("emotions")},
    }

    def build(work: Path) -> dict[str, Any]:
        index = {e: i for i, e in enumerate(emotions)}
        items = load_items(stories)
        tokenizer = runtime.tokenizer
        texts = tokenize_texts(tokenizer, [it["text"] for it in items],
                               [index[it["emotion"]] for it in items],
                               [it["id"] for it in items], MAX_STORY_TOKENS)
        ticker = Ticker(settings.log, f"{runtime.spec.name}/activations", len(texts), "stories")
        result = capture_stories(runtime.model, texts, n_groups=len(emotions),
                                 pad_id=tokenizer.pad_token_id, token_budget=settings.token_budget,
                                 keep_layer=runtime.spec.analysis_layer, on_batch=ticker.update)
        tensors = {"sums": result["sums"], "counts": result["counts"]}
        if "story_means" in result:
            tensors["story_means"] = result["story_means"].contiguous()
        save_file(tensors, str(work / "activations.safetensors"))
        (work / "story_ids.json").write_text(json.dumps([it["id"] for it in items]))
        return {"n_stories": len(items), "n_short": result["n_short"],
                "stories_per_emotion_min": int(result["counts"].min()),
                # Lets the vectors stage give advice that fits where the stories came from.
                "stories_file": stories.provenance["inputs"].get("source_file")}

    return store.get_or_build(runtime.spec.name, "activations", inputs, build, log=settings.log)


def neutral_stats_stage(runtime: ModelRuntime, store: ArtifactStore, neutral: Artifact,
                        settings: StageSettings = StageSettings()) -> Artifact:
    from safetensors.torch import save_file

    from pipeline.model.capture import capture_neutral, tokenize_texts

    inputs = {**_version("neutral_stats"), "model": runtime.identity(), "neutral_key": neutral.key,
              "max_tokens": MAX_NEUTRAL_TOKENS,
              "token_set": "non-special tokens after position 0 (the attention sink)"}

    def build(work: Path) -> dict[str, Any]:
        items = load_items(neutral)
        if not items:
            raise ValueError(
                f"the neutral-dialogue artifact {neutral.path} holds no dialogue; every call was "
                "empty or unparseable (see calls-*.jsonl); the PCA needs neutral text"
            )
        tokenizer = runtime.tokenizer
        texts = tokenize_texts(tokenizer, [it["text"] for it in items], [0] * len(items),
                               [it["id"] for it in items], MAX_NEUTRAL_TOKENS)
        ticker = Ticker(settings.log, f"{runtime.spec.name}/neutral_stats", len(texts), "dialogues")
        result = capture_neutral(runtime.model, texts, special_ids=set(tokenizer.all_special_ids),
                                 pad_id=tokenizer.pad_token_id, token_budget=settings.token_budget,
                                 on_batch=ticker.update)
        tensors = {"mean_norms": result["mean_norms"]}
        for layer in result["sum"]:
            tensors[f"sum.{layer}"] = result["sum"][layer]
            tensors[f"gram.{layer}"] = result["gram"][layer]
        save_file(tensors, str(work / "neutral_moments.safetensors"))
        return {"n_dialogues": len(items), "n_tokens": result["count"]}

    return store.get_or_build(runtime.spec.name, "neutral_stats", inputs, build, log=settings.log)



def vectors_stage(runtime: ModelRuntime, store: ArtifactStore, activations: Artifact,
                  neutral_stats: Artifact, settings: StageSettings = StageSettings()) -> Artifact:
    from safetensors.numpy import load_file

    emotions = load_emotions()
    inputs = {**_version("vectors"), "activations_key": activations.key,
              "neutral_stats_key": neutral_stats.key, "pca_variance": 0.5,
              "center": "mean of per-emotion means"}

    def build(work: Path) -> dict[str, Any]:
        acts = load_file(str(activations.file("activations.safetensors")))
        moments = load_file(str(neutral_stats.file("neutral_moments.safetensors")))
        count = neutral_stats.provenance["result"]["n_tokens"]
        source = activations.provenance.get("result", {}).get("stories_file")
        empty = empty_emotions(acts["counts"], emotions)
        if empty and source:
            raise BadStoriesFile(
                f"--stories-file {source!r} has no story of 50 tokens or more for "
                f"{len(empty)} emotion(s) ({', '.join(empty[:5])}); expected at least one per "
                "emotion, since a story is read from its 50th token on; add longer stories for "
                "them")
        raw = center_across_emotions(emotion_means(acts["sums"], acts["counts"], emotions))
        n_layers, _, d = raw.shape
        pcs = [pca_from_moments(moments[f"sum.{i}"], moments[f"gram.{i}"], count)
               for i in range(n_layers)]
        denoised = np.stack([project_out(raw[i], pcs[i].components) for i in range(n_layers)])
        write_vectors(work, emotions, raw, denoised, moments["mean_norms"], pcs, acts["counts"])
        # An emotion without a usable story has a NaN vector; it is named here and in every row
        # that would have used it, and the rows run over the others.
        return {"pcs_k_per_layer": [p.k for p in pcs], "shape": list(raw.shape),
                "empty_emotions": empty_emotions(acts["counts"], emotions)}

    return store.get_or_build(runtime.spec.name, "vectors", inputs, build, log=settings.log)



def write_vectors(work: Path, emotions: Sequence[str], raw: np.ndarray, denoised: np.ndarray,
                  mean_norms: np.ndarray, pcs: Sequence, counts: np.ndarray) -> None:
    """vectors.safetensors and emotions.json, the format `load_vectors` reads: raw and
    denoised [L, E, d], mean norms [L], each layer's PCs zero-padded to the largest k."""
    from safetensors.numpy import save_file

    n_layers, _, d = raw.shape
    k_max = max(p.k for p in pcs)
    padded = np.zeros((n_layers, k_max, d), dtype=np.float32)
    explained = np.zeros((n_layers, k_max), dtype=np.float32)
    for i, p in enumerate(pcs):
        padded[i, : p.k] = p.components
        explained[i, : p.k] = p.explained
    save_file({
        "raw": raw.astype(np.float32),
        "denoised": denoised.astype(np.float32),
        "mean_norms": np.asarray(mean_norms).astype(np.float32),
        "pcs": padded,
        "pcs_explained": explained,
        "pcs_k": np.array([p.k for p in pcs], dtype=np.int64),
        "counts": counts,
    }, str(work / "vectors.safetensors"))
    (work / "emotions.json").write_text(json.dumps(list(emotions)))


def build_vectors(runtime: ModelRuntime, store: ArtifactStore,
                  settings: StageSettings = StageSettings(), generator=None,
                  stories_file: Path | None = None) -> dict[str, Artifact]:
    """Every extraction stage in order; each one a cache hit when already built."""
    stories = (import_stories_file(runtime, store, stories_file, settings) if stories_file
               else stories_stage(runtime, store, settings, generator))
    neutral = neutral_stage(runtime, store, settings, generator)
    activations = activations_stage(runtime, store, stories, settings)
    neutral_stats = neutral_stats_stage(runtime, store, neutral, settings)
    vectors = vectors_stage(runtime, store, activations, neutral_stats, settings)
    return {"stories": stories, "neutral": neutral, "activations": activations,
            "neutral_stats": neutral_stats, "vectors": vectors}


def remove_partial(store: ArtifactStore, model: str, stage: str) -> None:
    for partial in store.stage_dir(model, stage).glob(".partial-*"):
        shutil.rmtree(partial)
