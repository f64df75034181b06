"""Story calls through the per-job seeded decoder: run-then-cut (the old path) against stopping
at the rule (generate_seeded). Prints generated tokens, wall time, and whether the kept texts
are byte-identical. Usage:
    python benchmarks/bench_seeded_stop.py --model smollm2_135m \
        --model-path /work/real-models/smollm2_135m --calls 8 --max-new-tokens 256
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.inputs.registry import get_spec  # noqa: E402
from pipeline.inputs.scale import SCALES  # noqa: E402
from pipeline.model import corpus  # noqa: E402
from pipeline.model.generation import SamplingSettings, cut_after_items, generate_seeded  # noqa: E402
from pipeline.model.loading import resolve_weights  # noqa: E402
from pipeline.model.prompts import render_prompt  # noqa: E402
from pipeline.model.runtime import ModelRuntime  # noqa: E402
from pipeline.model.steered_generation import DecodeSettings, generate  # noqa: E402


def _row_stop(tokenizer, settings):
    from pipeline.model.stopping import ItemStop, newline_token_ids

    newline = newline_token_ids(tokenizer)
    return lambda: ItemStop(tokenizer, 0, settings.stop_after_items, settings.item_marker, newline)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--n-stories", type=int, default=12)
    args = parser.parse_args()
    spec = get_spec(args.model)
    location = resolve_weights(spec, {spec.name: args.model_path} if args.model_path else {})
    runtime = ModelRuntime(spec, location, device="cpu")
    model, tokenizer = runtime.model, runtime.tokenizer
    jobs = corpus.story_jobs(SCALES["full"])[: args.calls]
    prompts = [render_prompt(tokenizer, job.user, fmt=spec.prompt_format,
                             chat_template_args=spec.chat_template_args,
                             assistant_prefill=job.prefill) for job in jobs]
    seeds = [corpus.job_seed(0, job) for job in jobs]
    settings = SamplingSettings(max_new_tokens=args.max_new_tokens, temperature=1.0, top_p=0.95,
                                seed=0, stop_after_items=args.n_stories, item_marker="story")
    decode = DecodeSettings(max_new_tokens=settings.max_new_tokens,
                            temperature=settings.temperature, top_p=settings.top_p,
                            top_k=settings.top_k, greedy=not settings.do_sample)
    generate_seeded(model, tokenizer, prompts[:1], settings, seeds[:1])  # warm-up
    t0 = time.perf_counter()
    raw = generate(model, tokenizer, prompts, decode, seeds=seeds, batch_size=len(prompts))
    old = cut_after_items(tokenizer, raw, settings)
    t_old = time.perf_counter() - t0
    t0 = time.perf_counter()
    new_raw = generate(model, tokenizer, prompts, decode, seeds=seeds, batch_size=len(prompts),
                       row_stop=_row_stop(tokenizer, settings))
    new = cut_after_items(tokenizer, new_raw, settings)  # what generate_seeded does
    t_new = time.perf_counter() - t0
    stopped = sum(g.n_tokens < r.n_tokens for g, r in zip(old, raw, strict=True))
    print(f"{spec.name}: {len(prompts)} story calls, max {args.max_new_tokens} new tokens, "
          f"{args.n_stories} stories/call; {stopped} calls reached the rule")
    print(f"  run-then-cut: {sum(r.n_tokens for r in raw)} tokens sampled, "
          f"{sum(g.n_tokens for g in old)} kept, {t_old:.2f} s")
    print(f"  stop at rule: {sum(r.n_tokens for r in new_raw)} tokens sampled, "
          f"{sum(g.n_tokens for g in new)} kept, {t_new:.2f} s")
    assert new == generate_seeded(model, tokenizer, prompts, settings, seeds)
    print(f"  kept texts byte-identical: {[g.text for g in new] == [g.text for g in old]}")


if __name__ == "__main__":
    main()
