"""The vLLM backend for the unsteered corpora (stories, neutral dialogues).

Token ids in, token ids out: prompts go in as the harness's own token ids
(`TokensPrompt(prompt_token_ids=...)`), so vLLM never re-renders or re-tokenizes them, and the
sampled ids are cut at the first end-of-turn id and decoded with the harness tokenizer by the
same rule as `generate_batch`. Prefix caching is on: the 100 story prompts of one emotion share
a long template prefix, and the `n` samples of one prompt share all of it. Tensor parallelism
comes from the registry's `tensor_parallel_size`.

Activations and steering never run here: vLLM fuses the residual add into the norm and has no
per-layer hooks, so its residual stream is not the one the probes read (docs/SCALING.md).

`vllm` is imported when a `VLLMBackend` is made, never at module import.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pipeline.inputs.registry import ModelSpec
from pipeline.model.backends import BackendUnavailable, check_n, check_seeds
from pipeline.model.generation import Generation, SamplingSettings
from pipeline.model.loading import WeightsLocation
from pipeline.model.prompts import RenderedPrompt, cut_at_stop_strings

# vLLM reserves KV-cache room for at least one sequence of max_model_len tokens; a story call
# needs about 300 prompt tokens plus max_new_tokens (3072 at full scale), far below the
# 128k windows of Llama 3 / Qwen3, whose reservation would not fit beside a 70B on few GPUs.
DEFAULT_MAX_MODEL_LEN = 8192


def context_window(location: WeightsLocation, cap: int = DEFAULT_MAX_MODEL_LEN) -> int:
    """`cap`, or the model's own window when that is shorter (vLLM refuses a longer one)."""
    config = json.loads((Path(location.path) / "config.json").read_text(encoding="utf-8"))
    config = config.get("text_config", config)  # multimodal checkpoints nest the LM's config
    return min(cap, int(config.get("max_position_embeddings", cap)))


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise BackendUnavailable(
            "the vLLM generation backend needs the `vllm` package, which is not installed for "
            f"{sys.executable}. Install the optional extra with `pip install .[vllm]` (from the "
            "repository root, on a Linux machine with a CUDA GPU), or generate with "
            "`--backend transformers` (the default)."
        ) from exc
    return vllm


def eos_token_ids(location: WeightsLocation, tokenizer: Any) -> list[int]:
    """The ids generation stops at: the checkpoint's generation_config, as transformers uses."""
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(Path(location.path)).eos_token_id
    except OSError:  # no generation_config.json: fall back to the tokenizer's
        eos = tokenizer.eos_token_id
    return sorted(set(eos if isinstance(eos, list) else [] if eos is None else [eos]))


def to_generations(
    outputs: Iterable[Any], tokenizer: Any, eos_ids: Sequence[int], n: int,
    stop_strings: Sequence[Sequence[str]] | None = None,
) -> list[list[Generation]]:
    """vLLM RequestOutputs (one per prompt, `n` CompletionOutputs each) -> Generations.

    `stop_strings[i]` (the raw format's next "Human:" turn) cuts prompt i's samples where it
    starts, by the rule transformers generation uses (vLLM does not detokenize, so it cannot stop
    at the string itself: the tokens after it are sampled and dropped).
    """
    stops = set(eos_ids)
    result = []
    for index, request in enumerate(outputs):
        strings = () if stop_strings is None else tuple(stop_strings[index])
        samples = sorted(request.outputs, key=lambda sample: sample.index)
        if len(samples) != n:
            raise RuntimeError(f"vLLM returned {len(samples)} samples for a prompt; asked for {n}")
        row = []
        for sample in samples:
            ids = list(sample.token_ids)
            stop = next((i for i, token in enumerate(ids) if token in stops), None)
            tokens = ids if stop is None else ids[:stop]
            tokens, text, hit = cut_at_stop_strings(tokenizer, tokens, strings)
            row.append(Generation(
                text=text,
                n_tokens=len(tokens),
                # vLLM may leave the stop id out of token_ids; its finish_reason still says so.
                finished=stop is not None or sample.finish_reason == "stop" or hit,
            ))
        result.append(row)
    return result


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        spec: ModelSpec,
        location: WeightsLocation,
        tokenizer: Any,
        *,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
    ):
        vllm = import_vllm()
        from vllm.inputs import TokensPrompt

        self.spec = spec
        self.tokenizer = tokenizer
        self.eos_ids = eos_token_ids(location, tokenizer)
        self._vllm = vllm
        self._tokens_prompt = TokensPrompt
        self.llm = vllm.LLM(
            model=str(location.path),
            tokenizer=str(location.path),
            dtype=spec.dtype,
            tensor_parallel_size=spec.tensor_parallel_size,
            enable_prefix_caching=True,
            trust_remote_code=spec.trust_remote_code,
            load_format="safetensors",
            max_model_len=max_model_len or context_window(location),
            gpu_memory_utilization=gpu_memory_utilization,
            seed=0,
        )

    def _params(self, settings: SamplingSettings, seed: int, n: int) -> Any:
        return self._vllm.SamplingParams(
            n=n,
            temperature=settings.temperature if settings.do_sample else 0.0,
            top_p=settings.top_p if settings.do_sample else 1.0,
            top_k=settings.top_k if settings.do_sample and settings.top_k else -1,
            max_tokens=settings.max_new_tokens,
            seed=seed,
            stop_token_ids=self.eos_ids,
            detokenize=False,  # the harness tokenizer decodes, as for transformers
        )

    def generate(
        self,
        prompts: Sequence[RenderedPrompt],
        settings: SamplingSettings,
        seed: int,
        n: int = 1,
        seeds: Sequence[int] | None = None,
    ) -> list[list[Generation]]:
        check_n(n)
        requests = [self._tokens_prompt(prompt_token_ids=list(p.input_ids)) for p in prompts]
        if seeds is not None:
            check_seeds(seeds, prompts)
        else:
            # vLLM seeds the k-th of n samples with seed + k, so prompts are n seeds apart.
            seeds = [seed + i * n for i in range(len(prompts))]
        params = [self._params(settings, int(s), n) for s in seeds]
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        return to_generations(outputs, self.tokenizer, self.eos_ids, n,
                              [p.stop_strings for p in prompts])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "vllm": getattr(self._vllm, "__version__", "unknown"),
                "tensor_parallel_size": self.spec.tensor_parallel_size,
                "prefix_caching": True}
