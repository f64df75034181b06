"""Checks of command-line values shared by the CLI and the pytest options.

Each raises `BadInput` with one sentence: the bad value, what was expected, how to fix it.
Kept free of torch and of model loading: the pytest options run these at start-up.
"""

from __future__ import annotations

from pipeline.inputs.errors import BadInput
from pipeline.inputs.registry import load_registry


def check_model_name(option: str, name: str) -> None:
    registered = sorted(load_registry())
    if name not in registered:
        raise BadInput(f"{option} names {name!r}, which is not a registered model; expected one "
                       f"of {', '.join(registered)}; fix the name or add a [{name}] table to "
                       "data/models.toml")


def parse_model_paths(values: list[str]) -> dict[str, str]:
    """`NAME=DIR` values -> {name: dir}; an unknown NAME is refused, not silently ignored."""
    paths: dict[str, str] = {}
    for value in values:
        name, sep, directory = value.partition("=")
        if not sep or not name or not directory:
            raise BadInput(f"--model-path {value!r}: expected NAME=DIR or NAME=FILE.gguf, e.g. "
                           "--model-path llama31_8b=/models/Llama-3.1-8B-Instruct")
        check_model_name(f"--model-path {value!r}", name)
        paths[name] = directory
    return paths


def check_positive(option: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"{option} {value!r}; expected a positive whole number; pass e.g. "
                       f"{option} 64")
    return value


def check_device(device: str | None) -> None:
    """A torch device string, parsed the way torch will parse it (no device is touched)."""
    if device is None:
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise BadInput(f"--device {device!r} is not a torch device; expected e.g. cpu, cuda, "
                       "cuda:1 or mps") from None


def check_artifact_root(root) -> None:
    from pathlib import Path

    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise BadInput(f"--artifact-root {str(root)!r} is a file; expected a directory for the "
                       "artifact cache (made if missing); pass a directory path")
