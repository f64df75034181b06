"""B1/B2 on a corpus that left `desperate` or `calm` without a vector: a computed FAIL row that
says why (a verdict, so it can be an expected failure), never a crash of the rollout stage."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from fixtures.scorecard import VerdictFail

_spec = importlib.util.spec_from_file_location(
    "criteria_blackmail", Path(__file__).parents[1] / "criteria" / "test_blackmail.py")
blackmail = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(blackmail)


class _Card:
    def __init__(self):
        self.rows = []

    def record(self, result):
        self.rows.append(result)
        return result

    @staticmethod
    def require(result):
        if not result.passed:
            raise VerdictFail(result.sentence())


def _run(criterion, emotion, missing):
    card = _Card()
    runtime = SimpleNamespace(spec=SimpleNamespace(name="m"))
    vectors = SimpleNamespace(missing=missing)
    config = SimpleNamespace(vectors=("desperate", "calm", "random"))
    return card, blackmail._unsteerable(criterion, runtime, vectors, config, card, emotion)


@pytest.mark.parametrize(("criterion", "emotion"), [("B1", "desperate"), ("B2", "calm")])
def test_a_missing_steering_vector_is_a_failed_row_naming_it(criterion, emotion):
    with pytest.raises(VerdictFail, match=f"cannot be computed.*{emotion!r}"):
        _run(criterion, emotion, (emotion, "angry"))


def test_present_vectors_go_on_to_the_rollouts():
    card, stopped = _run("B1", "desperate", ("angry",))
    assert stopped is False and card.rows == []
