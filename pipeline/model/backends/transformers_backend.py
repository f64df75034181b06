"""The transformers backend: `generate_batch` (model.generate, left padding) behind the seam."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.model.backends import check_n, check_seeds
from pipeline.model.generation import Generation, SamplingSettings, generate_batch, generate_seeded
from pipeline.model.prompts import RenderedPrompt


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any):
        self.model = model
        self.tokenizer = tokenizer

    def generate(
        self,
        prompts: Sequence[RenderedPrompt],
        settings: SamplingSettings,
        seed: int,
        n: int = 1,
        seeds: Sequence[int] | None = None,
    ) -> list[list[Generation]]:
        check_n(n)
        if seeds is not None:
            # One generator per row: sample k of prompt i is seeded seeds[i] + k, as in vLLM.
            check_seeds(seeds, prompts)
            rows = [prompt for prompt in prompts for _ in range(n)]
            row_seeds = [int(s) + k for s in seeds for k in range(n)]
            flat = generate_seeded(self.model, self.tokenizer, rows, settings, row_seeds)
            return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]
        # n samples of a prompt are n rows of one batch, so n = 1 is exactly generate_batch.
        rows = [prompt for prompt in prompts for _ in range(n)]
        flat = generate_batch(self.model, self.tokenizer, rows, settings, seed)
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        return {"name": self.name, "transformers": transformers.__version__,
                "torch": torch.__version__}
