"""Story and neutral-dialogue corpora: jobs, generation into resumable shards, splitting.

One job is one call of the paper's prompt: (emotion, topic) for stories, a topic for neutral
dialogues. The prompt is the user message (the paper calls it a system prompt but gives no user
turn; Gemma's template has no system role), and the assistant message is prefilled with
`[story 1]` so that the first story is marked even when a model skips the marker.
"""

from __future__ import annotations

import re
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.inputs.progress import Ticker
from pipeline.inputs.registry import ModelSpec
from pipeline.inputs.scale import ScalePreset
from pipeline.inputs.shards import ShardStore
from pipeline.inputs.stimuli import load_emotions, load_story_prompts, load_topics, render_template
from pipeline.model.generation import Generation, SamplingSettings, generate_seeded
from pipeline.model.prompts import render_prompt

if TYPE_CHECKING:
    from pipeline.model.backends import GenerationBackend

STORY_PREFILL = "[story 1]\n"
_STORY_MARKER = re.compile(r"^\W*\[\s*story\s+(\d+)\s*\]\W*$", re.IGNORECASE | re.MULTILINE)
_DIALOGUE_MARKER = re.compile(r"^\W*\[\s*dialogue\s+(\d+)\s*\]\W*$", re.IGNORECASE | re.MULTILINE)
_SPEAKERS = ((re.compile(r"^Person:", re.MULTILINE), "Human:"), (re.compile(r"^AI:", re.MULTILINE), "Assistant:"))


@dataclass(frozen=True)
class Job:
    id: str
    user: str  # the rendered paper prompt
    prefill: str
    meta: dict[str, Any]


def story_jobs(scale: ScalePreset) -> list[Job]:
    template = load_story_prompts().emotional_stories
    topics = load_topics()[: scale.n_topics]
    return [
        Job(
            id=f"e{ei:03d}-t{ti:03d}",
            user=render_template(template, n_stories=scale.n_stories, topic=topic, emotion=emotion),
            prefill=STORY_PREFILL,
            meta={"emotion": emotion, "topic": topic},
        )
        for ei, emotion in enumerate(load_emotions())
        for ti, topic in enumerate(topics)
    ]


def neutral_jobs(scale: ScalePreset) -> list[Job]:
    template = load_story_prompts().neutral_dialogues
    return [
        Job(
            id=f"n{ti:03d}",
            user=render_template(template, n_stories=scale.neutral_n, topic=topic),
            prefill="",
            meta={"topic": topic},
        )
        for ti, topic in enumerate(load_topics()[: scale.neutral_topics])
    ]


def split_stories(text: str) -> list[str]:
    """Stories between `[story N]` marker lines; text before the first marker is not a story.

    Empty segments are kept (as "") so the caller can count them.
    """
    marks = list(_STORY_MARKER.finditer(text))
    segments = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        segments.append(text[mark.end() : end].strip())
    return segments


def split_dialogues(text: str) -> list[str]:
    """Dialogues separated by `[dialogue N]` lines; the first one has no marker in the prompt.

    `Person:`/`AI:` become `Human:`/`Assistant:`, as the paper did after generation.
    """
    marks = list(_DIALOGUE_MARKER.finditer(text))
    bounds = [0] + [m.start() for m in marks] + [len(text)]
    starts = [0] + [m.end() for m in marks]
    dialogues = []
    for start, end in zip(starts, bounds[1:], strict=True):
        segment = text[start:end].strip()
        for pattern, replacement in _SPEAKERS:
            segment = pattern.sub(replacement, segment)
        dialogues.append(segment)
    return dialogues


def _records_for_call(job: Job, kind: str, full_text: str, finished: bool, n_tokens: int):
    pieces = split_stories(full_text) if kind == "stories" else split_dialogues(full_text)
    kept = [p for p in pieces if p]
    status = "ok" if kept else ("empty" if pieces else "unparseable")
    call = {
        "job": job.id,
        **job.meta,
        "status": status,
        "n_segments": len(pieces),
        "n_empty": len(pieces) - len(kept),
        "n_kept": len(kept),
        "finished": finished,
        "n_tokens": n_tokens,
        "raw": full_text,
    }
    items = [
        {"id": f"{job.id}-{k:02d}", "job": job.id, **job.meta, "index": k, "text": piece}
        for k, piece in enumerate(kept)
    ]
    return call, items


def _batches(jobs: Sequence[Job], size: int) -> Iterable[Sequence[Job]]:
    for start in range(0, len(jobs), size):
        yield jobs[start : start + size]


def job_seed(seed: int, job: Job) -> int:
    """The sampling seed of one job: the same whichever batch, run or resume samples it."""
    return zlib.crc32(f"{seed}:{job.id}".encode())


def _sample(backend: GenerationBackend | None, model, tokenizer, prompts,
            settings: SamplingSettings, seeds: Sequence[int]) -> list[Generation]:
    if backend is None:
        return generate_seeded(model, tokenizer, prompts, settings, seeds)
    # One sample per job: the paper's prompt already asks for 12 stories in one call.
    return [samples[0] for samples in backend.generate(prompts, settings, seeds[0], n=1,
                                                       seeds=seeds)]


