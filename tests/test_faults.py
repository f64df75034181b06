"""Faults: a build killed anywhere resumes to the bytes of an uninterrupted one.

Unit cases force each dangerous moment deterministically (between the two manifest writes, a
shard damaged on disk, a build folder left by a kill); the last test kills the real CLI with
SIGKILL at seeded random moments of every smoke-scale extraction stage of the tiny model.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline import REPO_ROOT
from pipeline.inputs.artifacts import PROVENANCE, ArtifactCorrupted, ArtifactStore, default_root
from pipeline.inputs.scale import get_scale
from pipeline.inputs.shards import ShardStore
from pipeline.model.corpus import generate_corpus, story_jobs
from pipeline.model.generation import SamplingSettings

SETTINGS = SamplingSettings(max_new_tokens=24, seed=5)
JOBS = story_jobs(get_scale("smoke"))[:12]


class _Killed(BaseException):
    """Stands in for SIGKILL at one exact line: nothing after it runs, nothing is cleaned up."""


def _generate(work: Path, spec, model, tokenizer, batch_size: int = 4) -> dict:
    return generate_corpus(kind="stories", jobs=JOBS, model=model, tokenizer=tokenizer,
                           spec=spec, settings=SETTINGS, work_dir=work, batch_size=batch_size,
                           show_progress=False)


def _files(work: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(work.iterdir())
            if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def clean(tmp_path_factory, tiny_spec, tiny_model, tiny_tokenizer):
    work = tmp_path_factory.mktemp("clean")
    _generate(work, tiny_spec, tiny_model, tiny_tokenizer)
    return _files(work)


def test_a_kill_between_the_items_and_calls_manifests_resumes_to_the_clean_bytes(
        tmp_path, monkeypatch, clean, tiny_spec, tiny_model, tiny_tokenizer):
    real = ShardStore.append
    written = {"calls": 0}

    def killed_before_the_second_calls_manifest(self, records, jobs):
        if self.prefix == "calls":
            written["calls"] += 1
            if written["calls"] == 2:
                raise _Killed  # items shard 2 is recorded, calls shard 2 is not
        real(self, records, jobs)

    monkeypatch.setattr(ShardStore, "append", killed_before_the_second_calls_manifest)
    with pytest.raises(_Killed):
        _generate(tmp_path, tiny_spec, tiny_model, tiny_tokenizer)
    monkeypatch.setattr(ShardStore, "append", real)
    assert len(ShardStore(tmp_path, "items").shards) == 2
    assert len(ShardStore(tmp_path, "calls").shards) == 1  # the window the issue found
    summary = _generate(tmp_path, tiny_spec, tiny_model, tiny_tokenizer)
    assert summary["n_calls"] == len(JOBS)
    assert _files(tmp_path) == clean  # the agreeing shard kept, the other redone, same bytes


@pytest.mark.parametrize("damage", ["a changed character", "cut short", "deleted"])
def test_a_damaged_finished_shard_is_redone_in_place_with_a_warning_naming_it(
        tmp_path, damage, clean, tiny_spec, tiny_model, tiny_tokenizer):
    for name, data in clean.items():
        (tmp_path / name).write_bytes(data)
    shard = tmp_path / "items-000001.jsonl"
    text = shard.read_text(encoding="utf-8")
    if damage == "a changed character":
        at = text.index('"text": "') + 9
        shard.write_text(text[:at] + ("X" if text[at] != "X" else "Y") + text[at + 1:],
                         encoding="utf-8")
        json.loads(shard.read_text(encoding="utf-8").splitlines()[0])  # still valid JSON
    elif damage == "cut short":
        shard.write_text(text[: len(text) // 2], encoding="utf-8")
    else:
        shard.unlink()
    with pytest.warns(ArtifactCorrupted, match="items-000001.jsonl"):
        _generate(tmp_path, tiny_spec, tiny_model, tiny_tokenizer)
    assert _files(tmp_path) == clean


def test_a_corrupt_manifest_starts_that_store_again_with_a_warning(
        tmp_path, clean, tiny_spec, tiny_model, tiny_tokenizer):
    for name, data in clean.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "calls.manifest.json").write_text('{"shards": [', encoding="utf-8")
    with pytest.warns(ArtifactCorrupted, match="calls.manifest.json"):
        _generate(tmp_path, tiny_spec, tiny_model, tiny_tokenizer)
    assert _files(tmp_path) == clean


def test_each_job_samples_the_same_text_whatever_batch_it_is_in(
        tmp_path, clean, tiny_spec, tiny_model, tiny_tokenizer):
    # Seeded per job, not per batch: at batch size 5 no job shares a batch with the same mates
    # as at 4 (and the padding differs), yet every record comes out byte-identical here. That
    # is measured, not guaranteed (padding changes the logits' last bits), so the batch size
    # is also in the corpus stages' cache key (next test).
    _generate(tmp_path, tiny_spec, tiny_model, tiny_tokenizer, batch_size=5)
    other = ShardStore(tmp_path, "items").records()
    four = [json.loads(line) for name in sorted(clean) if name.startswith("items-")
            for line in clean[name].decode().splitlines()]
    assert list(other) == four


def test_the_batch_size_and_platform_are_in_the_corpus_keys(monkeypatch, tmp_path,
                                                            tiny_runtime):
    import pipeline.stages.extraction as stages
    from pipeline.model.generation import Generation
    from pipeline.stages.extraction import StageSettings, stories_stage

    class Canned:
        name = "transformers"

        def generate(self, prompts, settings, seed, n=1, seeds=None):
            return [[Generation("A story.", 2, True)] for _ in prompts]

        def describe(self):
            return {"name": self.name}

    monkeypatch.setattr(stages, "get_backend", lambda name, runtime: Canned())
    store = ArtifactStore(tmp_path)
    quiet = dict(log=lambda message: None)
    a = stories_stage(tiny_runtime, store, StageSettings(gen_batch_size=64, **quiet))
    b = stories_stage(tiny_runtime, store, StageSettings(gen_batch_size=16, **quiet))
    assert a.key != b.key
    assert a.provenance["inputs"]["batch_size"] == 64
    assert a.provenance["inputs"]["platform"] == {"device": "cpu", "threads": 1}


def test_folders_left_by_a_killed_build_are_removed_under_the_lock(tmp_path):
    store = ArtifactStore(tmp_path)
    inputs = {"a": 1}
    from pipeline.inputs.artifacts import content_key

    key = content_key(inputs)
    stage_dir = tmp_path / "m" / "stage"
    for name in (f".tmp-{key}-abc123", f".old-{key}-1-2", ".tmp-0000000000000000-zzz"):
        (stage_dir / name).mkdir(parents=True)
        (stage_dir / name / "half.bin").write_bytes(b"x")
    store.get_or_build("m", "stage", inputs, lambda work: (work / "d.bin").write_bytes(b"d"))
    left = sorted(p.name for p in stage_dir.iterdir() if not p.name.endswith(".lock"))
    # Another key's folder may belong to a build running now under its own lock: kept.
    assert left == [".tmp-0000000000000000-zzz", key]


@pytest.fixture(scope="module")
def tiny_runtime(tiny_spec, tiny_location):
    from pipeline.model.runtime import ModelRuntime

    return ModelRuntime(tiny_spec, tiny_location, device="cpu")


# --- kill -9 at seeded random moments of the real CLI -------------------------------------

STAGES = ("stories", "neutral", "activations", "neutral_stats", "vectors")


def _cli(root: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "pipeline", "build", "--model", "tiny", "--stage", "vectors",
            "--scale", "smoke", "--artifact-root", str(root)]
    return subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


class _Log:
    """Collects a process's stderr in a thread, so the test can wait for a log line."""

    def __init__(self, process: subprocess.Popen):
        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process):
        for chunk in iter(lambda: process.stderr.read1(4096), b""):
            self.text += chunk.decode(errors="replace")


