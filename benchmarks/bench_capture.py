"""Activation capture cost, as ratios measured within one run (these machines are noisy).

    python benchmarks/bench_capture.py [--stories 256] [--repeats 3]

1. capture at all layers (in-hook fp64 reduction) / bare forward over the same batches
   (target <= 1.15);
2. speed-up of the batched capture over a naive baseline: one story at a time with
   output_hidden_states and the LM head;
3. peak resident memory of the capture at two corpus sizes, each in a fresh process, to show
   it does not grow with the number of stories.
Models: the shipped tiny model and a randomly initialised ~100M-parameter Llama; with CUDA,
also a randomly initialised model of the Llama 3.1 8B shape, plus generation tokens/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.models import random_llama, tiny  # noqa: E402
from pipeline.model.capture import (  # noqa: E402
    TokenizedText,
    _forward,
    capture_stories,
    length_batches,
    pad_rows,
)


def synthetic_stories(n: int, vocab: int, seed: int = 0) -> list[TokenizedText]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(80, 260, (n,), generator=generator).tolist()
    return [TokenizedText([0] + torch.randint(10, vocab, (length,), generator=generator).tolist(),
                          i % 171, f"s{i}") for i, length in enumerate(lengths)]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def bare_forward(model, items, budget):
    for batch in length_batches(items, budget):
        ids, mask = pad_rows([items[i].input_ids for i in batch], 0, left=True)
        _forward(model, ids, mask)


def naive(model, items):
    device = next(model.parameters()).device
    with torch.inference_mode():
        for item in items:
            hidden = model(torch.tensor([item.input_ids], device=device),
                           output_hidden_states=True).hidden_states
            _ = [h[0, 50:].double().mean(0).cpu() for h in hidden[1:]]


def compare(name: str, model, n: int, budget: int, repeats: int, with_naive: bool) -> dict:
    items = synthetic_stories(n, model.config.vocab_size)
    capture = timed(lambda: capture_stories(model, items, n_groups=171, pad_id=0,
                                            token_budget=budget), repeats)
    bare = timed(lambda: bare_forward(model, items, budget), repeats)
    row = {"model": name, "stories": n, "tokens": sum(len(i.input_ids) for i in items),
           "capture_s": round(capture, 3), "bare_forward_s": round(bare, 3),
           "capture_over_bare": round(capture / bare, 3)}
    if with_naive:
        sample = items[: max(8, n // 8)]
        naive_s = timed(lambda: naive(model, sample), 1) * len(items) / len(sample)
        row["naive_s_extrapolated"] = round(naive_s, 3)
        row["speedup_over_naive"] = round(naive_s / capture, 2)
    return row


def memory_child(shape: str, n: int, budget: int) -> None:
    model = tiny()[0] if shape == "tiny" else random_llama(shape, "cpu")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    capture_stories(model, synthetic_stories(n, model.config.vocab_size), n_groups=171, pad_id=0,
                    token_budget=budget)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mb": round(peak / 1024, 1),
                      "growth_during_capture_mb": round((peak - base) / 1024, 1)}))


def memory(shape: str, n: int, budget: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", shape, str(n), str(budget)],
                         capture_output=True, text=True, check=True)
    return {"model": shape, "stories": n, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stories", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-child", nargs=3, metavar=("SHAPE", "N", "BUDGET"))
    args = parser.parse_args()
    if args.memory_child:
        shape, n, budget = args.memory_child
        memory_child(shape, int(n), int(budget))
        return
    torch.manual_seed(0)
    rows = [compare("tiny", tiny()[0], args.stories, 8192, args.repeats, True),
            compare("llama_100m", random_llama("llama_100m", "cpu"), args.stories // 4, 4096,
                    args.repeats, True)]
    if torch.cuda.is_available():
        big = random_llama("llama31_8b_shape", "cuda", torch.bfloat16)
        rows.append(compare("llama31_8b_shape", big, 1024, 65536, args.repeats, True))
    for row in rows:
        print(json.dumps(row))
    for n in (args.stories // 4, args.stories * 2):
        print(json.dumps(memory("llama_100m", n, 4096)))


if __name__ == "__main__":
    main()
