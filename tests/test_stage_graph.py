"""The one stage graph (pipeline.stages.graph): well formed, and read by the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline import REPO_ROOT
from pipeline.stages import graph
from pipeline.stages.graph import GRAPH, STAGES, Stage, StageRun, Upstream, upstream_closure


def test_every_upstream_is_declared_before_the_stage_that_reads_it():
    seen: set[str] = set()
    for stage in STAGES:
        assert set(stage.upstream) <= seen, f"{stage.name} reads {stage.upstream} before they exist"
        seen.add(stage.name)
    assert len(GRAPH) == len(STAGES) == 17


def test_the_closure_follows_every_path():
    assert upstream_closure("steered_preferences") == {
        "preferences", "activity_probes", "vectors", "activations", "neutral_stats", "stories",
        "neutral"}
    assert upstream_closure("readouts") == set()


def test_a_stage_cannot_read_an_upstream_it_does_not_declare(monkeypatch):
    def build(ctx, up, layers):
        return up.result("preferences")

    rogue = Stage("rogue", ("vectors",), build, lambda artifact: artifact, "reads too much")
    monkeypatch.setitem(GRAPH, "rogue", rogue)
    with pytest.raises(KeyError, match="rogue asked for preferences"):
        StageRun(ctx=None).artifact("rogue")


def test_upstream_prefers_given_results_and_builds_each_stage_once(monkeypatch):
    built = []

    def make(name, value):
        def build(ctx, up, layers):
            total = value + sum(up.result(u) for u in fakes[name].upstream)
            built.append(name)
            return total
        return build

    fakes = {"a": Stage("a", (), make("a", 1), lambda x: x, ""),
             "b": Stage("b", ("a",), make("b", 10), lambda x: x, ""),
             "c": Stage("c", ("a", "b"), make("c", 100), lambda x: x, "", layered=True)}
    monkeypatch.setattr(graph, "GRAPH", fakes)
    run = StageRun(ctx=None)
    assert run.result("c") == 100 + 1 + 11
    assert built == ["a", "b", "c"]  # a once, though both b and c read it
    assert run.result("c", layers=[3], given={"b": 0}) == 101
    with pytest.raises(ValueError, match="not built per layer"):
        run.artifact("b", layers=[3])
    assert isinstance(Upstream(run, fakes["b"], {}), Upstream)


def test_the_cli_lists_and_accepts_every_stage():
    result = subprocess.run([sys.executable, "-m", "pipeline", "build", "--help"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for stage in STAGES:
        assert f"  {stage.name}  " in result.stdout or f"  {stage.name} " in result.stdout


def test_every_stage_has_one_version_in_the_experiment_constants():
    from pipeline.inputs.experiment import STAGE_VERSIONS

    assert list(GRAPH) == list(STAGE_VERSIONS)
    assert [stage.version for stage in STAGES] == list(STAGE_VERSIONS.values())
