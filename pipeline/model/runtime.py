"""A registered model with its weights located, loaded lazily on first use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pipeline.inputs.registry import ModelSpec, get_spec
from pipeline.inputs.scale import ScalePreset, get_scale
from pipeline.model.loading import (
    WeightsLocation,
    default_device,
    load_model,
    load_tokenizer,
    resolve_weights,
    weights_fingerprint,
)


class ModelRuntime:
    """Everything a stage needs to know about one model; the weights load only when asked.

    Cached artifacts are found from the fingerprint alone, so a scorecard over a warm cache
    never loads the model.
    """

    def __init__(
        self,
        spec: ModelSpec,
        location: WeightsLocation,
        *,
        device: str | None = None,
        scale: str | None = None,
        device_map: str | dict[str, Any] | None = None,
    ):
        self.spec = spec
        self.location = location
        self.device = device or default_device()
        # Overrides the registry's device_map; with either, accelerate places the layers and
        # `device` is not used. Placement never changes results, so it is not in identity().
        self.device_map = device_map
        self.scale: ScalePreset = get_scale(scale or spec.default_scale)

    @cached_property
    def fingerprint(self) -> str:
        return weights_fingerprint(self.location.path)

    @cached_property
    def tokenizer(self) -> Any:
        return load_tokenizer(self.spec, self.location)

    @cached_property
    def model(self) -> Any:
        return load_model(self.spec, self.location, device=self.device,
                          device_map=self.device_map)

    @property
    def loaded(self) -> bool:
        return "model" in self.__dict__

    def identity(self) -> dict[str, Any]:
        """The model part of every stage's cache key and provenance."""
        return {
            "name": self.spec.name,
            "hf_id": self.spec.hf_id,
            "revision": self.spec.revision,
            "weights_fingerprint": self.fingerprint,
            "dtype": self.spec.dtype,
        }

    def release(self) -> None:
        self.__dict__.pop("model", None)


def open_runtime(
    name: str,
    model_paths: Mapping[str, str] | None = None,
    *,
    artifact_root: Path | None = None,
    device: str | None = None,
    scale: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> ModelRuntime:
    """A registered model's runtime with its weights located (nothing loads yet).

    Raises WeightsNotFound, whose message says how to provide them; the caller decides what
    that means: the CLI stops with it, the fixtures skip (or fail under --strict).
    """
    spec = get_spec(name)
    location = resolve_weights(spec, dict(model_paths or {}), artifact_root=artifact_root,
                               log=log)
    return ModelRuntime(spec, location, device=device, scale=scale, device_map=device_map)
