"""Generation backends: the seam between the corpus stages and whatever samples the text.

A backend takes rendered prompts as token ids (the harness tokenizes once, in
`pipeline.model.prompts`) and returns `Generation`s decoded with the harness tokenizer, so stories
read the same whichever engine wrote them. Two exist:

- "transformers" (`transformers_backend`): `model.generate` in this process, the default; the
  only path for anything that reads or edits activations (capture, probes, steering).
- "vllm" (`vllm_backend`): vLLM for the unsteered corpora only (stories, neutral dialogues),
  an optional extra (`pip install .[vllm]`); vllm is imported only when this backend is made.

A further engine (an inference server, a cluster job) is one more module implementing
`GenerationBackend` and one more name in `get_backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # kept light: the pytest options import BACKENDS at start-up
    from pipeline.model.generation import Generation, SamplingSettings
    from pipeline.model.prompts import RenderedPrompt
    from pipeline.model.runtime import ModelRuntime

BACKENDS = ("transformers", "vllm")


class BackendUnavailable(ImportError):
    """The backend's engine is not installed; the message says how to install it."""


@runtime_checkable
class GenerationBackend(Protocol):
    name: str

    def generate(
        self,
        prompts: Sequence[RenderedPrompt],
        settings: SamplingSettings,
        seed: int,
        n: int = 1,
        seeds: Sequence[int] | None = None,
    ) -> list[list[Generation]]:
        """`n` sampled continuations per prompt, in prompt order; `seed` fixes the call's stream.

        With `seeds` (one per prompt) each prompt samples from its own stream instead, so its
        text does not depend on the other prompts of the call (the corpus stages' jobs).
        """
        ...

    def describe(self) -> dict[str, Any]:
        """Engine name, version and layout, for provenance."""
        ...


def check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n = {n!r} samples per prompt; expected a positive integer (1 or 12)")


def check_seeds(seeds: Sequence[int], prompts: Sequence[object]) -> None:
    if len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts; pass one each")


def get_backend(name: str, runtime: ModelRuntime) -> GenerationBackend:
    """The backend `name` for the model of `runtime` (its spec, weights and tokenizer)."""
    if name == "transformers":
        from pipeline.model.backends.transformers_backend import TransformersBackend

        return TransformersBackend(runtime.model, runtime.tokenizer)
    if name == "vllm":
        from pipeline.model.backends.vllm_backend import VLLMBackend

        return VLLMBackend(runtime.spec, runtime.location, runtime.tokenizer)
    raise ValueError(
        f"unknown generation backend {name!r}; expected one of {BACKENDS} "
        "(--backend transformers is the default; --backend vllm needs `pip install .[vllm]`)"
    )
