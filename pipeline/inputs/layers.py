"""Layer lists for the layer sweep: `--layers 14-24`, `14,16,18` or `14-24,30`."""

from __future__ import annotations

from collections.abc import Sequence


def parse_layers(text: str) -> tuple[int, ...]:
    """'14-24,30' -> (14, 15, ..., 24, 30): sorted, duplicates dropped, ranges inclusive."""
    layers: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(
                f"--layers {text!r}: {part!r} is not a layer or a range; expected e.g. "
                "'14-24', '14,16,18' or '14-24,30' (layers count from 0)"
            ) from None
        if first < 0 or last < first:
            raise ValueError(
                f"--layers {text!r}: {part!r} is not an increasing range of layers >= 0"
            )
        layers.update(range(first, last + 1))
    return tuple(sorted(layers))


def check_layers(layers: Sequence[int], model: str, n_layers: int) -> None:
    """Raise naming the first layer the model does not have (layers are 0 .. n_layers - 1)."""
    for layer in layers:
        if not 0 <= layer < n_layers:
            raise ValueError(
                f"--layers: layer {layer} does not exist in {model}, which has {n_layers} "
                f"layers (0-{n_layers - 1}); pick layers in that range or select another model "
                "with -m"
            )
