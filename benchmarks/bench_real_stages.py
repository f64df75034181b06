"""Each stage on a real model against the bare model work it needs, as ratios (target 1.15x).

    python benchmarks/bench_real_stages.py [--model smollm2_135m] [--calls 8] [--new-tokens 256]
                                           [--gen-batch 8] [--neutral-calls 2] [--steering]
                                           [--pairs 3] [--activities-per-category 8]

The model must be registered and its weights resolvable (for smollm2_135m: the registry entry
and `python -m pipeline fetch-models smollm2_135m`, or --model-path NAME=DIR). Every stage runs
for real, in a fresh artifact store, through the same functions the scorecard calls; the bare
work is what a stage cannot avoid:

- stories / neutral: the stage's generate_corpus over `--calls` story calls (the first topic
  of emotions spread over the list) against one `model.generate` per batch over the same
  rendered prompts, same seeds, stopping only at end-of-turn and the token limit. The stage
  also stops a call after its last story (pipeline.model.stopping), so it may generate fewer tokens
  than the bare run: the ratio then says what the criterion saves net of its own cost;
- activations / neutral_stats: the capture stage (hooks at every layer, in-hook reduction,
  tokenizing, writing) against a bare decoder forward over the same token batches;
- preferences: the baseline stage over the prompts of `--activities-per-category` (8: all 4032;
  2: the ci scale's 240) against a bare decoder forward over the same batches;
- with --steering, steered_preferences (top_k 1: the exemplars, one more and the control)
  against one bare forward over the prompts it reruns per condition.

Each stage and its bare work run alternately, A B A B (`--pairs` of each, a fresh artifact
folder per stage run), and the ratio is the median of the per-pair ratios: machines here are
shared, the load drifts over minutes, and a pair run back to back sees about the same load.
Prints one JSON line per stage (median wall_s and bare_s, ratio, pair_ratios) and a summary
line with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.inputs.artifacts import ArtifactStore  # noqa: E402
from pipeline.inputs.registry import get_spec  # noqa: E402
from pipeline.inputs.scale import ScalePreset  # noqa: E402
from pipeline.measures.results import load_items
from pipeline.model.capture import base_model, length_batches, pad_rows, tokenize_texts  # noqa: E402
from pipeline.model.corpus import generate_corpus, neutral_jobs, story_jobs  # noqa: E402
from pipeline.model.devices import decoding_threads, input_device  # noqa: E402
from pipeline.model.generation import SamplingSettings  # noqa: E402
from pipeline.model.loading import resolve_weights  # noqa: E402
from pipeline.model.prompts import batch_encode, render_prompt  # noqa: E402
from pipeline.model.runtime import ModelRuntime  # noqa: E402
from pipeline.stages.extraction import (
    MAX_NEUTRAL_TOKENS,
    MAX_STORY_TOKENS,
    StageSettings,
    _sampling,
)

TARGET = 1.15
QUIET = StageSettings(log=lambda message: None)


PAIRS = 3  # set from --pairs: stage/bare pairs per stage


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def paired(make_stage, make_bare, pairs: int | None = None):
    """Stage and bare work alternate, A B A B ... (`pairs` of each; make_stage(i) gets a fresh
    folder per run, so no cache hit). On a shared machine the load drifts over minutes, and
    a pair run back to back sees about the same load: the ratio is the median of the per-pair
    ratios, not a ratio of separately taken bests. Returns (last stage output, last bare
    output, median stage s, median bare s, median ratio, per-pair ratios)."""
    walls, bares, ratios = [], [], []
    out = bare_out = None
    for i in range(pairs or PAIRS):
        out, wall = timed(make_stage(i))
        bare_out, bare = timed(make_bare(i))
        walls.append(wall)
        bares.append(bare)
        ratios.append(wall / bare)
    return (out, bare_out, statistics.median(walls), statistics.median(bares),
            statistics.median(ratios), ratios)


def bare_generate(runtime, jobs, settings: SamplingSettings, batch_size: int) -> int:
    """model.generate per batch, same prompts and seeds as generate_corpus; returns tokens."""
    import zlib

    model, tokenizer, spec = runtime.model, runtime.tokenizer, runtime.spec
    device = input_device(model)
    tokens = 0
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        prompts = [render_prompt(tokenizer, job.user, fmt=spec.prompt_format,
                                 chat_template_args=spec.chat_template_args,
                                 assistant_prefill=job.prefill) for job in batch]
        ids, mask, _ = batch_encode(prompts, tokenizer.pad_token_id, side="left")
        torch.manual_seed(zlib.crc32(f"{settings.seed}:{batch[0].id}".encode()))
        with decoding_threads(model, device), torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 max_new_tokens=settings.max_new_tokens, do_sample=True,
                                 temperature=settings.temperature, top_p=settings.top_p,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[:, ids.shape[1]:]
        tokens += int((new != tokenizer.pad_token_id).sum())
    return tokens


def bare_forward(model, batches) -> None:
    """A decoder forward (no LM head, no hooks) over prepared (ids, mask[, position_ids])."""
    decoder = base_model(model)
    with torch.inference_mode():
        for batch in batches:
            decoder(**batch, use_cache=False)


def capture_batches(tokenizer, texts, max_tokens: int, token_budget: int):
    items = tokenize_texts(tokenizer, texts, [0] * len(texts), [str(i) for i in range(len(texts))],
                           max_tokens)
    out = []
    for batch in length_batches(items, token_budget):
        ids, mask = pad_rows([items[i].input_ids for i in batch], tokenizer.pad_token_id, left=True)
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def report(stage: str, result, **extra) -> dict:
    """One JSON line: median stage and bare seconds, the median of the per-pair ratios."""
    _, _, wall, bare, ratio, ratios = result
    row = {"stage": stage, "wall_s": round(wall, 2), "bare_s": round(bare, 2),
           "ratio": round(ratio, 3), "pair_ratios": [round(r, 3) for r in ratios],
           "target": TARGET, **extra}
    print(json.dumps(row), flush=True)
    return row


def corpus_row(kind, runtime, store_dir, jobs, sampling, batch_size):
    spec = runtime.spec
    bare_settings = SamplingSettings(max_new_tokens=sampling.max_new_tokens,
                                     temperature=sampling.temperature, top_p=sampling.top_p,
                                     seed=sampling.seed)
    result = paired(
        lambda i: lambda: generate_corpus(
            kind=kind, jobs=jobs, model=runtime.model, tokenizer=runtime.tokenizer, spec=spec,
            settings=sampling, work_dir=store_dir / (kind if i == 0 else f"{kind}-{i}"),
            batch_size=batch_size, show_progress=False),
        lambda i: lambda: bare_generate(runtime, jobs, bare_settings, batch_size))
    summary, bare_tokens = result[0], result[1]
    return report(kind, result, calls=len(jobs), batch=batch_size,
                  max_new_tokens=sampling.max_new_tokens, bare_generated_tokens=bare_tokens,
                  items=summary["n_items"], calls_hit_limit=summary["n_calls_hit_length_limit"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2_135m")
    parser.add_argument("--model-path", default=None, help="weights directory (else registry)")
    parser.add_argument("--calls", type=int, default=8, help="story calls")
    parser.add_argument("--neutral-calls", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--gen-batch", type=int, default=8)
    parser.add_argument("--token-budget", type=int, default=8192)
    parser.add_argument("--steering", action="store_true", help="also time steered conditions")
    parser.add_argument("--skip-preferences", action="store_true")
    parser.add_argument("--pairs", type=int, default=3,
                        help="stage/bare pairs per stage, alternated (ratio: their median)")
    parser.add_argument("--activities-per-category", type=int, default=8,
                        help="preference experiment size: the first k of each Table 9 category "
                        "(8: all 64 activities, 4032 prompts; 2: 16 activities, 240 prompts, "
                        "as at the ci scale)")
    args = parser.parse_args()
    global PAIRS
    PAIRS = args.pairs

    spec = get_spec(args.model)
    location = resolve_weights(spec, {spec.name: args.model_path} if args.model_path else {})
    scale = ScalePreset("bench", 1, 12, args.new_tokens, 1, 12, args.new_tokens,
                        activities_per_category=args.activities_per_category)
    load_before = os.getloadavg()
    runtime = ModelRuntime(spec, location, device="cpu")
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        all_story = story_jobs(scale)
        jobs = all_story[:: max(1, len(all_story) // args.calls)][: args.calls]
        runtime.scale = scale
        # Warm-up outside the timings: first-call thread start-up, and the stopping criterion's
        # one vocabulary scan per tokenizer (cached for the run, as in a real build).
        from pipeline.model.generation import _cached
        from pipeline.model.stopping import newline_token_ids

        _cached(runtime.tokenizer, newline_token_ids)
        runtime.identity()  # the weights fingerprint (sha256 of the file), once per runtime
        bare_generate(runtime, jobs[:1], SamplingSettings(max_new_tokens=4), 1)
        rows.append(corpus_row("stories", runtime, root, jobs, _sampling(runtime, "stories"),
                               args.gen_batch))
        rows.append(corpus_row("neutral", runtime, root, neutral_jobs(scale)[: args.neutral_calls],
                               _sampling(runtime, "neutral"), args.gen_batch))

        # Capture stages over what was just generated, through the stage functions.
        from pipeline.inputs.shards import read_records
        from pipeline.stages.extraction import activations_stage, neutral_stats_stage

        store = ArtifactStore(root / "store")
        settings = StageSettings(log=lambda m: None, token_budget=args.token_budget)

        class Fake:  # an Artifact stand-in over the corpus folders: load_items reads .path
            def __init__(self, path, key):
                self.path, self.key, self.provenance = path, key, {"inputs": {}}

        stories, neutral = Fake(root / "stories", "bench-stories"), Fake(root / "neutral",
                                                                          "bench-neutral")
        texts = [it["text"] for it in read_records(stories.path, "items")]
        batches = capture_batches(runtime.tokenizer, texts, MAX_STORY_TOKENS, args.token_budget)
        story_batches = batches
        rows.append(report("activations", paired(
            lambda i: lambda: activations_stage(
                runtime, ArtifactStore(root / f"store-a{i}"), stories, settings),
            lambda i: lambda: bare_forward(runtime.model, story_batches)), stories=len(texts)))
        dialogues = [it["text"] for it in load_items(neutral)]
        batches = capture_batches(runtime.tokenizer, dialogues, MAX_NEUTRAL_TOKENS,
                                  args.token_budget)
        rows.append(report("neutral_stats", paired(
            lambda i: lambda: neutral_stats_stage(
                runtime, ArtifactStore(root / f"store-n{i}"), neutral, settings),
            lambda i: lambda: bare_forward(runtime.model, batches)), dialogues=len(dialogues)))

        if not args.skip_preferences:
            from pipeline.measures.results import load_preferences
            from pipeline.stages.preferences import (
                PreferenceSettings,
                preference_setup,
                preferences_stage,
            )

            prefs = PreferenceSettings.for_device("cpu", log=lambda m: None)
            setup = preference_setup(runtime, prefs.token_budget)
            forward = [{"input_ids": b.input_ids, "attention_mask": b.attention_mask,
                        "position_ids": b.position_ids} for b in setup.batches]
            result = paired(
                lambda i: lambda: preferences_stage(
                    runtime, store if i == 0 else ArtifactStore(root / f"store-p{i}"), prefs),
                lambda i: lambda: bare_forward(runtime.model, forward))
            rows.append(report("preferences", result, prompts=len(setup.prompts)))
            artifact = preferences_stage(runtime, store, prefs)  # the first run's, cached
            if args.steering:
                rows.append(steering_row(runtime, store, load_preferences(artifact), setup,
                                         prefs))
    summary = {"model": spec.name, "device": "cpu", "threads": torch.get_num_threads(),
               "pairs": args.pairs, "load_average_1min_before_after": [
                   round(load_before[0], 2), round(os.getloadavg()[0], 2)],
               "total_s": round(time.perf_counter() - started, 1),
               "worst": max(rows, key=lambda r: r["ratio"])["stage"],
               "within_target": [r["stage"] for r in rows if r["ratio"] <= TARGET],
               "over_target": [r["stage"] for r in rows if r["ratio"] > TARGET]}
    print(json.dumps(summary), flush=True)


def steering_row(runtime, store, baseline, setup, prefs):
    """steered_preferences with top_k 1 on planted vectors, against bare reruns per condition."""
    import numpy as np

    from pipeline.inputs.experiment import EXEMPLARS
    from pipeline.inputs.stimuli import load_emotions
    from pipeline.measures.results import (
        EmotionVectors,
        load_activity_probes,
        preference_correlations,
    )
    from pipeline.model.steering_plan import select_emotions
    from pipeline.stages.preferences import activity_probes_stage, steered_preferences_stage

    emotions = load_emotions()
    config = runtime.model.config
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((config.num_hidden_layers, len(emotions), config.hidden_size))
    vectors = EmotionVectors(emotions=emotions, raw=raw, denoised=raw,
                             mean_norms=np.full(config.num_hidden_layers, 10.0), pcs=(),
                             counts=np.full(len(emotions), 12), key="bench-planted")
    probes = load_activity_probes(activity_probes_stage(runtime, store, vectors, prefs))
    # The conditions the stage will run: top_k 1 plus the exemplars, and the control.
    n_conditions = 1 + len(select_emotions(
        probes.emotions, preference_correlations(probes, baseline), top_k=1, always=EXEMPLARS,
        exclude=vectors.missing))
    rerun = [{"input_ids": b.input_ids, "attention_mask": b.attention_mask,
              "position_ids": b.position_ids} for b in setup.batches if b.group == 1]
    root = Path(store.root)

    def bare() -> None:
        for _ in range(n_conditions):
            bare_forward(runtime.model, rerun)

    result = paired(
        lambda i: lambda: steered_preferences_stage(
            runtime, ArtifactStore(root.parent / f"store-s{i}"), baseline, probes, vectors,
            prefs, top_k=1),
        lambda i: bare)
    assert result[0].provenance["result"]["n_conditions"] == n_conditions
    return report("steered_preferences", result, conditions=n_conditions,
                  note="bare = one full forward over the rerun prompts per condition; the stage "
                       "replays the layers below the steering layer and adds a check pass")


if __name__ == "__main__":
    main()
