"""Where tensors go when a model spans several devices (accelerate's `device_map`).

A dispatched model has no single device: each decoder layer computes where accelerate's hook
puts it, and an offloaded module's weights sit on "meta" until its hook loads them, so
`next(model.parameters()).device` can name a device that nothing runs on. Inputs go where the
embedding computes; everything a hook produces stays on its layer's device.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads lazily: the pytest options import this module at start-up
    import torch

# Strategies that transformers and accelerate resolve themselves.
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def _hook_execution_device(module: torch.nn.Module) -> Any:
    hook = getattr(module, "_hf_hook", None)
    # accelerate chains several hooks on one module as a SequentialHook with `.hooks`.
    for candidate in (hook, *getattr(hook, "hooks", ())):
        device = getattr(candidate, "execution_device", None)
        if device is not None:
            return device
    return None


def execution_device(module: torch.nn.Module) -> torch.device:
    """The device `module` computes on: its accelerate hook's, else its first weight's."""
    import torch

    device = _hook_execution_device(module)
    if device is not None:
        # accelerate names a GPU by its bare index.
        return torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


def input_device(model: torch.nn.Module) -> torch.device:
    """Where input ids, masks and position ids go: the device the token embedding runs on."""
    return execution_device(model.get_input_embeddings())


def is_dispatched(model: torch.nn.Module) -> bool:
    """True when accelerate placed the model with a device map (its layers carry hooks)."""
    return getattr(model, "hf_device_map", None) is not None


def parse_device_map(value: str | None) -> str | dict[str, Any] | None:
    """A `--device-map` value: a strategy name, a device, or a JSON object / JSON file.

    Examples: "auto"; "cuda:1"; '{"model.embed_tokens": 0, "model.layers.0": 0, ...}';
    "maps/llama70b.json". Returns what `from_pretrained(device_map=...)` accepts.
    """
    if value is None or value == "":
        return None
    text = value.strip()
    if text in DEVICE_MAP_STRATEGIES or text == "cpu" or text.startswith(("cuda", "mps", "xpu")):
        return text
    path = Path(text).expanduser()
    if text.startswith("{"):
        source = "the --device-map value"
    elif path.suffix == ".json" and path.is_file():
        source, text = str(path), path.read_text(encoding="utf-8")
    else:
        raise ValueError(
            f"--device-map {value!r} is neither a strategy {DEVICE_MAP_STRATEGIES}, a device "
            "('cpu', 'cuda:0'), a JSON object nor an existing .json file; pass e.g. "
            "--device-map auto, or a module-to-device mapping such as "
            '\'{"model.embed_tokens": 0, "model.layers.0": 0, "lm_head": 1}\''
        )
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON ({exc}); expected an object") from exc
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError(
            f"{source} must be a non-empty JSON object mapping module names to devices; "
            f"got {type(mapping).__name__}"
        )
    return mapping


def device_for_worker(worker_id: str | None, n_gpus: int) -> str | None:
    """The GPU an xdist worker ("gw3") uses when no device was given: one GPU per worker.

    None when not under xdist or with fewer than two GPUs (the default device applies).
    """
    if worker_id is None or n_gpus < 2:
        return None
    if not (worker_id.startswith("gw") and worker_id[2:].isdigit()):
        raise ValueError(f"xdist worker id {worker_id!r}; expected 'gw' and a number, e.g. 'gw0'")
    return f"cuda:{int(worker_id[2:]) % n_gpus}"


# Below this width a decoding step is a few hundred kernels of microseconds each; OpenMP's
# fork/join then costs more than it saves, and on shared cores it stalls outright (tiny model, 2
# busy CI cores: one cell took 9-30 s with 2 threads and 1.2 s with 1).
SMALL_MODEL_WIDTH = 1024


@contextlib.contextmanager
def decoding_threads(model, device: torch.device) -> Iterator[None]:
    """Decode a small model single-threaded on CPU; leave every other case alone."""
    import torch

    width = getattr(model.config, "hidden_size", SMALL_MODEL_WIDTH + 1)
    if device.type != "cpu" or width > SMALL_MODEL_WIDTH or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sampling_platform(device: str, device_map: Any, hidden_size: int | None) -> dict[str, Any]:
    """What, besides the seeds, decides the floating-point path of sampled text.

    The same seeds on another device, with another thread count or in batches of another size
    give logits that differ in the last bits, and now and then a sampled token flips and the
    rest of that story with it (measured on the tiny model: 341 of 342 stories identical at two
    batch sizes). The corpus stages therefore key on this, with the batch size.
    """
    import torch

    if device_map is not None:
        return {"device_map": device_map if isinstance(device_map, str)
                else json.dumps(device_map, sort_keys=True)}
    kind = torch.device(device).type
    if kind == "cuda":
        index = torch.device(device).index or 0
        name = torch.cuda.get_device_name(index) if torch.cuda.is_available() else "cuda"
        return {"device": name}
    if kind != "cpu":
        return {"device": kind}
    # decoding_threads decodes a small model on one thread; anything wider uses torch's count.
    small = hidden_size is not None and hidden_size <= SMALL_MODEL_WIDTH
    return {"device": "cpu", "threads": 1 if small else torch.get_num_threads()}
