"""Preference-pass cost, as ratios measured within one run (these machines are noisy).

    python benchmarks/bench_preferences.py [--prompts 4032] [--repeats 3] [--threads N]

Over the paper's A/B prompts (tiny tokenizer, chat format), per model:
1. throughput of the preference pass (decoder + last-position A/B readout) as a ratio to a bare
   decoder forward over the same padded batches (target >= 0.85);
2. speed-up over a one-prompt-at-a-time loop through the full LM (vocabulary logits at every
   position), extrapolated from a sample;
3. one steered condition (32 steered activities, replaying the first steering layer and
   skipping prompts without a steered activity) as a fraction of the baseline pass's time.
Models: the shipped tiny model and a randomly initialised ~100M-parameter Llama; with CUDA, also
a randomly initialised model of the Llama 3.1 8B shape in bfloat16.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.models import random_llama, tiny  # noqa: E402
from pipeline.inputs.stimuli import load_activities  # noqa: E402
from pipeline.model.ab_pass import (  # noqa: E402
    Steering,
    build_preference_prompts,
    choice_readout,
    encode_batches,
    plan_batches,
    preference_pass,
    resolve_choice_tokens,
)
from pipeline.model.capture import base_model  # noqa: E402
from pipeline.model.steering_plan import (  # noqa: E402
    prompt_has_steered,
    steered_activities,
    steering_mask,
)
from pipeline.model.steering_scale import random_directions, steering_vectors  # noqa: E402


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def once(fn) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    return min(once(fn) for _ in range(repeats))


def timed_pair(first, second, repeats: int) -> tuple[float, float]:
    """Best time of each, measured alternately so that load drifting over the run hits both."""
    first()
    second()
    times = [(once(first), once(second)) for _ in range(repeats)]
    return min(t[0] for t in times), min(t[1] for t in times)


def bare_forward(model, batches) -> None:
    with torch.inference_mode():
        for batch in batches:
            base_model(model)(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                              position_ids=batch.position_ids, use_cache=False)


def one_at_a_time(model, prompts, choice) -> None:
    device = next(model.parameters()).device
    with torch.inference_mode():
        for p in prompts:
            logits = model(input_ids=torch.tensor([p.rendered.input_ids], device=device)).logits
            _ = float(logits[0, -1, choice.a_id] - logits[0, -1, choice.b_id])


def compare(name: str, model, tokenizer, n_prompts: int, budget: int, repeats: int,
            naive_sample: int) -> dict:
    device = next(model.parameters()).device
    activities = load_activities()
    prompts = build_preference_prompts(tokenizer, activities, fmt="chat",
                                       chat_template_args={})[:n_prompts]
    steered = set(steered_activities(activities))
    groups = [int(prompt_has_steered(p, steered)) for p in prompts]
    rendered = [p.rendered for p in prompts]
    plan = plan_batches([len(r.input_ids) for r in rendered], groups, budget)
    batches = encode_batches(rendered, plan, groups, pad_id=tokenizer.pad_token_id,
                             device=device)
    choice = resolve_choice_tokens(tokenizer, rendered[0], fmt="chat")
    readout = choice_readout(model, choice)
    tokens = sum(b.input_ids.numel() for b in batches)

    preference, bare = timed_pair(lambda: preference_pass(model, batches, readout),
                                  lambda: bare_forward(model, batches), repeats)

    layer = model.config.num_hidden_layers * 2 // 3
    rerun = [k for k, b in enumerate(batches) if b.group == 1]
    masks = {k: steering_mask(batches[k], prompts, steered) for k in rerun}
    vectors = steering_vectors(random_directions([layer], model.config.hidden_size, 0),
                               strength=0.5, mean_norms=torch.ones(layer + 1).numpy())
    steering = Steering((layer,), vectors, masks.__getitem__)
    _, cache = preference_pass(model, batches, readout, capture_layer=layer, only=rerun)
    steered_s = timed(lambda: preference_pass(model, batches, readout, steering=steering,
                                              replay=cache, only=rerun), repeats)

    sample = prompts[:naive_sample]
    naive = timed(lambda: one_at_a_time(model, sample, choice), 1) * len(prompts) / len(sample)
    return {
        "model": name, "device": str(device), "prompts": len(prompts), "padded_tokens": tokens,
        "batches": len(batches), "preference_pass_s": round(preference, 3),
        "bare_forward_s": round(bare, 3),
        "throughput_ratio_vs_bare": round(bare / preference, 3),
        "one_at_a_time_s_extrapolated": round(naive, 2),
        "speedup_vs_one_at_a_time": round(naive / preference, 1),
        "steered_condition_s": round(steered_s, 3),
        "steered_over_baseline": round(steered_s / preference, 3),
        "steering_layer": layer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4032)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = tiny()
    rows = [compare("tiny", model, tokenizer, args.prompts, 16384, args.repeats, 64)]
    rows.append(compare("llama_100m", random_llama("llama_100m", "cpu"), tokenizer,
                        min(args.prompts, 128), 8192, args.repeats, 8))
    if torch.cuda.is_available():
        big = random_llama("llama31_8b_shape", "cuda", torch.bfloat16)
        rows.append(compare("llama31_8b_shape", big, tokenizer, args.prompts, 65536,
                            args.repeats, 64))
    for row in rows:
        print(json.dumps(row))
    target = all(row["throughput_ratio_vs_bare"] >= 0.85 for row in rows)
    print(f"preference pass >= 0.85 x bare forward throughput on every model: {target}")


if __name__ == "__main__":
    main()
