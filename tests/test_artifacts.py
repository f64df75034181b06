"""The artifact cache: content keys, atomic builds, corruption detection, one build under xdist."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from pipeline import REPO_ROOT
from pipeline.inputs.artifacts import ArtifactCorrupted, ArtifactStore, content_key


def write_bytes(payload: bytes):
    def build(work):
        (work / "data.bin").write_bytes(payload)
        return {"n": len(payload)}

    return build


def test_the_key_is_a_content_hash_of_every_input():
    a = {"model": {"fingerprint": "x"}, "config": {"n": 1}}
    assert content_key(a) == content_key({"config": {"n": 1}, "model": {"fingerprint": "x"}})
    assert content_key(a) != content_key({"model": {"fingerprint": "y"}, "config": {"n": 1}})


def test_a_built_artifact_records_provenance_and_is_a_hit_next_time(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []

    def build(work):
        calls.append(1)
        (work / "data.bin").write_bytes(b"abc")

    first = store.get_or_build("m", "stage", {"a": 1}, build)
    second = store.get_or_build("m", "stage", {"a": 1}, build)
    assert len(calls) == 1 and first.path == second.path
    assert first.path == tmp_path / "m" / "stage" / first.key
    provenance = json.loads((first.path / "provenance.json").read_text())
    assert provenance["inputs"] == {"a": 1}
    assert set(provenance["files"]) == {"data.bin"}
    assert {"wall_time_s", "library_versions", "created_at"} <= set(provenance)
    assert "torch" in provenance["library_versions"]
    assert (first.path / "COMPLETE").exists()


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    store = ArtifactStore(tmp_path)

    def broken(work):
        (work / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.get_or_build("m", "stage", {"a": 1}, broken)
    assert [p.name for p in (tmp_path / "m" / "stage").iterdir() if not p.name.endswith(".lock")] == []


def test_a_truncated_artifact_is_detected_and_rebuilt_with_a_warning(tmp_path):
    store = ArtifactStore(tmp_path)
    artifact = store.get_or_build("m", "stage", {"a": 1}, write_bytes(b"0123456789"))
    (artifact.path / "data.bin").write_bytes(b"01234")  # truncated
    with pytest.warns(ArtifactCorrupted, match="data.bin has sha256"):
        rebuilt = store.get_or_build("m", "stage", {"a": 1}, write_bytes(b"0123456789"))
    assert (rebuilt.path / "data.bin").read_bytes() == b"0123456789"


def test_an_unfinished_artifact_without_marker_is_rebuilt(tmp_path):
    store = ArtifactStore(tmp_path)
    artifact = store.get_or_build("m", "stage", {"a": 1}, write_bytes(b"x"))
    (artifact.path / "COMPLETE").unlink()
    assert store.lookup("m", "stage", artifact.key) is None
    with pytest.warns(ArtifactCorrupted, match="no COMPLETE marker"):
        store.get_or_build("m", "stage", {"a": 1}, write_bytes(b"x"))


def test_rebuild_since_a_time_rebuilds_older_artifacts_once(tmp_path):
    ArtifactStore(tmp_path).get_or_build("m", "stage", {"a": 1}, write_bytes(b"old"))
    store = ArtifactStore(tmp_path, rebuild={"stage": time.time() + 1e-3})
    time.sleep(0.01)
    first = store.get_or_build("m", "stage", {"a": 1}, write_bytes(b"new"))
    assert (first.path / "data.bin").read_bytes() == b"new"
    again = store.get_or_build("m", "stage", {"a": 1}, write_bytes(b"newer"))
    assert (again.path / "data.bin").read_bytes() == b"new"


def test_four_xdist_workers_build_an_artifact_once_and_read_identical_bytes(tmp_path):
    root, log = tmp_path / "artifacts", tmp_path / "builds.log"
    test_file = tmp_path / "test_race.py"
    test_file.write_text(textwrap.dedent(f"""
        import hashlib, os, time
        import pytest
        from pipeline.inputs.artifacts import ArtifactStore

        def build(work):
            with open({str(log)!r}, "a") as handle:
                handle.write(f"{{os.getpid()}}\\n")
            time.sleep(0.5)  # long enough that every worker arrives while the build runs
            (work / "data.bin").write_bytes(os.urandom(4096))

        @pytest.mark.parametrize("worker", range(8))
        def test_get(worker):
            artifact = ArtifactStore({str(root)!r}).get_or_build("m", "s", {{"k": 1}}, build)
            digest = hashlib.sha256((artifact.path / "data.bin").read_bytes()).hexdigest()
            with open({str(tmp_path / "digests.log")!r}, "a") as handle:
                handle.write(digest + "\\n")
    """))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "4", "-p", "xdist", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", "/dev/null", str(test_file)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(log.read_text().splitlines()) == 1, "more than one worker built the artifact"
    digests = (tmp_path / "digests.log").read_text().split()
    assert len(digests) == 8 and len(set(digests)) == 1
