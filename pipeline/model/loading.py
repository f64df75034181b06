"""Finding and loading model weights, offline and safetensors-only.

Search order for a model's weights directory:
1. `--model-path NAME=DIR` or `NAME=FILE.gguf` (passed in as `explicit`),
2. the environment variable `EMOTION_SCORECARD_MODEL_<NAME>` (a directory or a .gguf file),
3. the registry's `local_dir` (shipped tiny models),
4. for a model with a packaged GGUF (registry `gguf` table), its converted copy in the artifact
   cache, left there by `python -m pipeline fetch-models`,
5. otherwise the local Hugging Face cache (`local_files_only`; nothing is downloaded).

A GGUF file is converted once into float32 safetensors in the artifact cache, keyed by the
file's sha256 (pipeline/model/gguf.py); the converted directory is what gets loaded and fingerprinted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import REPO_ROOT
from pipeline.inputs.registry import ModelSpec
from pipeline.model.gguf import (
    GgufError,
    convert_gguf,
    fetched_gguf_path,
    find_converted,
    gguf_problem,
    is_gguf_path,
)

# Files up to this size are hashed whole; larger shards are fingerprinted by their safetensors
# header (names, shapes, dtypes, offsets), their size and their first and last MiB, which
# catches a different upload or a truncated copy without reading 16 GB on every run.
_FULL_HASH_LIMIT = 256 * 2**20
_EDGE = 2**20


class WeightsNotFound(FileNotFoundError):
    """No usable weights directory; the message lists what was searched and how to fix it."""

    def __init__(self, spec: ModelSpec, searched: list[str]):
        self.spec = spec
        self.searched = searched
        lines = "\n".join(f"  - {s}" for s in searched)
        if spec.gguf is not None:
            fix = (f"Fetch and convert them with `python -m pipeline fetch-models {spec.name}` "
                   f"(downloads {spec.gguf.describe_packages()}), or pass "
                   f"`--model-path {spec.name}=/path/to/dir-or-file.gguf`.")
        else:
            fix = (f"Provide them with `--model-path {spec.name}=/path/to/dir` (or a .gguf "
                   f"file), or set {spec.env_var}=/path/to/dir, or download {spec.hf_id} into "
                   "the Hugging Face cache (`huggingface-cli download " + spec.hf_id + "`) on a "
                   "machine with network.")
        super().__init__(
            f"no weights for model '{spec.name}' ({spec.hf_id}, revision {spec.revision}). "
            f"Searched:\n{lines}\n{fix}"
        )


@dataclass(frozen=True)
class WeightsLocation:
    path: Path
    source: str  # "option", "env", "shipped", "packaged-gguf" or "hf-cache"
    gguf_sha256: str | None = None  # the GGUF file the directory was converted from, if any


def _check_weights_dir(path: Path) -> str | None:
    """Return why `path` is unusable, or None if it holds a config and safetensors weights."""
    if not path.is_dir():
        return "not a directory"
    if not (path / "config.json").is_file():
        return "no config.json"
    if not list(path.glob("*.safetensors")):
        if list(path.glob("*.bin")) or list(path.glob("*.pt")):
            return "only pickle weights (*.bin/*.pt); this harness loads safetensors only"
        return "no *.safetensors files"
    return None


def _gguf_location(spec: ModelSpec, source: str, path: Path, artifact_root: Path,
                   searched: list[str], log: Callable[[str], None]) -> WeightsLocation:
    """Convert (or find converted) an explicitly given GGUF file; a bad one is an error."""
    problem = gguf_problem(path)
    if problem is None:
        try:
            directory = convert_gguf(path, artifact_root, log=log)
        except GgufError as exc:
            problem = str(exc)
        else:
            problem = _check_weights_dir(directory)
            if problem is None:
                record = json.loads((directory.parent / "conversion.json").read_text())
                return WeightsLocation(directory.resolve(), source, record["source_sha256"])
    searched.append(f"{source} {path}: {problem}")
    raise WeightsNotFound(spec, searched)


def resolve_weights(
    spec: ModelSpec,
    explicit: dict[str, str] | None = None,
    *,
    artifact_root: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> WeightsLocation:
    """Locate `spec`'s weights (module docstring: the search order); raise WeightsNotFound.

    `artifact_root` is where converted GGUFs live (default: the artifact cache's default root).
    """
    if artifact_root is None:
        from pipeline.inputs.artifacts import default_root

        artifact_root = default_root()
    searched: list[str] = []
    candidates: list[tuple[str, Path]] = []
    if explicit and spec.name in explicit:
        candidates.append(("option", Path(explicit[spec.name]).expanduser()))
    else:
        searched.append(f"--model-path {spec.name}=DIR: not given")
    env = os.environ.get(spec.env_var)
    if env:
        candidates.append(("env", Path(env).expanduser()))
    else:
        searched.append(f"${spec.env_var}: not set")
    if spec.local_dir:
        candidates.append(("shipped", REPO_ROOT / spec.local_dir))

    for source, path in candidates:
        if source in ("option", "env") and is_gguf_path(path):
            return _gguf_location(spec, source, path, artifact_root, searched, log)
        problem = _check_weights_dir(path)
        if problem is None:
            return WeightsLocation(path.resolve(), source)
        searched.append(f"{source} {path}: {problem}")
        if source in ("option", "env"):
            # An explicit location that is wrong is an error, not a reason to look elsewhere.
            raise WeightsNotFound(spec, searched)

    if spec.gguf is not None:
        # The packaged GGUF stands in for the upstream repository: the Hugging Face cache would
        # hold the original weights, a different model from the dequantized GGUF.
        converted = find_converted(artifact_root, spec.gguf.sha256)
        fetched = fetched_gguf_path(artifact_root, spec.gguf)
        if converted is None and fetched.is_file():
            # Fetched (and checked against the registry's sha256) but not converted yet.
            try:
                converted = convert_gguf(fetched, artifact_root, sha256=spec.gguf.sha256, log=log)
            except GgufError as exc:
                searched.append(f"packaged GGUF {fetched}: {exc}")
                raise WeightsNotFound(spec, searched) from None
        if converted is not None:
            return WeightsLocation(converted.resolve(), "packaged-gguf", spec.gguf.sha256)
        searched.append(f"packaged GGUF ({spec.gguf.describe_packages()}): not fetched into "
                        f"{fetched.parent.parent.parent}")
        raise WeightsNotFound(spec, searched)

    if spec.revision != "local":
        from huggingface_hub import snapshot_download

        try:
            snapshot = Path(
                snapshot_download(spec.hf_id, revision=spec.revision, local_files_only=True)
            )
        except Exception as exc:  # the hub raises several types for "not cached"
            searched.append(
                f"Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}) "
                f"{spec.hf_id}@{spec.revision}: {type(exc).__name__}"
            )
        else:
            problem = _check_weights_dir(snapshot)
            if problem is None:
                return WeightsLocation(snapshot, "hf-cache")
            searched.append(f"Hugging Face cache {snapshot}: {problem}")
    raise WeightsNotFound(spec, searched)


def _file_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as handle:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(2**22), b""):
                digest.update(block)
        else:
            header_len = int.from_bytes(handle.read(8), "little")
            handle.seek(0)
            digest.update(handle.read(8 + min(header_len, 100 * 2**20)))
            digest.update(handle.read(_EDGE))
            handle.seek(max(size - _EDGE, 0))
            digest.update(handle.read(_EDGE))
    return digest.hexdigest()


def weights_fingerprint(path: Path) -> str:
    """A content fingerprint of the weights, config and tokenizer files in `path`."""
    digest = hashlib.sha256()
    names = sorted(
        p.name
        for p in path.iterdir()
        if p.suffix in (".safetensors", ".json", ".jinja", ".model") and p.is_file()
    )
    for name in names:
        digest.update(name.encode())
        digest.update(_file_fingerprint(path / name).encode())
    return digest.hexdigest()[:20]


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(spec: ModelSpec, location: WeightsLocation):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        location.path, local_files_only=True, trust_remote_code=spec.trust_remote_code
    )
    if tokenizer.pad_token_id is None:
        # Llama 3 ships no pad token; any id works because padded positions are masked out.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    spec: ModelSpec,
    location: WeightsLocation,
    *,
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
):
    """Load the causal LM in eval mode from safetensors; check its depth against the registry."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": torch_dtype(spec.dtype),
        "use_safetensors": True,
        "local_files_only": True,
        "trust_remote_code": spec.trust_remote_code,
    }
    device_map = device_map or spec.device_map
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = AutoModelForCausalLM.from_pretrained(location.path, **kwargs)
    if device_map is None:
        model.to(device or default_device())
    model.eval()
    depth = len(decoder_layers(model))
    if depth != spec.n_layers:
        raise ValueError(
            f"model '{spec.name}' at {location.path} has {depth} decoder layers but the registry "
            f"says n_layers = {spec.n_layers}; fix n_layers (and the layer fields) in "
            "data/models.toml"
        )
    return model


# Known places of the decoder-layer list: Llama/Qwen (`model.layers`), Gemma 3 multimodal
# checkpoints (`model.language_model.layers`), and older wrappers.
_LAYER_PATHS = (
    "model.layers",
    "model.language_model.layers",
    "language_model.model.layers",
    "model.model.layers",
    "transformer.h",
)


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def decoder_layers(model) -> Any:
    for dotted in _LAYER_PATHS:
        try:
            return _get_path(model, dotted)
        except AttributeError:
            continue
    raise ValueError(
        f"cannot find the decoder layers of {type(model).__name__}; tried {_LAYER_PATHS}. "
        "Add the attribute path to pipeline.model.loading._LAYER_PATHS."
    )


def final_norm(model) -> Any:
    for dotted in ("model.norm", "model.language_model.norm", "language_model.model.norm"):
        try:
            return _get_path(model, dotted)
        except AttributeError:
            continue
    raise ValueError(f"cannot find the final norm of {type(model).__name__}")


def unembedding(model):
    """The unembedding matrix W_U, shape [vocab, d_model]."""
    return model.get_output_embeddings().weight