def _stories_shards(root: Path) -> int:
    manifests = list((root / "tiny" / "stories").glob(".partial-*/calls.manifest.json"))
    return len(json.loads(manifests[0].read_text())["shards"]) if manifests else 0


def _artifact(root: Path, stage: str, key: str | None = None) -> tuple[str, dict[str, bytes]]:
    """(key, data files) of the one artifact of `stage` under `root`, or of `key`."""
    (path,) = [p for p in (root / "tiny" / stage).iterdir() if p.is_dir()
               and not p.name.startswith(".") and key in (None, p.name)]
    return path.name, {f.name: f.read_bytes() for f in sorted(path.iterdir())
                       if f.name != PROVENANCE}


@pytest.mark.slow
def test_kill_9_at_seeded_random_moments_resumes_to_the_bytes_of_a_clean_build(tmp_path):
    rng = random.Random(14)
    # Moments: three inside story generation (after a random number of finished batches, plus
    # a random fraction of the next), and one inside each of two later stages, drawn at random.
    moments = [("stories", shards, rng.uniform(0.0, 3.0))
               for shards in sorted(rng.sample(range(5), 3))]
    moments += [(stage, 0, rng.uniform(0.0, 0.4))
                for stage in sorted(rng.sample(STAGES[1:], 2), key=STAGES.index)]
    root = tmp_path / "artifacts"
    kills = []
    for stage, shards, delay in moments:
        process = _cli(root)
        log = _Log(process)
        deadline = time.time() + 120
        while process.poll() is None and time.time() < deadline:
            started = re.search(rf"^tiny/{stage}/\w+: building in", log.text, re.MULTILINE)
            if started and (stage != "stories" or _stories_shards(root) >= shards):
                time.sleep(delay)
                break
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills.append((stage, shards, round(delay, 2)))
        else:
            process.wait()
    assert len(kills) >= 5, f"only {len(kills)} kills landed: {kills}"
    final = _cli(root)
    final_out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-3000:]

    # The clean build: the CLI's in the shared default cache (test_cli.py and the tiny
    # scorecard build the same artifacts there), built here only when no run has yet.
    from pipeline.inputs.registry import get_spec
    from pipeline.model.loading import resolve_weights
    from pipeline.model.runtime import ModelRuntime
    from pipeline.stages.extraction import StageSettings, build_vectors

    spec = get_spec("tiny")
    runtime = ModelRuntime(spec, resolve_weights(spec, {}), scale="smoke")
    build_vectors(runtime, ArtifactStore(default_root()), StageSettings(log=lambda m: None))
    built = final_out.decode().splitlines()[0].rsplit("/", 1)[1]  # "tiny/vectors: <path>/<key>"
    assert _artifact(root, "vectors")[0] == built, "the resumed build has another vectors key"
    for stage in STAGES:
        key, files = _artifact(root, stage)
        clean_key, clean_files = _artifact(default_root(), stage, key)
        assert files == clean_files, f"{stage}: other bytes after the kills {kills}"
    stories = _artifact(root, "stories")[1]
    ids = [json.loads(line)["id"] for name, data in sorted(stories.items())
           if name.startswith("items-") for line in data.decode().splitlines()]
    assert len(ids) == len(set(ids)), "a story was written twice"
    leftovers = [p for p in root.rglob(".*") if p.is_dir()]
    assert leftovers == [], f"left behind: {leftovers}"
