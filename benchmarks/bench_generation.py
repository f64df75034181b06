"""Generation throughput of the backends, and the projected wall time of the full story run.

    python benchmarks/bench_generation.py [--prompts 8] [--new-tokens 48]
                                          [--gpu-prompts 256] [--gpu-new-tokens 2400]

Prints one JSON line per measurement (machines here are shared: compare ratios within a run):
1. tokens/s of the transformers backend (`TransformersBackend` -> `generate_batch`) on the
   shipped tiny model with the paper's story prompts, and on a randomly initialised ~100M Llama,
   on CPU;
2. where vllm is installed and CUDA is present, tokens/s of the vLLM backend on the same
   prompts and its ratio to transformers;
3. with CUDA, a randomly initialised model of the Llama 3.1 8B shape in bfloat16: tokens/s on a
   sample of story-shaped calls (a shared ~250-token template prefix, a distinct tail, full-length
   generations) and the projected wall time of the full run, 17,100 calls (171 emotions x 100
   topics) x ~2,400 new tokens (12 stories per call = 205,200 stories), against the 2-hour target.

End-of-sequence ids are switched off on the benchmark's own model copies, so every row
generates the full length the way a story call does (random weights would stop anywhere).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.models import random_llama  # noqa: E402
from pipeline.model.backends import BackendUnavailable  # noqa: E402
from pipeline.model.backends.transformers_backend import TransformersBackend  # noqa: E402
from pipeline.model.generation import SamplingSettings  # noqa: E402
from pipeline.model.prompts import RenderedPrompt  # noqa: E402

FULL_RUN_CALLS = 171 * 100
FULL_RUN_NEW_TOKENS = 2400  # 12 stories of ~200 tokens per call
TARGET_HOURS = 2.0


class IdTokenizer:
    """For random models without a tokenizer: pads with 0 and 'decodes' ids as numbers."""

    pad_token_id = 0
    eos_token_id = None

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(map(str, ids))


def without_eos(model):
    model.generation_config.eos_token_id = None
    return model


def tiny_with_story_prompts(n: int):
    from pipeline.inputs.registry import get_spec
    from pipeline.inputs.scale import get_scale
    from pipeline.model.corpus import story_jobs
    from pipeline.model.loading import load_model, load_tokenizer, resolve_weights
    from pipeline.model.prompts import render_prompt

    spec = get_spec("tiny")
    location = resolve_weights(spec, {})
    tokenizer = load_tokenizer(spec, location)
    jobs = story_jobs(get_scale("full"))[:: FULL_RUN_CALLS // n][:n]
    prompts = [render_prompt(tokenizer, job.user, fmt=spec.prompt_format,
                             chat_template_args=spec.chat_template_args,
                             assistant_prefill=job.prefill) for job in jobs]
    model = load_model(spec, location, device="cuda" if torch.cuda.is_available() else "cpu")
    return spec, location, tokenizer, without_eos(model), prompts


def story_shaped_prompts(n: int, vocab: int, prefix: int = 250, tail: int = 50):
    """n prompts sharing a `prefix`-token template and differing in a `tail`-token topic."""
    generator = torch.Generator().manual_seed(0)
    shared = torch.randint(10, vocab, (prefix,), generator=generator).tolist()
    prompts = []
    for _ in range(n):
        ids = [1] + shared + torch.randint(10, vocab, (tail,), generator=generator).tolist()
        prompts.append(RenderedPrompt(text="", input_ids=ids, offsets=[(0, 0)] * len(ids),
                                      read_position=len(ids) - 1, spans={}))
    return prompts


def throughput(backend, prompts, new_tokens: int) -> dict[str, Any]:
    settings = SamplingSettings(max_new_tokens=new_tokens, temperature=1.0, top_p=0.95)
    backend.generate(prompts[:2], SamplingSettings(max_new_tokens=4), seed=0)  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = backend.generate(prompts, settings, seed=1)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    tokens = sum(g.n_tokens for row in out for g in row)
    return {"prompts": len(prompts), "new_tokens": new_tokens, "generated_tokens": tokens,
            "wall_s": round(wall, 3), "tokens_per_s": round(tokens / wall, 1)}


def projection(tokens_per_s: float) -> dict[str, Any]:
    total = FULL_RUN_CALLS * FULL_RUN_NEW_TOKENS
    hours = total / tokens_per_s / 3600
    return {"full_run_calls": FULL_RUN_CALLS, "new_tokens_per_call": FULL_RUN_NEW_TOKENS,
            "full_run_new_tokens": total, "projected_hours": round(hours, 2),
            "target_hours": TARGET_HOURS, "meets_target": hours <= TARGET_HOURS}


def vllm_backend(spec, location, tokenizer):
    """A VLLMBackend, or the reason there is none (vllm missing, or no CUDA GPU)."""
    from pipeline.model.backends.vllm_backend import VLLMBackend, import_vllm

    try:
        import_vllm()
    except BackendUnavailable:
        return None, "vllm is not installed (pip install .[vllm])"
    if not torch.cuda.is_available():
        return None, "no CUDA GPU"
    return VLLMBackend(spec, location, tokenizer, gpu_memory_utilization=0.85), None


def saved_random(model, directory: Path, dtype: str):
    """Write a random model as a safetensors checkpoint vLLM can load, with a registry spec."""
    import shutil

    from pipeline import REPO_ROOT
    from pipeline.inputs.registry import ModelSpec
    from pipeline.model.loading import WeightsLocation

    model.save_pretrained(directory, safe_serialization=True)
    # vLLM loads a tokenizer with every model; the tiny one serves (ids in, ids out).
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(REPO_ROOT / "data" / "models" / "tiny" / name, directory / name)
    layers = model.config.num_hidden_layers
    spec = ModelSpec(name="bench", hf_id="random", revision="local", n_layers=layers,
                     analysis_layer=0, probe_layers=(0,), steering_layers=(0,), dtype=dtype,
                     prompt_format="raw", read_position="last_prompt_token",
                     chat_template_args={}, trust_remote_code=False)
    return spec, WeightsLocation(directory, "benchmark")


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def compare_with_vllm(name, row, spec, location, tokenizer, prompts, new_tokens) -> None:
    try:
        backend, reason = vllm_backend(spec, location, tokenizer)
        if backend is None:
            emit({"model": name, "backend": "vllm", "skipped": reason})
            return
        fast = throughput(backend, prompts, new_tokens)
    except Exception as exc:  # e.g. no vLLM kernel for float32: report it, measure the rest
        emit({"model": name, "backend": "vllm", "error": f"{type(exc).__name__}: {exc}"[:300]})
        return
    emit({"model": name, "backend": "vllm", **fast,
          "vllm_over_transformers": round(fast["tokens_per_s"] / row["tokens_per_s"], 2),
          **projection(fast["tokens_per_s"])})
    del backend


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8, help="calls per CPU sample")
    parser.add_argument("--new-tokens", type=int, default=48, help="tokens per CPU call")
    parser.add_argument("--gpu-prompts", type=int, default=256, help="calls in the 8B sample")
    parser.add_argument("--gpu-new-tokens", type=int, default=FULL_RUN_NEW_TOKENS)
    args = parser.parse_args()
    context = {"torch_threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0],
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    emit({"context": context})

    spec, location, tokenizer, tiny, prompts = tiny_with_story_prompts(args.prompts)
    row = {"model": "tiny", "backend": "transformers",
           **throughput(TransformersBackend(tiny, tokenizer), prompts, args.new_tokens)}
    emit(row)
    compare_with_vllm("tiny", row, spec, location, tokenizer, prompts, args.new_tokens)
    del tiny

    small = without_eos(random_llama("llama_100m", "cpu", torch.float32))
    emit({"model": "llama_100m", "backend": "transformers", "device": "cpu",
          "parameters_m": round(sum(p.numel() for p in small.parameters()) / 1e6, 1),
          **throughput(TransformersBackend(small, IdTokenizer()),
                       story_shaped_prompts(args.prompts, 32000), args.new_tokens)})
    del small

    if not torch.cuda.is_available():
        emit({"model": "llama31_8b_shape", "skipped": "no CUDA GPU: no H200 projection"})
        return
    big = without_eos(random_llama("llama31_8b_shape", "cuda", torch.bfloat16))
    sample = story_shaped_prompts(args.gpu_prompts, 128256)
    row = {"model": "llama31_8b_shape", "backend": "transformers",
           **throughput(TransformersBackend(big, IdTokenizer()), sample, args.gpu_new_tokens)}
    emit({**row, **projection(row["tokens_per_s"])})
    if importlib.util.find_spec("vllm") is None:  # skip saving 16 GB for nothing
        emit({"model": "llama31_8b_shape", "backend": "vllm",
              "skipped": "vllm is not installed (pip install .[vllm])"})
        return
    with tempfile.TemporaryDirectory() as tmp:
        big_spec, big_location = saved_random(big, Path(tmp), "bfloat16")
        del big
        torch.cuda.empty_cache()
        compare_with_vllm("llama31_8b_shape", row, big_spec, big_location, IdTokenizer(),
                          sample, args.gpu_new_tokens)


if __name__ == "__main__":
    main()