def _agreeing_prefix(items: ShardStore, calls: ShardStore) -> int:
    """How many leading shards both stores recorded for the same jobs.

    Each batch appends one items shard, then one calls shard, so a kill between the two
    leaves the items store one shard ahead; anything past the agreeing prefix is redone.
    """
    n = 0
    for item_shard, call_shard in zip(items.shards, calls.shards, strict=False):
        if item_shard["jobs"] != call_shard["jobs"]:
            break
        n += 1
    return n


def generate_corpus(
    *,
    kind: str,
    jobs: Sequence[Job],
    model=None,
    tokenizer,
    spec: ModelSpec,
    settings: SamplingSettings,
    work_dir: Path,
    batch_size: int,
    show_progress: bool = True,
    backend: GenerationBackend | None = None,
    log=lambda message: None,
) -> dict[str, Any]:
    """Generate every job not yet in `work_dir`'s shards; return the corpus summary.

    `backend` samples the text (pipeline.model.backends); without one, `model` samples through
    `generate_seeded` (transformers). `tokenizer` renders the prompts in both cases. Each job
    samples from its own seed (`job_seed`), so what it writes does not depend on the jobs it
    shares a batch with, up to the floating-point effect of padding (see `StageSettings`).
    Interruptible at any point: finished batches are on disk, the batch in flight is redone,
    and a shard damaged on disk is redone in its place.
    """
    if kind not in ("stories", "neutral"):
        raise ValueError(f"corpus kind {kind!r}; expected 'stories' or 'neutral'")
    if backend is None and model is None:
        raise ValueError(
            "generate_corpus got neither a model nor a backend; pass model=<transformers "
            "model> or backend=pipeline.model.backends.get_backend(name, runtime)"
        )
    calls = ShardStore(work_dir, "calls")
    items = ShardStore(work_dir, "items")
    agreeing = _agreeing_prefix(items, calls)
    if agreeing < max(len(items.shards), len(calls.shards)):
        # The two manifests are written one after the other; redo any job only one recorded.
        log(f"{work_dir}: {len(items.shards)} items and {len(calls.shards)} calls shards "
            f"recorded; keeping the {agreeing} both agree on and redoing the rest")
        items.truncate(agreeing)
        calls.truncate(agreeing)
    by_id = {job.id: job for job in jobs}
    # A damaged shard of either store is redone as the batch it was, in its place.
    redo = sorted(set(items.damaged) | set(calls.damaged))
    done = {job for shard in calls.shards for job in shard["jobs"]}
    pending = [job for job in jobs if job.id not in done]
    bar = _progress_bar(len(jobs), len(done) - sum(len(calls.shards[i]["jobs"]) for i in redo),
                        kind, show_progress)
    work: list[tuple[int | None, Sequence[Job]]] = [
        (index, [by_id[j] for j in calls.shards[index]["jobs"]]) for index in redo
    ] + [(None, batch) for batch in _batches(pending, batch_size)]
    ticker = Ticker(log, f"{spec.name}/{kind}", len(jobs), "calls",
                    done=len(done) - sum(len(calls.shards[i]["jobs"]) for i in redo))
    started = time.time()
    try:
        for index, batch in work:
            prompts = [
                render_prompt(
                    tokenizer,
                    job.user,
                    fmt=spec.prompt_format,
                    chat_template_args=spec.chat_template_args,
                    assistant_prefill=job.prefill,
                )
                for job in batch
            ]
            seeds = [job_seed(settings.seed, job) for job in batch]
            outputs = _sample(backend, model, tokenizer, prompts, settings, seeds)
            call_records, item_records = [], []
            for job, out in zip(batch, outputs, strict=True):
                call, found = _records_for_call(
                    job, kind, job.prefill + out.text, out.finished, out.n_tokens
                )
                call_records.append(call)
                item_records.extend(found)
            if index is None:
                ids = [job.id for job in batch]
                items.append(item_records, ids)
                calls.append(call_records, ids)
            else:
                items.replace(index, item_records)
                calls.replace(index, call_records)
            bar.update(len(batch))
            if ticker:
                ticker.update(len(batch))
    except KeyboardInterrupt:
        finished = len(calls.completed_jobs())
        raise KeyboardInterrupt(
            f"interrupted after {finished} of {len(jobs)} {kind} calls; everything finished is "
            f"kept in {work_dir}. Rerun the same command to resume."
        ) from None
    finally:
        bar.close()
    return summarise(work_dir, elapsed=time.time() - started)


def summarise(work_dir: Path, elapsed: float | None = None) -> dict[str, Any]:
    status = Counter()
    n_items = n_empty = n_truncated = 0
    for call in ShardStore(work_dir, "calls").records():
        status[call["status"]] += 1
        n_items += call["n_kept"]
        n_empty += call["n_empty"]
        n_truncated += 0 if call["finished"] else 1
    summary = {
        "n_calls": sum(status.values()),
        "calls_by_status": dict(status),
        "n_items": n_items,
        "n_empty_segments": n_empty,
        "n_calls_hit_length_limit": n_truncated,
    }
    if elapsed is not None:
        summary["generation_wall_s"] = round(elapsed, 2)
    return summary


def _progress_bar(total: int, done: int, kind: str, enabled: bool):
    """A bar with rate and ETA; `initial` counts resumed work so the ETA covers what is left."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"generating {kind}", unit="call", smoothing=0.1,
                disable=not enabled)
