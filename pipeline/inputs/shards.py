"""Append-only JSONL shards with a manifest: the store behind resumable generation stages.

A shard file is written atomically first and recorded in `manifest.json` second. A run killed
between the two leaves an orphan shard that the next run deletes before going on, so no record
is ever lost (its jobs are redone) or duplicated (its records never count).

The manifest records each shard's sha256. Opening a store checks every recorded shard against
it, so a shard damaged after it was written (a changed byte, a copy cut short) is never read:
it is listed in `damaged` (with a warning naming it) and the caller redoes its jobs in place.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.inputs.artifacts import ArtifactCorrupted, atomic_write_text, sha256_file
from pipeline.inputs.errors import BadInput

MANIFEST = "manifest.json"


class ShardStore:
    def __init__(self, directory: Path, prefix: str):
        self.directory = Path(directory)
        self.prefix = prefix
        self.directory.mkdir(parents=True, exist_ok=True)
        self._manifest_path = self.directory / f"{prefix}.{MANIFEST}"
        self.manifest: dict[str, Any] = self._load_manifest()
        self._drop_orphans()
        self.damaged: list[int] = self._verify()

    def _load_manifest(self) -> dict[str, Any]:
        if not self._manifest_path.is_file():
            return {"shards": []}
        try:
            manifest = json.loads(self._manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
                raise ValueError("no 'shards' list")
            return manifest
        except (ValueError, UnicodeDecodeError) as exc:
            # Written atomically, so only outside damage gets here; without the manifest no
            # shard can be trusted, and starting the store again is the only safe recovery.
            warnings.warn(f"{self._manifest_path} is unreadable ({exc}); its shards are "
                          "discarded and their jobs redone", ArtifactCorrupted, stacklevel=3)
            return {"shards": []}

    def _drop_orphans(self) -> None:
        known = {shard["file"] for shard in self.manifest["shards"]}
        for path in self.directory.glob(f"{self.prefix}-*.jsonl"):
            if path.name not in known:
                path.unlink()

    def _verify(self) -> list[int]:
        damaged = []
        for index, shard in enumerate(self.manifest["shards"]):
            path = self.directory / shard["file"]
            actual = sha256_file(path) if path.is_file() else None
            if actual != shard["sha256"]:
                problem = "is missing" if actual is None else (
                    f"has sha256 {actual[:12]}..., the manifest recorded {shard['sha256'][:12]}...")
                warnings.warn(f"shard {path} {problem}; its {len(shard['jobs'])} jobs are redone",
                              ArtifactCorrupted, stacklevel=3)
                damaged.append(index)
        return damaged

    @property
    def shards(self) -> list[dict[str, Any]]:
        return self.manifest["shards"]

    def completed_jobs(self) -> set[str]:
        """Jobs of intact shards (a damaged shard's jobs are not done)."""
        bad = set(self.damaged)
        return {job for i, shard in enumerate(self.manifest["shards"]) if i not in bad
                for job in shard["jobs"]}

    def _write(self, index: int, records: Sequence[dict[str, Any]], jobs: Iterable[str]) -> None:
        name = f"{self.prefix}-{index:06d}.jsonl"
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write_text(self.directory / name, text)
        entry = {"file": name, "jobs": list(jobs), "n_records": len(records),
                 "sha256": sha256_file(self.directory / name)}
        if index == len(self.manifest["shards"]):
            self.manifest["shards"].append(entry)
        else:
            self.manifest["shards"][index] = entry
        atomic_write_text(self._manifest_path, json.dumps(self.manifest, indent=1))

    def append(self, records: Sequence[dict[str, Any]], jobs: Iterable[str]) -> None:
        """Persist one batch of records and mark its jobs done, crash-safely."""
        self._write(len(self.manifest["shards"]), records, jobs)

    def replace(self, index: int, records: Sequence[dict[str, Any]]) -> None:
        """Rewrite damaged shard `index` with its jobs' redone records, in the same place, so
        the store reads in the order an undamaged build would have written it. A kill between
        the file and the manifest leaves a shard whose hash disagrees: damaged again, redone
        again."""
        self._write(index, records, self.manifest["shards"][index]["jobs"])
        self.damaged = [i for i in self.damaged if i != index]

    def truncate(self, n_shards: int) -> None:
        """Keep the first `n_shards` shards; the rest are forgotten and their files deleted."""
        if n_shards >= len(self.manifest["shards"]):
            return
        self.manifest["shards"] = self.manifest["shards"][:n_shards]
        atomic_write_text(self._manifest_path, json.dumps(self.manifest, indent=1))
        self.damaged = [i for i in self.damaged if i < n_shards]
        self._drop_orphans()

    def records(self) -> Iterator[dict[str, Any]]:
        if self.damaged:
            names = [self.manifest["shards"][i]["file"] for i in self.damaged]
            raise RuntimeError(f"{self.directory}: shards {names} are damaged; redo them first")
        for shard in self.manifest["shards"]:
            yield from _read_shard(self.directory / shard["file"])


def _read_shard(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ArtifactCorruptedError(
                    f"{path}:{line_no} is not a JSON record ({exc.msg}); the shard is damaged. "
                    "Delete the artifact folder it belongs to and rerun to rebuild it"
                ) from None


class ArtifactCorruptedError(BadInput):
    """A finished artifact's shard cannot be read (its hashes were not checked by the caller)."""


def read_records(directory: Path, prefix: str) -> Iterator[dict[str, Any]]:
    """Records of a finished store, in manifest order (read-only; never drops files)."""
    manifest = json.loads((Path(directory) / f"{prefix}.{MANIFEST}").read_text())
    for shard in manifest["shards"]:
        yield from _read_shard(Path(directory) / shard["file"])
