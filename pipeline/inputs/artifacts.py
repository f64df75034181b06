"""Content-addressed, atomically written, lock-protected artifact cache.

Layout: `<root>/<model>/<stage>/<key>/` holding the stage's files, `provenance.json` (inputs,
per-file sha256, wall time, library versions) and a `COMPLETE` marker written last. The key is
a hash of every input of the stage (model fingerprint, stimuli hashes, stage config, upstream
keys, code version), so a changed input is a new key, never a stale hit.

A build happens in a temporary sibling directory that is renamed into place only when complete;
a `FileLock` per key makes concurrent pytest-xdist workers build once and the rest wait and
read. Resumable stages build in a persistent `.partial-<key>` directory instead, so a killed run
picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from pipeline import REPO_ROOT, __version__

ARTIFACT_ROOT_ENV = "EMOTION_SCORECARD_ARTIFACTS"
DEFAULT_ROOT = REPO_ROOT / "artifacts"
PROVENANCE = "provenance.json"
COMPLETE = "COMPLETE"
_UMASK = os.umask(0)
os.umask(_UMASK)


class ArtifactCorrupted(UserWarning):
    """An artifact on disk failed validation and is being rebuilt."""


class ArtifactMissing(LookupError):
    """A stage was asked for that is not built and may not be built here."""


def default_root() -> Path:
    return Path(os.environ.get(ARTIFACT_ROOT_ENV, DEFAULT_ROOT)).expanduser()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(inputs).encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**22), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "emotion_scorecard": __version__}
    for name in ("torch", "transformers", "tokenizers", "numpy", "scipy", "safetensors"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        versions[name] = getattr(module, "__version__", "unknown")
    return versions


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and `os.replace`, so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file ordinary permissions
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_leftovers(stage_dir: Path, key: str, log: Callable[[str], None]) -> None:
    """Delete what a killed build of `key` left: its `.tmp-<key>-*` build folders and the
    `.old-<key>-*` copy a replacement moved aside. Only this key's, and only under its lock:
    a build of another key in another process may be writing its own folder right now."""
    for leftover in [*stage_dir.glob(f".tmp-{key}-*"), *stage_dir.glob(f".old-{key}-*")]:
        log(f"removing {leftover}, left by an interrupted build")
        shutil.rmtree(leftover, ignore_errors=True)


@dataclass(frozen=True)
class Artifact:
    path: Path
    model: str
    stage: str
    key: str
    provenance: dict[str, Any] = field(hash=False)

    def file(self, name: str) -> Path:
        return self.path / name


def _data_files(directory: Path) -> Iterable[Path]:
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name not in (PROVENANCE, COMPLETE):
            yield path


def validate(directory: Path) -> str | None:
    """Return why the artifact in `directory` is unusable, or None when it is intact."""
    if not (directory / COMPLETE).is_file():
        return "no COMPLETE marker (the build did not finish)"
    try:
        provenance = json.loads((directory / PROVENANCE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"unreadable provenance.json ({exc})"
    recorded: dict[str, str] = provenance.get("files", {})
    present = {p.relative_to(directory).as_posix() for p in _data_files(directory)}
    if set(recorded) != present:
        missing = sorted(set(recorded) - present)
        extra = sorted(present - set(recorded))
        return f"file list differs from provenance (missing {missing}, unexpected {extra})"
    for name, expected in recorded.items():
        actual = sha256_file(directory / name)
        if actual != expected:
            return f"{name} has sha256 {actual[:12]}..., provenance says {expected[:12]}..."
    return None


class ArtifactStore:
    """Get-or-build for stage artifacts under one root.

    `rebuild` maps a stage name to a timestamp: an artifact of that stage created before the
    timestamp is rebuilt. Passing the session's start time makes `--rebuild STAGE` rebuild once
    per session even when several xdist workers ask for it.
    """

    def __init__(self, root: Path | None = None, rebuild: dict[str, float] | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.rebuild = dict(rebuild or {})

    def stage_dir(self, model: str, stage: str) -> Path:
        return self.root / model / stage

    def lookup(self, model: str, stage: str, key: str) -> Artifact | None:
        """The intact artifact for this key, or None; never builds."""
        directory = self.stage_dir(model, stage) / key
        if not directory.is_dir() or validate(directory) is not None:
            return None
        provenance = json.loads((directory / PROVENANCE).read_text())
        return Artifact(directory, model, stage, key, provenance)

    def _stale(self, stage: str, provenance: dict[str, Any]) -> bool:
        since = self.rebuild.get(stage)
        return since is not None and provenance.get("created_at", 0.0) < since

    def get_or_build(
        self,
        model: str,
        stage: str,
        inputs: dict[str, Any],
        build: Callable[[Path], dict[str, Any] | None],
        *,
        resumable: bool = False,
        log: Callable[[str], None] = lambda message: None,
    ) -> Artifact:
        """Return the artifact for `inputs`, building it with `build(work_dir)` if needed.

        `build` writes its files into `work_dir` and may return extra provenance (counts,
        settings). For resumable stages `work_dir` persists across interrupted runs.
        """
        key = content_key(inputs)
        stage_dir = self.stage_dir(model, stage)
        stage_dir.mkdir(parents=True, exist_ok=True)
        final = stage_dir / key
        with FileLock(str(stage_dir / f".{key}.lock")):
            _remove_leftovers(stage_dir, key, log)
            if final.is_dir():
                problem = validate(final)
                if problem is None:
                    artifact = self.lookup(model, stage, key)
                    if artifact is not None and not self._stale(stage, artifact.provenance):
                        log(f"{model}/{stage}/{key}: cache hit")
                        return artifact
                    log(f"{model}/{stage}/{key}: rebuild requested")
                else:
                    warnings.warn(
                        f"artifact {final} is corrupted ({problem}); rebuilding it",
                        ArtifactCorrupted,
                        stacklevel=2,
                    )
            if resumable:
                work = stage_dir / f".partial-{key}"
                work.mkdir(exist_ok=True)
            else:
                work = Path(tempfile.mkdtemp(dir=stage_dir, prefix=f".tmp-{key}-"))
                os.chmod(work, 0o777 & ~_UMASK)  # mkdtemp makes 0700
            try:
                started = time.time()
                log(f"{model}/{stage}/{key}: building in {work}")
                extra = build(work) or {}
                self._finalise(work, final, model, stage, key, inputs, extra, started)
            except BaseException:
                if not resumable:
                    shutil.rmtree(work, ignore_errors=True)
                raise
        artifact = self.lookup(model, stage, key)
        if artifact is None:  # pragma: no cover - would mean the rename raced a deletion
            raise RuntimeError(f"artifact {final} vanished right after it was built")
        return artifact

    def _finalise(
        self,
        work: Path,
        final: Path,
        model: str,
        stage: str,
        key: str,
        inputs: dict[str, Any],
        extra: dict[str, Any],
        started: float,
    ) -> None:
        for leftover in (work / COMPLETE, work / PROVENANCE):
            leftover.unlink(missing_ok=True)
        files = {p.relative_to(work).as_posix(): sha256_file(p) for p in _data_files(work)}
        provenance = {
            "model": model,
            "stage": stage,
            "key": key,
            "inputs": inputs,
            "files": files,
            "created_at": time.time(),
            "wall_time_s": round(time.time() - started, 3),
            "library_versions": library_versions(),
            "host": platform.node(),
            **({"result": extra} if extra else {}),
        }
        atomic_write_text(work / PROVENANCE, json.dumps(provenance, indent=2, default=str))
        atomic_write_text(work / COMPLETE, "")
        if final.exists():
            # Move the stale or corrupted copy aside first: os.replace cannot replace a
            # non-empty directory, and readers must never see a half-deleted one.
            aside = final.with_name(f".old-{key}-{os.getpid()}-{time.time_ns()}")
            os.replace(final, aside)
            os.replace(work, final)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(work, final)
