"""Only a computed FAIL verdict is an expected failure; a crash anywhere fails the run (issue 13).

Each test runs a small suite through the scorecard plugin in a subprocess (pytester), once
in-process order (-n 0) and once under xdist (-n 2). Both rows are expected failures on both
models (data like data/expected_outcomes.toml), so before issue 13 every injected exception
below counted as the expected failure: exit 0 and rows missing from scorecard.json.
"""

from __future__ import annotations

import fnmatch
import json
import os

import pytest

from pipeline import REPO_ROOT

pytest_plugins = ("pytester",)

CONFTEST = '''
import os
from pathlib import Path

import pytest

import fixtures.scorecard as plugin

plugin.EXPECTED_OUTCOMES = Path(__file__).with_name("expected.toml")
pytest_plugins = ["fixtures.scorecard"]
INJECT = os.environ.get("INJECT", "")


class Spec:
    def __init__(self, name):
        self.name = name


@pytest.fixture(scope="session", params=[Spec("alpha"), Spec("beta")], ids=lambda s: s.name)
def model_spec(request):
    return request.param


@pytest.fixture(scope="session")
def stage(model_spec):
    """Stands for a cached pipeline stage (emotion vectors, preferences, ...)."""
    if INJECT == "stage":
        raise RuntimeError(f"injected stage failure for {model_spec.name}")
    if INJECT == "stimuli":
        from pipeline.inputs.stimuli import canonical_lists
        from pipeline.inputs.stimuli_lock import verify_stimuli

        lists = {k: list(v) for k, v in canonical_lists().items()}
        lists["emotions"][0] = lists["emotions"][0] + "x"  # one changed byte
        verify_stimuli(lists)
    return 3.0
'''

TESTS = '''
import os

import pytest

from pipeline.scorecard.results import judge

INJECT = os.environ.get("INJECT", "")


class Unsaveable:
    def savefig(self, *args, **kwargs):
        raise OSError("injected: disk full while writing the figure")


@pytest.mark.criterion("V3")
def test_v3(model_spec, stage, scorecard):
    if INJECT == "row":
        raise ValueError(f"injected row failure for {model_spec.name}")
    if INJECT == "crash" and model_spec.name == "beta":
        os._exit(3)  # the worker dies mid-row
    figures = {"plot": Unsaveable()} if INJECT == "report" else {}
    result = judge("V3", model_spec.name, stage, (2.0, 4.0), explanation="planted low")
    scorecard.require(scorecard.record(result, figures=figures))


@pytest.mark.criterion("V4")
def test_v4(model_spec, scorecard):
    if INJECT == "stop" and model_spec.name == "alpha":
        pytest.fail("injected: an unexpected failure that -x stops at", pytrace=False)
    result = judge("V4", model_spec.name, 6.0, (5.0, 7.0), explanation="planted chance rank")
    scorecard.require(scorecard.record(result))
'''

EXPECTED = '''
[alpha]
V3 = "expected: planted low"
V4 = "expected: planted chance rank"
[beta]
V3 = "expected: planted low"
V4 = "expected: planted chance rank"
'''

INI = '''
[pytest]
addopts = -p no:cacheprovider -p no:randomly
markers =
    criterion(id): a scorecard row
'''


@pytest.fixture
def suite(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_rows=TESTS)
    pytester.makefile(".toml", expected=EXPECTED)
    pytester.makefile(".ini", pytest=INI)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    def run(inject: str, *args: str):
        monkeypatch.setenv("INJECT", inject)
        out = pytester.path / "out"
        result = pytester.runpytest_subprocess(f"--scorecard-dir={out}", *args, timeout=240)
        path = out / "scorecard.json"
        rows = ({(r["id"], r["model"]): r for r in json.loads(path.read_text())["results"]}
                if path.is_file() else {})
        return result, rows

    return run


XDIST = [pytest.param((), id="n0"), pytest.param(("-n", "2"), id="xdist")]


@pytest.mark.parametrize("workers", XDIST)
def test_a_healthy_run_with_expected_failures_passes_with_every_row(suite, workers):
    result, rows = suite("", *workers)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*4 xfailed*"])
    assert {k: r["verdict"] for k, r in rows.items()} == {
        (c, m): "FAIL" for c in ("V3", "V4") for m in ("alpha", "beta")}
    assert all(r["pytest_outcome"] == "xfailed" for r in rows.values())


INJECTIONS = [
    ("stage", "RuntimeError: injected stage failure for {model} (in setup)"),
    ("stimuli", "StimuliChanged: emotions?0? changed: now *re-pin* (in setup)"),
    ("row", "ValueError: injected row failure for {model} (in call)"),
    ("report", "OSError: injected: disk full while writing the figure (in call)"),
]


@pytest.mark.parametrize("workers", XDIST)
@pytest.mark.parametrize(("inject", "reason"), INJECTIONS, ids=[i for i, _ in INJECTIONS])
def test_an_exception_at_any_level_is_an_error_not_the_expected_failure(
        suite, workers, inject, reason):
    strict = ("--strict",) if inject == "row" else ()  # the same with pytest's --strict
    result, rows = suite(inject, *workers, *strict)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    result.stdout.fnmatch_lines(["*scorecard: 2 row(s) without a verdict, written as ERROR, so "
                                 "the run fails: V3 on alpha, V3 on beta*"])
    assert set(rows) == {(c, m) for c in ("V3", "V4") for m in ("alpha", "beta")}
    for model in ("alpha", "beta"):
        row = rows[("V3", model)]
        assert row["verdict"] == "ERROR" and row["pytest_outcome"] == "error"
        assert fnmatch.fnmatch(row["error"], reason.format(model=model)), row["error"]
        assert rows[("V4", model)]["verdict"] == "FAIL"  # the healthy row keeps its verdict
        assert rows[("V4", model)]["pytest_outcome"] == "xfailed"


def test_rows_that_never_ran_are_written_as_error_and_named(suite):
    # -x stops at the first unexpected failure: whatever had not run yet is missing.
    result, rows = suite("stop", "-x", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    missing = [k for k, r in rows.items() if r["error"].startswith("never reported a result")]
    assert missing, rows
    assert len(rows) == 4
    line = [x for x in result.stdout.lines if "without a verdict" in x]
    assert line and all(f"{c} on {m}" in line[0] for c, m in missing)


def test_a_worker_that_dies_mid_row_leaves_an_error_row(suite):
    result, rows = suite("crash", "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert len(rows) == 4
    assert rows[("V3", "beta")]["verdict"] == "ERROR", rows[("V3", "beta")]
    assert "crashed" in rows[("V3", "beta")]["error"]
    result.stdout.fnmatch_lines(["*without a verdict*V3 on beta*"])


def test_the_expected_failure_mark_accepts_only_a_verdict():
    from fixtures.scorecard import VerdictFail

    assert issubclass(VerdictFail, pytest.fail.Exception)
    assert not VerdictFail("V3 ...").pytrace  # the sentence alone, no traceback
