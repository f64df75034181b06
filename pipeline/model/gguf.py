"""GGUF files as a weights source: converted once into float32 safetensors, cached by sha256.

transformers reads a GGUF file itself (`from_pretrained(dir, gguf_file=name)`, with the `gguf`
package) and dequantizes every tensor to float. The rest of the harness loads safetensors only
and fingerprints a weights directory, so a GGUF is converted once into an ordinary weights
directory (float32 safetensors, config, tokenizer) in the artifact cache:

    <artifact_root>/_gguf/converted/<sha256[:16]>/weights/      the converted model
    <artifact_root>/_gguf/converted/<sha256[:16]>/conversion.json  where it came from
    <artifact_root>/_gguf/files/<sha256[:16]>/<file>.gguf        GGUFs assembled by fetch-models

The record sits beside `weights/`, not in it, so that `weights_fingerprint` sees only the
converted model: converting the same file twice gives the same fingerprint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from pipeline.inputs.artifacts import atomic_write_text, library_versions, sha256_file
from pipeline.inputs.registry import GgufSource

GGUF_MAGIC = b"GGUF"
# Bump when the conversion itself changes (not the transformers version: a converted directory
# is fingerprinted by its content, so a different dequantization is a different fingerprint).
CONVERTER_VERSION = 1
_KEY_CHARS = 16
_UMASK = os.umask(0)
os.umask(_UMASK)


class GgufError(ValueError):
    """A GGUF file that cannot be used; the message names the file, the problem and the fix."""



def gguf_root(artifact_root: Path) -> Path:
    return Path(artifact_root) / "_gguf"


def cache_key(sha256: str) -> str:
    return sha256[:_KEY_CHARS]


def converted_weights_dir(artifact_root: Path, sha256: str) -> Path:
    return gguf_root(artifact_root) / "converted" / cache_key(sha256) / "weights"


def tokenizer_only_dir(artifact_root: Path, sha256: str) -> Path:
    """A model's tokenizer alone (`fetch-models --tokenizer-only`). The weights resolver never
    looks here, so a model fetched this way has tokenizer checks but no scorecard."""
    return gguf_root(artifact_root) / "tokenizers" / cache_key(sha256)


def fetched_gguf_path(artifact_root: Path, source: GgufSource) -> Path:
    return gguf_root(artifact_root) / "files" / cache_key(source.sha256) / source.file


def gguf_problem(path: Path) -> str | None:
    """Why `path` is not a readable GGUF file, or None."""
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a file (a GGUF weights source is a single .gguf file)"
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        return f"not a GGUF file (it starts with {magic!r}, a GGUF starts with {GGUF_MAGIC!r})"
    return None


def is_gguf_path(value: str | Path) -> bool:
    """Whether a `--model-path` value names a GGUF file rather than a weights directory."""
    path = Path(value).expanduser()
    return path.suffix.lower() == ".gguf" or path.is_file()


def _complete(entry: Path) -> bool:
    # The entry is renamed into place only once fully written, so the record's presence (and the
    # config the loader needs) means a finished conversion.
    record = entry / "conversion.json"
    if not record.is_file() or not (entry / "weights" / "config.json").is_file():
        return False
    try:
        return json.loads(record.read_text()).get("converter_version") == CONVERTER_VERSION
    except (OSError, json.JSONDecodeError):
        return False


def find_converted(artifact_root: Path, sha256: str) -> Path | None:
    """The converted weights directory for a GGUF of this sha256, if already built."""
    entry = converted_weights_dir(artifact_root, sha256).parent
    return entry / "weights" if _complete(entry) else None


def _convert_into(path: Path, out: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": path.name, "local_files_only": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=torch.float32,
                                                     **kwargs)
    except Exception as exc:  # noqa: BLE001 (a damaged file fails in many ways; each is reported)
        import transformers

        raise GgufError(
            f"{path}: transformers {transformers.__version__} cannot convert this GGUF "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); use a "
            "GGUF of an architecture transformers supports, or convert it to a safetensors "
            "directory yourself and pass that to --model-path"
        ) from None
    # Every tensor is float32 after loading, but transformers still marks the model as
    # GGUF-quantized and refuses to save it ("quantized with gguf and is not serializable").
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "architecture": type(model).__name__,
        "n_layers": getattr(model.config, "num_hidden_layers", None),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }


def convert_gguf(
    path: Path,
    artifact_root: Path,
    *,
    sha256: str | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """The converted weights directory for the GGUF at `path`, converting it on first use.

    `sha256` may be given when the caller has just verified the file (fetch-models); otherwise
    the file is hashed, which is what keys the cache.
    """
    path = Path(path).expanduser()
    problem = gguf_problem(path)
    if problem is not None:
        raise GgufError(f"GGUF weights {path}: {problem}; pass an existing .gguf file")
    sha256 = sha256 or sha256_file(path)
    entry = converted_weights_dir(artifact_root, sha256).parent
    if _complete(entry):
        return entry / "weights"
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry.parent / f".{entry.name}.lock")):
        if _complete(entry):  # another process converted it while we waited
            return entry / "weights"
        started = time.time()
        log(f"converting {path.name} (sha256 {sha256[:12]}...) to float32 safetensors")
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".tmp-{entry.name}-"))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; the cache is shared like the rest
        try:
            summary = _convert_into(path, tmp / "weights")
            record = {
                "converter_version": CONVERTER_VERSION,
                "source_file": path.name,
                "source_sha256": sha256,
                "source_bytes": path.stat().st_size,
                "dtype": "float32",
                "seconds": round(time.time() - started, 1),
                "created_at": time.time(),
                "versions": library_versions(),
                **summary,
            }
            atomic_write_text(tmp / "conversion.json", json.dumps(record, indent=2) + "\n")
            if entry.exists():  # an unfinished or outdated conversion
                shutil.rmtree(entry)
            os.replace(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"converted {path.name} in {time.time() - started:.1f}s: {entry / 'weights'}")
    return entry / "weights"
