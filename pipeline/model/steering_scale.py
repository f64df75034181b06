"""The paper's steering scale, one definition for every experiment that steers.

A direction is unit-normalised and added as strength x mean_norm[layer] x unit(direction), where
mean_norm is the average residual norm over neutral non-special tokens (the vectors stage). The
matched-norm control is a seeded Gaussian draw, unit-normalised per layer, so at equal strength
it adds a vector of exactly an emotion's norm. Preference steering (`pipeline.model.steering_plan`,
`pipeline.stages.preferences`) and steered generation (`pipeline.stages.behaviour`) both use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch


def unit_direction(vector: np.ndarray) -> np.ndarray:
    """[d] -> [d] float64 of norm 1."""
    vector = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError(
            f"cannot steer along a vector of norm {norm}; it has no direction (an emotion vector "
            "is zero or non-finite when its emotion had no stories: check the vectors stage)"
        )
    return vector / norm


def random_directions(layers: Sequence[int], d: int, seed: int) -> dict[int, np.ndarray]:
    """One seeded standard-normal direction [d] per layer, unit norm: the matched-norm control."""
    rng = np.random.default_rng(seed)
    return {layer: unit_direction(rng.standard_normal(d)) for layer in layers}


def steering_vectors(directions: Mapping[int, np.ndarray], *, strength: float,
                     mean_norms: Sequence[float] | np.ndarray) -> dict[int, torch.Tensor]:
    """{layer: strength * mean_norms[layer] * unit(directions[layer])} as float32 tensors [d]."""
    out = {}
    for layer, direction in directions.items():
        if not 0 <= layer < len(mean_norms):
            raise ValueError(
                f"no mean residual norm for layer {layer}; mean_norms covers layers "
                f"0..{len(mean_norms) - 1}"
            )
        scaled = float(strength) * float(mean_norms[layer]) * unit_direction(direction)
        out[layer] = torch.from_numpy(scaled.astype(np.float32))
    return out
